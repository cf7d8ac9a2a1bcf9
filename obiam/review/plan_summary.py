"""`obiam plan-summary`: a reviewer's view of `terraform show -json` output (format 1.x).

What Terraform's JSON plan holds (developer.hashicorp.com/terraform/internals/json-format),
and what a reviewer must see of it:

- `errored` (the plan stopped on an error) and `complete: false` (more changes will follow,
  e.g. deferred ones): shown first, because the plan is not the change that will happen;
- `resource_changes`: counts per action and a row per change, with the attributes that force a
  replacement, the replacement order (`["create", "delete"]` is create-before-destroy), moves,
  imports, `forget` (removed from state, left running) and deposed objects;
- `resource_drift`: changes made outside Terraform, the ones `relevant_attributes` says the
  plan depends on first;
- `output_changes`, `checks` (failed and errored conditions) and `deferred_changes`.

Input is read leniently where Terraform's promise is lenient: unknown fields are ignored, and
any 1.x document gives a summary, never a traceback. A UTF-8 byte order mark and UTF-16 (what
PowerShell's `>` writes) are read.
"""

from __future__ import annotations

import codecs
import json
import pathlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from obiam.review.paths import Path, display
from obiam.review.stateful import DEFAULT_POLICY, StatefulPolicy
from obiam.review.values import SENSITIVE, UNKNOWN, AttributeChange, Differ, mark_at

__all__ = ["SENSITIVE", "UNKNOWN", "AttributeChange", "PlanError", "PlanSummary", "ResourceChange", "load_plan",
           "summarize"]

ACTION_ORDER = ("delete", "replace", "forget", "create", "update", "read", "no-op")
FAILED_CHECK = ("fail", "error")


class PlanError(Exception):
    """The file is not a plan this command can read."""


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
    deposed: str | None = None
    order: str | None = None
    stateful: bool = False

    @property
    def loses_state(self) -> bool:
        return self.mode == "managed" and self.action in ("delete", "replace") and self.stateful

    @property
    def noteworthy(self) -> bool:
        return self.action not in ("no-op", "read") or bool(self.moved_from) or self.importing


@dataclass(frozen=True)
class CheckResult:
    address: str
    status: str
    problems: tuple[str, ...] = ()


@dataclass
class PlanSummary:
    terraform_version: str
    name: str = ""
    errored: bool = False
    complete: bool = True
    applyable: bool | None = None
    changes: list[ResourceChange] = field(default_factory=list)
    drift: list[ResourceChange] = field(default_factory=list)
    other_drift: list[ResourceChange] = field(default_factory=list)
    outputs: list[AttributeChange] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    deferred: list[tuple[str, ResourceChange]] = field(default_factory=list)

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

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status in FAILED_CHECK]

    @property
    def not_the_change(self) -> list[str]:
        """Why applying this plan would not be the whole reviewed change (errored, incomplete)."""
        reasons = []
        if self.errored:
            reasons.append("the plan ERRORED: Terraform stopped planning, so this is not the whole change")
        if not self.complete:
            reasons.append("the plan is INCOMPLETE: more changes will follow after applying it"
                           + (f" ({len(self.deferred)} deferred)" if self.deferred else ""))
        if self.applyable is False and not self.errored:
            reasons.append("the plan is not applyable")
        return reasons

    @property
    def findings(self) -> list[str]:
        """What `--strict` refuses, in words."""
        found = list(self.not_the_change)
        found += [f"stateful {c.action}: {c.address}" for c in self.dangerous]
        found += [f"check {c.status}: {c.address}" for c in self.failed_checks]
        return found


# --- reading -----------------------------------------------------------------------------------

