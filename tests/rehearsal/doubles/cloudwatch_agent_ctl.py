#!/usr/bin/python3
"""amazon-cloudwatch-agent-ctl double: records its arguments and checks the config it is given parses."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    with Path("/run/obiam-lab/records/cloudwatch-agent.log").open("a", encoding="utf-8") as log:
        log.write(json.dumps(argv) + "\n")
    if "-c" in argv:
        source = argv[argv.index("-c") + 1]
        if source.startswith("file:"):
            try:
                json.loads(Path(source[5:]).read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                print(f"amazon-cloudwatch-agent-ctl: invalid config {source}: {error}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
