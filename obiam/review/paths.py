"""Flattening JSON values into leaf paths, for diffs of plans and synthesized stacks."""

from __future__ import annotations

from typing import Any

Path = tuple[str | int, ...]


def leaves(value: Any, prefix: Path = ()) -> dict[Path, Any]:
    """Every leaf of a JSON value by its path; empty objects and lists are leaves themselves."""
    if isinstance(value, dict) and value:
        return {p: v for key, item in value.items() for p, v in leaves(item, (*prefix, key)).items()}
    if isinstance(value, list) and value:
        return {p: v for i, item in enumerate(value) for p, v in leaves(item, (*prefix, i)).items()}
    return {prefix: value}


def display(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out or "(whole value)"
