"""Directories the toolkit writes and replaces whole (cdktf.out, node-config output).

A tool may replace only a directory it wrote itself (it carries the tool's marker file), an empty
one, or a missing one; `--outdir .` must never delete a checkout. Nothing here imports cdktf.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from obiam.environments import ConfigError


def check_replaceable(directory: Path, option: str, marker: str, protected: Sequence[Path] = (),
                      also_ours: Collection[str] = ()) -> None:
    """Refuses, before anything is written, a directory this tool may not replace.

    `also_ours`: entries that mark an older output of the same tool that predates the marker.
    """
    shown = directory.as_posix()
    allowed = "allowed: a new or empty directory, or one this command wrote before"
    try:
        resolved = directory.resolve()
    except (OSError, RuntimeError):  # RuntimeError: Python 3.11's pathlib on a symbolic link loop
        raise ConfigError([f"{option} {shown}: is or passes through a symbolic link loop; {allowed}"]) from None
    for path in protected:
        try:
            target = path.resolve()
        except (OSError, RuntimeError):
            continue  # a link loop cannot hold the output directory; whoever reads it reports it
        if resolved == target or resolved in target.parents:
            raise ConfigError([f"{option} {shown}: is or contains {path.as_posix()}, which would be replaced; "
                               f"{allowed}"])
    if not resolved.exists():
        return
    if not resolved.is_dir():
        raise ConfigError([f"{option} {shown}: is a file, not a directory; {allowed}"])
    entries = sorted(entry.name for entry in resolved.iterdir())
    ours = {marker, *also_ours}
    if marker in entries or set(entries) <= ours:
        return
    foreign = [name for name in entries if name not in ours]
    listed = ", ".join(repr(name) for name in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
    raise ConfigError([f"{option} {shown}: holds files this command did not write ({listed}), and it replaces the "
                       f"whole directory; {allowed}"])


def write_replacing(directory: Path, marker: str, marker_text: str, fill: Callable[[Path], None]) -> None:
    """`fill` writes into a staging directory beside `directory`, which then replaces it whole;
    on any failure the old directory stays as it was and the staging one is removed."""
    directory = directory.resolve()
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        fill(staging)
        (staging / marker).write_text(marker_text, encoding="utf-8")
        old = directory.with_name(f".{directory.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            directory.rename(old)
        staging.rename(directory)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
