"""`obiam plan-summary`: a reviewer's view of `terraform show -json` output (format 1.x).

Counts per action, a table of changes with the attributes that force each
replacement, sensitive values masked, unknown values marked, and a warning block
for every delete or replacement of a stateful resource. Fields it does not know
are ignored, so newer Terraform or OpenTofu output still summarizes.
"""

from __future__ import annotations

import json
import pathlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from obiam.review.paths import Path, display, leaves
from obiam.review.stateful import is_stateful

SENSITIVE = "(sensitive)"
UNKNOWN = "(known after apply)"
ACTION_ORDER = ("delete", "replace", "create", "update", "read", "no-op")
_MAX_ATTRIBUTES = 12
_MAX_VALUE = 60


class PlanError(Exception):
    """The file is not a plan this command can read."""


@dataclass(frozen=True)
class AttributeChange:
    path: str
    before: str
    after: str


@dataclass(frozen=True)
class ResourceChange:
    address: str
    type: str
    mode: str
    action: str
    replace_paths: tuple[str, ...] = ()
    attributes: tuple[AttributeChange, ...] = ()
    reason: str | None = None
    moved_from: str | None = None
    importing: bool = False

    @property
    def loses_state(self) -> bool:
        return self.mode == "managed" and self.action in ("delete", "replace") and is_stateful(self.type)


@dataclass
class PlanSummary:
    terraform_version: str
    changes: list[ResourceChange] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        return Counter(c.action for c in self.changes if c.mode == "managed")

    @property
    def moved(self) -> list[ResourceChange]:
        return [c for c in self.changes if c.moved_from]

    @property
    def imported(self) -> list[ResourceChange]:
        return [c for c in self.changes if c.importing]

    @property
    def reads(self) -> list[ResourceChange]:
        return [c for c in self.changes if c.mode == "data" and c.action == "read"]

    @property
    def dangerous(self) -> list[ResourceChange]:
        return [c for c in self.changes if c.loses_state]