def decode(data: bytes) -> str:
    """UTF-8 (with or without a byte order mark) or UTF-16 (with a mark, or detected by its zeros)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    if len(data) >= 2 and data[0] == 0 and data[1] != 0:
        return data.decode("utf-16-be")
    if len(data) >= 2 and data[0] != 0 and data[1] == 0:
        return data.decode("utf-16-le")
    return data.decode("utf-8")


def load_plan(path: pathlib.Path) -> dict[str, Any]:
    try:
        text = decode(path.read_bytes())
    except (OSError, UnicodeDecodeError) as error:
        raise PlanError(f"{path}: cannot be read: {error}") from None
    try:
        plan = json.loads(text)
    except json.JSONDecodeError as error:
        raise PlanError(f"{path}: not JSON (line {error.lineno}, column {error.colno}): {error.msg}; pass the "
                        "output of `terraform show -json <planfile>`") from None
    except (ValueError, RecursionError) as error:
        raise PlanError(f"{path}: not JSON this command can read: {error}") from None
    if not isinstance(plan, dict) or "format_version" not in plan:
        raise PlanError(f"{path}: not a Terraform JSON plan (no format_version); pass the output of "
                        "`terraform show -json <planfile>`")
    if not str(plan["format_version"]).startswith("1."):
        raise PlanError(f"{path}: format_version {plan['format_version']!r} is not supported (1.x is)")
    for key in ("resource_changes", "resource_drift", "deferred_changes", "checks", "relevant_attributes"):
        if not isinstance(plan.get(key, []), list):
            raise PlanError(f"{path}: {key} is not a list")
    if not isinstance(plan.get("output_changes", {}), dict):
        raise PlanError(f"{path}: output_changes is not an object")
    return plan


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any, default: str = "?") -> str:
    return value if isinstance(value, str) else default if value is None else json.dumps(value, default=str)


def _path(value: Any) -> Path:
    return tuple(p if isinstance(p, int) and not isinstance(p, bool) else str(p) for p in _list(value))


def action_of(actions: list[Any]) -> str:
    names = [str(a) for a in actions]
    if sorted(names) == ["create", "delete"]:
        return "replace"
    if len(names) == 1:
        return names[0]
    return "+".join(names) or "no-op"


def _order(actions: list[Any]) -> str | None:
    if actions == ["create", "delete"]:
        return "create before destroy"
    if actions == ["delete", "create"]:
        return "destroy before create"
    return None


def resource_change(raw: Any, policy: StatefulPolicy, within: tuple[Path, ...] | None = None) -> ResourceChange:
    raw = _obj(raw)
    change = _obj(raw.get("change"))
    actions = _list(change.get("actions"))
    action = action_of(actions)
    attributes: tuple[AttributeChange, ...] = ()
    if action in ("update", "replace"):
        attributes = tuple(Differ(change).run(change.get("before"), change.get("after"), within))
    address = _text(raw.get("address"))
    previous = raw.get("previous_address")
    resource_type = _text(raw.get("type"))
    deposed = raw.get("deposed")
    return ResourceChange(
        address=address, type=resource_type, mode=_text(raw.get("mode"), "managed"), action=action,
        replace_paths=tuple(display(_path(p)) if isinstance(p, list) else _text(p)
                            for p in _list(change.get("replace_paths"))),
        attributes=attributes, reason=_text(raw["action_reason"]) if raw.get("action_reason") else None,
        moved_from=_text(previous) if previous and previous != raw.get("address") else None,
        importing=bool(change.get("importing")), deposed=_text(deposed) if deposed else None,
        order=_order(actions), stateful=policy(resource_type))


def summarize(plan: dict[str, Any], name: str = "", policy: StatefulPolicy = DEFAULT_POLICY) -> PlanSummary:
    complete = plan.get("complete")
    summary = PlanSummary(terraform_version=_text(plan.get("terraform_version"), "unknown"), name=name,
                          errored=plan.get("errored") is True, complete=complete is not False,
                          applyable=plan.get("applyable") if isinstance(plan.get("applyable"), bool) else None)
    summary.changes = [resource_change(raw, policy) for raw in _list(plan.get("resource_changes"))]
    order = {a: i for i, a in enumerate(ACTION_ORDER)}
    summary.changes.sort(key=lambda c: (order.get(c.action, len(order)), c.address, c.deposed or ""))

    relevant: dict[str, list[Path]] = {}
    for raw_entry in _list(plan.get("relevant_attributes")):
        entry = _obj(raw_entry)
        relevant.setdefault(_text(entry.get("resource")), []).append(_path(entry.get("attribute")))
    for raw in _list(plan.get("resource_drift")):
        address = _text(_obj(raw).get("address"))
        paths = relevant.get(address)
        gone = action_of(_list(_obj(_obj(raw).get("change")).get("actions"))) == "delete"
        if paths or gone:
            summary.drift.append(resource_change(raw, policy, tuple(paths) if paths else None))
        else:
            summary.other_drift.append(resource_change(raw, policy))

    for output_name, raw in sorted(_obj(plan.get("output_changes")).items()):
        change = _obj(raw)
        action = action_of(_list(change.get("actions")))
        if action == "no-op":
            continue
        found = Differ(change).run(change.get("before"), change.get("after"))
        if not found and action == "create":
            shown = SENSITIVE if mark_at(change.get("after_sensitive"), ()) else None
            found = [AttributeChange("(whole value)", "null", shown or UNKNOWN)]
        summary.outputs += [AttributeChange(f"{output_name} ({action})" + _under(a.path), a.before, a.after,
                                            a.added, a.removed) for a in found]
        if not found:
            summary.outputs.append(AttributeChange(f"{output_name} ({action})", "", ""))

    for raw in _list(plan.get("checks")):
        check = _obj(raw)
        address = _text(_obj(check.get("address")).get("to_display"), _text(check.get("address")))
        problems = tuple(_text(_obj(p).get("message"), "")
                         for instance in _list(check.get("instances"))
                         for p in _list(_obj(instance).get("problems")))
        summary.checks.append(CheckResult(address, _text(check.get("status"), "unknown"), problems))

    for raw in _list(plan.get("deferred_changes")):
        entry = _obj(raw)
        summary.deferred.append((_text(entry.get("reason"), "unknown"),
                                 resource_change(entry.get("resource_change"), policy)))
    return summary


def _under(path: str) -> str:
    return "" if path == "(whole value)" else f" {path}"
