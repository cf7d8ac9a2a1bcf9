"""Entry point for `make synth` and the cdktf CLI (`app` in cdktf.json)."""

import sys

from stacks.app import main

if __name__ == "__main__":
    sys.exit(main())