def load_plan(path: pathlib.Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PlanError(f"{path}: cannot be read: {error}") from None
    try:
        plan = json.loads(text)
    except json.JSONDecodeError as error:
        raise PlanError(f"{path}: not JSON (line {error.lineno}, column {error.colno}): {error.msg}; pass the "
                        "output of `terraform show -json <planfile>`") from None
    if not isinstance(plan, dict) or "format_version" not in plan:
        raise PlanError(f"{path}: not a Terraform JSON plan (no format_version); pass the output of "
                        "`terraform show -json <planfile>`")
    if not str(plan["format_version"]).startswith("1."):
        raise PlanError(f"{path}: format_version {plan['format_version']!r} is not supported (1.x is)")
    if not isinstance(plan.get("resource_changes", []), list):
        raise PlanError(f"{path}: resource_changes is not a list")
    return plan


def action_of(actions: list[str]) -> str:
    if sorted(actions) == ["create", "delete"]:
        return "replace"
    if len(actions) == 1:
        return actions[0]
    return "+".join(actions) or "no-op"


def summarize(plan: dict[str, Any]) -> PlanSummary:
    summary = PlanSummary(terraform_version=str(plan.get("terraform_version", "unknown")))
    for raw in plan.get("resource_changes", []):
        if not isinstance(raw, dict) or not isinstance(raw.get("change"), dict):
            raise PlanError(f"resource change {raw.get('address', '?') if isinstance(raw, dict) else raw!r} "
                            "has no change object")
        change = raw["change"]
        action = action_of(list(change.get("actions", [])))
        attributes: tuple[AttributeChange, ...] = ()
        if action in ("update", "replace"):
            attributes = tuple(attribute_changes(change))
        summary.changes.append(ResourceChange(
            address=str(raw.get("address", "?")), type=str(raw.get("type", "?")),
            mode=str(raw.get("mode", "managed")), action=action,
            replace_paths=tuple(_dotted(p) for p in change.get("replace_paths", []) or []),
            attributes=attributes, reason=raw.get("action_reason"),
            moved_from=raw.get("previous_address") if raw.get("previous_address") != raw.get("address") else None,
            importing=bool(change.get("importing")),
        ))
    order = {a: i for i, a in enumerate(ACTION_ORDER)}
    summary.changes.sort(key=lambda c: (order.get(c.action, len(order)), c.address))
    return summary


def attribute_changes(change: dict[str, Any]) -> list[AttributeChange]:
    before = leaves(change.get("before"))
    after = leaves(change.get("after"))
    unknown = leaves(change.get("after_unknown"))
    before_sensitive, after_sensitive = change.get("before_sensitive"), change.get("after_sensitive")
    found = []
    for path in sorted(set(before) | set(after) | {p for p, v in unknown.items() if v is True}):
        is_unknown = unknown.get(path) is True
        if not is_unknown and before.get(path) == after.get(path):
            continue
        old = SENSITIVE if _flagged(before_sensitive, path) else _show(before.get(path))
        new = UNKNOWN if is_unknown else SENSITIVE if _flagged(after_sensitive, path) else _show(after.get(path))
        found.append(AttributeChange(display(path), old, new))
    return found


def _flagged(marks: Any, path: Path) -> bool:
    """Whether `path`, or anything above it, is marked true in a *_sensitive structure."""
    node = marks
    for part in path:
        if node is True:
            return True
        if isinstance(node, dict) and isinstance(part, str):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return node is True


def _dotted(path: Any) -> str:
    return display(tuple(path)) if isinstance(path, list) else str(path)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= _MAX_VALUE else text[:_MAX_VALUE - 3] + "..."


# --- rendering -------------------------------------------------------------------------------

def _headline(summary: PlanSummary) -> str:
    counts = summary.counts
    parts = [f"{counts['create']} to create", f"{counts['update']} to update", f"{counts['replace']} to replace",
             f"{counts['delete']} to delete", f"{counts['no-op']} unchanged"]
    return (", ".join(parts) + f"; {len(summary.moved)} moved, {len(summary.imported)} imported, "
            f"{len(summary.reads)} data read(s)")


def _details(change: ResourceChange) -> str:
    notes = []
    if change.replace_paths:
        notes.append("replaced because of " + ", ".join(change.replace_paths))
    elif change.action in ("replace", "delete") and change.reason:
        notes.append(change.reason.replace("_", " "))
    if change.moved_from:
        notes.append(f"moved from {change.moved_from}")
    if change.importing:
        notes.append("imported")
    shown = change.attributes[:_MAX_ATTRIBUTES]
    notes += [f"{a.path}: {a.before} -> {a.after}" for a in shown]
    if len(change.attributes) > len(shown):
        notes.append(f"... {len(change.attributes) - len(shown)} more attribute(s)")
    return "; ".join(notes)


def _warning_lines(change: ResourceChange) -> str:
    verb = "DESTROYED" if change.action == "delete" else "REPLACED (destroyed and created empty)"
    why = f" because of {', '.join(change.replace_paths)}" if change.replace_paths else ""
    return f"{change.address} ({change.type}) would be {verb}{why}"


def render_markdown(summary: PlanSummary, title: str = "Terraform plan") -> str:
    lines = [f"### {title}", "", f"**{_headline(summary)}** (Terraform {summary.terraform_version})", ""]
    if summary.dangerous:
        lines += ["> [!CAUTION]", "> **Stateful resources would be destroyed or replaced: data may be lost.**"]
        lines += [f"> - `{_warning_lines(c)}`" for c in summary.dangerous]
        lines.append("")
    visible = [c for c in summary.changes if c.action not in ("no-op", "read") or c.moved_from or c.importing]
    if visible:
        lines += ["| action | resource | details |", "|---|---|---|"]
        for change in visible:
            lines.append(f"| {change.action} | `{change.address}` | {_cell(_details(change))} |")
    else:
        lines.append("No changes.")
    return "\n".join(lines) + "\n"


def render_text(summary: PlanSummary, title: str = "Terraform plan") -> str:
    lines = [f"{title}: {_headline(summary)} (Terraform {summary.terraform_version})"]
    if summary.dangerous:
        lines.append("!!! Stateful resources would be destroyed or replaced: data may be lost !!!")
        lines += [f"!!! {_warning_lines(c)}" for c in summary.dangerous]
    for change in summary.changes:
        if change.action in ("no-op", "read") and not change.moved_from and not change.importing:
            continue
        details = _details(change)
        lines.append(f"{change.action:8} {change.address}" + (f"  [{details}]" if details else ""))
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
