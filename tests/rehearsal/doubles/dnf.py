#!/usr/bin/python3
"""dnf double: Amazon Linux 2023's package manager, which cannot run on this machine.

Records what the boot path asks for and installs nothing, except the pieces later steps
need from those packages: the EFS mount helper (amazon-efs-utils ships /sbin/mount.efs,
which mount(8) calls for fstab `efs` entries) and the CloudWatch agent's control script.
`java`/`keytool` resolve to the machine's OpenJDK; clients (mysql, psql), unzip and jq are
the machine's own. An unknown package fails as dnf does, so a typo in the boot script is
caught here rather than on the first real node.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

DOUBLES = Path("/run/obiam-lab/doubles")
RECORDS = Path("/run/obiam-lab/records")
# AL2023 package -> what it must make available here.
KNOWN = {
    r"java-\d+-amazon-corretto(-headless|-devel)?": ["java", "keytool"],
    r"amazon-efs-utils": ["mount.efs"],
    r"amazon-cloudwatch-agent": ["amazon-cloudwatch-agent-ctl"],
    r"unzip": ["unzip"], r"jq": ["jq"], r"curl(-minimal)?": ["curl"],
    r"mariadb\d*|mariadb\d*-client|mysql": ["mysql"],
    r"postgresql\d*": ["psql"],
    r"python3(\.\d+)?": ["python3"],
    r"util-linux|coreutils|findutils|gawk|sed|tar|gzip|shadow-utils|cronie": [],
}


def install(package: str) -> bool:
    for pattern, provides in KNOWN.items():
        if re.fullmatch(pattern, package):
            if "mount.efs" in provides:
                shutil.copy(DOUBLES / "mount_efs.py", "/usr/sbin/mount.efs")
                Path("/usr/sbin/mount.efs").chmod(0o755)
            if "amazon-cloudwatch-agent-ctl" in provides:
                agent = Path("/opt/aws/amazon-cloudwatch-agent")
                (agent / "etc").mkdir(parents=True, exist_ok=True)
                (agent / "bin").mkdir(parents=True, exist_ok=True)
                shutil.copy(DOUBLES / "cloudwatch_agent_ctl.py", agent / "bin" / "amazon-cloudwatch-agent-ctl")
                (agent / "bin" / "amazon-cloudwatch-agent-ctl").chmod(0o755)
            return True
    return False


def main(argv: list[str]) -> int:
    RECORDS.mkdir(parents=True, exist_ok=True)
    with (RECORDS / "dnf.log").open("a", encoding="utf-8") as log:
        log.write(json.dumps(argv) + "\n")
    words = [a for a in argv if not a.startswith("-")]
    if not words or words[0] not in {"install", "update", "upgrade", "makecache", "clean"}:
        return 0
    if words[0] != "install":
        return 0
    missing = [p for p in words[1:] if not install(p)]
    if missing:
        print(f"Error: Unable to find a match: {' '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
