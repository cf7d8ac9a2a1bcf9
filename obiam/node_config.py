"""`obiam node-config`: every file a node writes, for review in pull requests.

The user data is gzip inside a launch template; this puts each file it installs where the node
puts it (under --output), plus the boot script itself, so a WSO2 configuration change shows up in
a diff like an infrastructure change. Values only known at boot stay as named placeholders
(@OBIAM_<NAME>_<KIND>@). With --accelerator-toml (the OB accelerator's
wso2is-5.11.0-deployment.toml from the bank's pack) it also writes the merged deployment.toml and
checks it against the WSO2 contract.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from obiam import bootstrap, node_contract, output_directory
from obiam.bootstrap.node import obiam_config
from obiam.environments import ConfigError, Environment

MARKER = ".obiam-node-config"
_MARKER_TEXT = "Written by `obiam node-config`; the next run replaces this whole directory.\n"
DEPLOYMENT_TOML = "opt/wso2/current/repository/conf/deployment.toml"


def write(environment: Environment, output: Path, accelerator_toml: Path | None,
          protected: tuple[Path, ...] = ()) -> list[str]:
    """Writes the node's files under `output`; returns the WSO2 contract problems (none without
    --accelerator-toml, where only the overlay exists)."""
    output_directory.check_replaceable(output, "--output", MARKER, protected)
    settings = bootstrap.settings_for(environment)
    files = {path.lstrip("/"): text for path, text in bootstrap.node_files(settings).items()}
    files["user-data.sh"] = bootstrap.render_user_data(settings)
    problems: list[str] = []
    if accelerator_toml is not None:
        try:
            base = tomllib.loads(accelerator_toml.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError([f"--accelerator-toml {accelerator_toml}: cannot be read as TOML: {error}"]) from None
        overlay = tomllib.loads(files["etc/obiam/deployment.overlay.toml"])
        rewrites = overlay.pop("obiam", {}).get("rewrites", {})
        merged = obiam_config.merge(base, overlay, rewrites)
        files[DEPLOYMENT_TOML] = obiam_config.dumps(merged)
        problems = node_contract.check(merged, template=True)

    def fill(staging: Path) -> None:
        for relative, text in sorted(files.items()):
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")

    output_directory.write_replacing(output, MARKER, _MARKER_TEXT, fill)
    return problems
