"""Files the stacks hand to Terraform as assets, written where cdktf can copy them from.

cdktf copies an asset into the synth output under a name made from the MD5 of its content, so
the source location never reaches the output; these files live in one temporary directory for
the life of the process.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import tempfile
from pathlib import Path


@functools.cache
def _directory() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="obiam-assets-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def asset_file(name: str, content: bytes) -> str:
    """Write `content` as `name` in the process's asset directory; returns its path."""
    # One folder per content: cdktf copies at app.synth(), after every stack has asked for its files.
    path = _directory() / hashlib.sha256(content).hexdigest() / name
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
    return str(path)
