#!/usr/bin/python3
"""mount.efs double (amazon-efs-utils' mount helper), called by mount(8) for fstab `efs` lines.

`mount.efs fs-x:/ /mnt/dir -o <options>` binds the rehearsal's emulation of the access
point named by `accesspoint=fsap-...`: a bindfs view that forces uid/gid 802 and refuses
chown, as an EFS access point with a posix_user does (EFS User Guide, "Enforcing a user
identity using an access point"). Like the real helper it refuses `iam` without `tls`
and an access point of another file system.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CONFIG = Path("/run/obiam-lab/conf/efs.json")
SHARES = Path("/run/obiam-lab/efs")


def main(argv: list[str]) -> int:
    device, mount_point = argv[0], argv[1]
    options = argv[argv.index("-o") + 1].split(",") if "-o" in argv else []
    settings = dict(o.partition("=")[::2] for o in options)
    with Path("/run/obiam-lab/records/mounts.log").open("a", encoding="utf-8") as log:
        log.write(json.dumps(argv) + "\n")
    config = json.loads(CONFIG.read_text(encoding="utf-8"))
    file_system = device.split(":", 1)[0]
    if file_system != config["file_system_id"]:
        print(f"mount.efs: {file_system} is not this environment's file system", file=sys.stderr)
        return 32
    if "iam" in settings and "tls" not in settings:
        print("mount.efs: The 'iam' option requires the 'tls' option", file=sys.stderr)
        return 1
    access_point = settings.get("accesspoint")
    if access_point not in config["access_points"]:
        print(f"mount.efs: access point {access_point!r} not found on {file_system}", file=sys.stderr)
        return 32
    share = SHARES / config["access_points"][access_point]
    return subprocess.run(["mount", "--bind", str(share), mount_point], check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
