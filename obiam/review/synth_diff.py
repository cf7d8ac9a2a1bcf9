"""`obiam synth-diff`: what changed between two `cdktf.out` trees, offline.

No Terraform, no credentials: it compares the synthesized JSON of each stack and
reports resources added, removed and changed (with the attribute paths), settings
that changed (backend, providers, outputs), and the same stateful warning as
plan-summary: a removed stateful resource, or a change to an argument that makes
the provider replace it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obiam.review.paths import display, leaves
from obiam.review.stateful import FORCES_REPLACEMENT, is_stateful

METADATA_KEY = "//"


class SynthDiffError(Exception):
    """A tree is missing or holds something that is not a synthesized stack."""


@dataclass(frozen=True)
class ResourceDiff:
    address: str
    type: str
    kind: str  # added, removed, changed
    paths: tuple[str, ...] = ()
    forces_replacement: tuple[str, ...] = ()

    @property
    def loses_state(self) -> bool:
        # A data source only reads: removing or changing one destroys nothing.
        return (not self.address.startswith("data.") and is_stateful(self.type)
                and (self.kind == "removed" or bool(self.forces_replacement)))


@dataclass
class StackDiff:
    name: str
    status: str  # added, removed, changed, unchanged
    resources: list[ResourceDiff] = field(default_factory=list)

    @property
    def dangerous(self) -> list[ResourceDiff]:
        return [r for r in self.resources if r.loses_state]


def load_tree(directory: Path) -> dict[str, dict[str, Any]]:
    if not directory.is_dir():
        raise SynthDiffError(f"{directory}: no such directory; pass a cdktf.out tree (run `make synth`)")
    stacks = {}
    for path in sorted(directory.glob("stacks/*/cdk.tf.json")):
        try:
            stacks[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SynthDiffError(f"{path}: not a synthesized stack: {error}") from None
    if not stacks:
        raise SynthDiffError(f"{directory}: no stacks/*/cdk.tf.json inside; pass a cdktf.out tree")
    return stacks


def _strip_metadata(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_metadata(v) for k, v in value.items() if k != METADATA_KEY}
    if isinstance(value, list):
        return [_strip_metadata(v) for v in value]
    return value


def blocks(stack: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Everything that can change, by address: resources, data sources, providers, outputs, settings."""
    found: dict[str, tuple[str, Any]] = {}
    for resource_type, items in stack.get("resource", {}).items():
        for name, config in items.items():
            found[f"{resource_type}.{name}"] = (resource_type, _strip_metadata(config))
    for data_type, items in stack.get("data", {}).items():
        for name, config in items.items():
            found[f"data.{data_type}.{name}"] = (data_type, _strip_metadata(config))
    for name, config in stack.get("provider", {}).items():
        found[f"provider.{name}"] = ("provider", _strip_metadata(config))
    for name, config in stack.get("output", {}).items():
        found[f"output.{name}"] = ("output", _strip_metadata(config))
    if "terraform" in stack:
        found["terraform"] = ("terraform", _strip_metadata(stack["terraform"]))
    return found


def diff_stack(name: str, base: dict[str, Any] | None, head: dict[str, Any] | None) -> StackDiff:
    old, new = blocks(base or {}), blocks(head or {})
    status = "added" if base is None else "removed" if head is None else "changed"
    diff = StackDiff(name, status)
    for address in sorted(set(old) | set(new)):
        if address not in new:
            diff.resources.append(ResourceDiff(address, old[address][0], "removed"))
        elif address not in old:
            diff.resources.append(ResourceDiff(address, new[address][0], "added"))
        elif old[address][1] != new[address][1]:
            resource_type = new[address][0]
            before, after = leaves(old[address][1]), leaves(new[address][1])
            paths = tuple(display(p) for p in sorted(set(before) | set(after), key=str)
                          if before.get(p) != after.get(p))
            forcing = FORCES_REPLACEMENT.get(resource_type, frozenset())
            forced = tuple(p for p in paths if p.split(".")[0].split("[")[0] in forcing)
            diff.resources.append(ResourceDiff(address, resource_type, "changed", paths, forced))
    if diff.status == "changed" and not diff.resources:
        diff.status = "unchanged"
    return diff


def diff_trees(base: dict[str, dict[str, Any]], head: dict[str, dict[str, Any]]) -> list[StackDiff]:
    return [diff_stack(name, base.get(name), head.get(name)) for name in sorted(set(base) | set(head))]


def _counts(diff: StackDiff) -> str:
    kinds = [r.kind for r in diff.resources]
    return f"{kinds.count('added')} added, {kinds.count('removed')} removed, {kinds.count('changed')} changed"


def _warning(resource: ResourceDiff) -> str:
    if resource.kind == "removed":
        return f"{resource.address} ({resource.type}) is removed: Terraform would destroy it"
    return (f"{resource.address} ({resource.type}) changes {', '.join(resource.forces_replacement)}, which makes "
            "the provider replace it (destroy and create empty)")


def render_markdown(diffs: list[StackDiff]) -> str:
    lines = ["### Synthesized infrastructure diff", ""]
    dangerous = [(d.name, r) for d in diffs for r in d.dangerous]
    if dangerous:
        lines += ["> [!CAUTION]", "> **Stateful resources would be destroyed or replaced: data may be lost.**"]
        lines += [f"> - `{stack}`: `{_warning(r)}`" for stack, r in dangerous]
        lines.append("")
    for diff in diffs:
        if diff.status == "unchanged":
            lines.append(f"- `{diff.name}`: no changes")
            continue
        lines += [f"#### `{diff.name}` ({diff.status}: {_counts(diff)})", "", "| change | address | paths |",
                  "|---|---|---|"]
        for resource in diff.resources:
            paths = ", ".join(resource.paths[:12]) + (" ..." if len(resource.paths) > 12 else "")
            lines.append(f"| {resource.kind} | `{resource.address}` | {paths.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_text(diffs: list[StackDiff]) -> str:
    lines = []
    dangerous = [(d.name, r) for d in diffs for r in d.dangerous]
    if dangerous:
        lines.append("!!! Stateful resources would be destroyed or replaced: data may be lost !!!")
        lines += [f"!!! {stack}: {_warning(r)}" for stack, r in dangerous]
    for diff in diffs:
        lines.append(f"{diff.name}: {diff.status}" + ("" if diff.status == "unchanged" else f" ({_counts(diff)})"))
        for resource in diff.resources:
            lines.append(f"  {resource.kind:8} {resource.address}"
                         + (f"  [{', '.join(resource.paths)}]" if resource.paths else ""))
    return "\n".join(lines) + "\n"
