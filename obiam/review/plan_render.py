"""Rendering plan summaries: Markdown for PR comments (within GitHub's size limit), text, JSON.

Everything that comes from a plan (addresses, values, check messages, stack names) is
untrusted text: a resource key or a tag value can hold `|`, backticks, `<img>`, `@someone`
or a newline. In Markdown each such text goes into a code span whose fence is longer than any
backtick run inside it, after control characters are made visible; inside a table `|` is
escaped as GFM requires even in code spans. Code spans are never parsed for Markdown, HTML,
mentions or links. In text output control characters (terminal escapes) are made visible.

GitHub refuses a comment body over 65,536 characters ("Body is too long"), and then a reviewer
sees nothing. So the Markdown keeps the parts a reviewer must see (status, counts, stateful
warnings) and folds the tables into collapsible sections; when that is still too long, the
attribute details go first, then rows, each cut says how many were left out and where the
whole summary is (the plan artifact), and a last hard cut guarantees the limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from obiam.review.plan_summary import PlanSummary, ResourceChange

GITHUB_COMMENT_LIMIT = 65_536
# marocchino/sticky-pull-request-comment adds a hidden header line of about 60 characters.
DEFAULT_BUDGET = GITHUB_COMMENT_LIMIT - 1_024
_MAX_ATTRIBUTES = 12
_MAX_CAUTION = 50
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """Control characters, bidi overrides and line separators as visible escapes."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def code(text: str, *, in_table: bool = False) -> str:
    """`text` as an inert Markdown code span."""
    text = visible(text)
    if in_table:
        text = text.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def plain(text: str) -> str:
    """`text` as inert Markdown prose: punctuation escaped, mentions and references broken."""
    text = re.sub(r"([\\`*_\[\]<>|&~!#@:(){}])", r"\\\1", visible(text))
    return text.replace("\\@", "@\u200b").replace("\\#", "#\u200b")


# --- parts shared by the formats ---------------------------------------------------------------

def headline(summary: PlanSummary) -> str:
    counts = summary.counts
    parts = [f"{counts['create']} to create", f"{counts['update']} to update", f"{counts['replace']} to replace",
             f"{counts['delete']} to delete"]
    if counts["forget"]:
        parts.append(f"{counts['forget']} to forget")
    known = {"create", "update", "replace", "delete", "forget", "no-op"}
    parts += [f"{n} {action}" for action, n in sorted(counts.items()) if action not in known]
    parts.append(f"{counts['no-op']} unchanged")
    extra = [f"{len(summary.moved)} moved", f"{len(summary.imported)} imported", f"{len(summary.reads)} data read(s)"]
    if summary.drift or summary.other_drift:
        extra.append(f"{len(summary.drift) + len(summary.other_drift)} changed outside Terraform")
    if summary.outputs:
        extra.append(f"{len(summary.outputs)} output change(s)")
    if summary.deferred:
        extra.append(f"{len(summary.deferred)} deferred")
    return ", ".join(parts) + "; " + ", ".join(extra)


def notes(change: ResourceChange, max_attributes: int | None = _MAX_ATTRIBUTES) -> list[str]:
    found = []
    if change.deposed:
        found.append(f"deposed object {change.deposed} (left by a failed create-before-destroy)")
    if change.replace_paths:
        found.append("replaced because of " + ", ".join(change.replace_paths))
    elif change.action in ("replace", "delete", "forget") and change.reason:
        found.append(change.reason.replace("_", " "))
    if change.order:
        found.append(change.order)
    if change.action == "forget":
        found.append("removed from state only; the object keeps running, unmanaged")
    if change.moved_from:
        found.append(f"moved from {change.moved_from}")
    if change.importing:
        found.append("imported")
    if max_attributes is None:
        return found
    shown = change.attributes[:max_attributes]
    found += [a.line() for a in shown]
    if len(change.attributes) > len(shown):
        found.append(f"... {len(change.attributes) - len(shown)} more attribute(s)")
    return found


def warning(change: ResourceChange) -> str:
    verb = "DESTROYED" if change.action == "delete" else "REPLACED (destroyed and created empty)"
    why = f" because of {', '.join(change.replace_paths)}" if change.replace_paths else ""
    deposed = f" deposed object {change.deposed}" if change.deposed else ""
    return f"{change.address}{deposed} ({change.type}) would be {verb}{why}"


# --- Markdown ----------------------------------------------------------------------------------

def _row(change: ResourceChange, max_attributes: int) -> str:
    cell = "<br>".join(code(n, in_table=True) for n in notes(change, max_attributes or None))
    return f"| {change.action} | {code(change.address, in_table=True)} | {cell} |"


def _table(header: str, rows: list[str], total: int, pointer: str) -> list[str]:
    if not total:
        return []
    lines = ["<details><summary>" + header + "</summary>", "", "| action | resource | details |", "|---|---|---|",
             *rows]
    if len(rows) < total:
        lines += ["", f"*{total - len(rows)} more row(s) not shown here: {pointer}*"]
    return [*lines, "", "</details>", ""]


def _must_see(summary: PlanSummary, title: str) -> list[str]:
    lines = [f"### {plain(title)}", ""]
    for reason in summary.not_the_change:
        lines += ["> [!WARNING]", f"> **{reason}.** Do not approve it as the change.", ""]
    lines += [f"**{headline(summary)}** (Terraform {code(summary.terraform_version)})", ""]
    if summary.dangerous:
        lines += ["> [!CAUTION]", "> **Stateful resources would be destroyed or replaced: data may be lost.**"]
        lines += [f"> - {code(warning(c))}" for c in summary.dangerous[:_MAX_CAUTION]]
        if len(summary.dangerous) > _MAX_CAUTION:
            lines.append(f"> - and {len(summary.dangerous) - _MAX_CAUTION} more (see the plan artifact)")
        lines.append("")
    if summary.failed_checks:
        lines += ["> [!WARNING]", "> **Checks failed:**"]
        for check in summary.failed_checks[:_MAX_CAUTION]:
            lines.append(f"> - {check.status}: {code(check.address)}"
                         + "".join(f" {code(p)}" for p in check.problems[:3]))
        lines.append("")
    if not any(c.noteworthy for c in summary.changes) and not (summary.drift or summary.outputs or summary.deferred):
        lines += ["No changes before the plan stopped." if summary.not_the_change else "No changes.", ""]
    return lines


def _sections(summary: PlanSummary, details: int) -> list[tuple[str, list[str]]]:
    """(header, rows) of every collapsible table of one plan, most important first."""
    changes = [c for c in summary.changes if c.noteworthy]
    sections = [(f"{len(changes)} resource change(s)", [_row(c, details) for c in changes])]
    sections.append((f"{len(summary.drift)} change(s) made outside Terraform that this plan depends on",
                     [_row(c, details) for c in summary.drift]))
    sections.append((f"{len(summary.outputs)} output change(s)",
                     [f"| output | {code(o.line(), in_table=True)} | |" for o in summary.outputs]))
    sections.append((f"{len(summary.deferred)} deferred change(s) (planned after this apply)",
                     [f"| {c.action} | {code(c.address, in_table=True)} | {code('deferred: ' + r, in_table=True)} |"
                      for r, c in summary.deferred]))
    sections.append((f"{len(summary.other_drift)} other change(s) made outside Terraform (not used by this plan)",
                     [_row(c, details) for c in summary.other_drift]))
    return sections


def render_markdown(summaries: PlanSummary | list[PlanSummary], title: str = "Terraform plan",
                    limit: int = DEFAULT_BUDGET, pointer: str = "the full summary is in the plan artifact") -> str:
    """One section per plan, always at most `limit` characters."""
    plans = [summaries] if isinstance(summaries, PlanSummary) else summaries
    heads = [_must_see(s, title if len(plans) == 1 else f"{title} / {s.name}") for s in plans]
    for max_attributes in (_MAX_ATTRIBUTES, 3, 0):
        bodies = [[line for header, rows in _sections(s, max_attributes) for line in _table(
            header + ("" if max_attributes == _MAX_ATTRIBUTES else _fewer(max_attributes, pointer)), rows, len(rows),
            pointer)] for s in plans]
        text = _join(heads, bodies)
        if len(text) <= limit:
            return text
    # Share what is left after the must-see parts between the plans, rows in order of importance.
    fixed = len(_join(heads, [[] for _ in plans]))
    share = max(0, (limit - fixed) // max(1, len(plans)))
    bodies = [_fit([(h + _fewer(0, pointer), r) for h, r in _sections(s, 0)], share, pointer) for s in plans]
    return _hard_cut(_join(heads, bodies), limit, pointer)


def _fewer(max_attributes: int, pointer: str) -> str:
    shown = f"at most {max_attributes} attribute(s) a row" if max_attributes else "no attribute details"
    return f" ({shown}, to fit GitHub's comment limit: {pointer})"


def _fit(sections: list[tuple[str, list[str]]], budget: int, pointer: str) -> list[str]:
    out: list[str] = []
    for header, rows in sections:
        if not rows:
            continue
        frame = len("\n".join(_table(header, [], len(rows) + 1, pointer))) + 1
        kept: list[str] = []
        used = len("\n".join(out)) + frame
        for row in rows:
            if used + len(row) + 1 > budget:
                break
            kept.append(row)
            used += len(row) + 1
        if used > budget and not kept:
            out.append(f"*{header}: not shown here, {pointer}*")
            out.append("")
            continue
        out += _table(header, kept, len(rows), pointer)
    return out


def _join(heads: list[list[str]], bodies: list[list[str]]) -> str:
    return "\n".join(line for head, body in zip(heads, bodies, strict=True) for line in (*head, *body)) + "\n"


def _hard_cut(text: str, limit: int, pointer: str) -> str:
    if len(text) <= limit:
        return text
    note = f"\n\n</details>\n\n**Cut at {limit} characters (GitHub's comment limit): {pointer}.**\n"
    cut = text[:max(0, limit - len(note))]
    cut = cut[:cut.rfind("\n") + 1] if "\n" in cut else ""
    return cut + note if len(cut) + len(note) <= limit else note[-limit:]


# --- text and JSON -----------------------------------------------------------------------------

def render_text(summaries: PlanSummary | list[PlanSummary], title: str = "Terraform plan") -> str:
    plans = [summaries] if isinstance(summaries, PlanSummary) else summaries
    lines: list[str] = []
    for summary in plans:
        name = title if len(plans) == 1 else f"{title} / {summary.name}"
        lines.append(visible(f"{name}: {headline(summary)} (Terraform {summary.terraform_version})"))
        lines += [f"!!! {r}" for r in summary.not_the_change]
        if summary.dangerous:
            lines.append("!!! Stateful resources would be destroyed or replaced: data may be lost !!!")
            lines += [visible(f"!!! {warning(c)}") for c in summary.dangerous]
        lines += [visible(f"!!! check {c.status}: {c.address}" + "".join(f" [{p}]" for p in c.problems))
                  for c in summary.failed_checks]
        lines += _text_rows("", [c for c in summary.changes if c.noteworthy])
        lines += _text_rows("drift ", summary.drift)
        lines += [visible(f"output   {o.line()}") for o in summary.outputs]
        lines += [visible(f"deferred {c.address} ({reason})") for reason, c in summary.deferred]
        lines += _text_rows("outside ", summary.other_drift)
    return "\n".join(lines) + "\n"


def _text_rows(prefix: str, changes: Iterable[ResourceChange]) -> list[str]:
    out = []
    for change in changes:
        details = "; ".join(notes(change))
        out.append(visible(f"{prefix}{change.action:8} {change.address}" + (f"  [{details}]" if details else "")))
    return out


def as_json(summaries: list[PlanSummary]) -> str:
    def change(c: ResourceChange) -> dict[str, Any]:
        data = asdict(c)
        data["attributes"] = [asdict(a) for a in c.attributes]
        data["loses_state"] = c.loses_state
        return data

    def plan(s: PlanSummary) -> dict[str, Any]:
        return {
            "name": s.name, "terraform_version": s.terraform_version, "errored": s.errored, "complete": s.complete,
            "applyable": s.applyable, "counts": dict(sorted(s.counts.items())), "findings": s.findings,
            "not_the_change": s.not_the_change, "stateful": [c.address for c in s.dangerous],
            "changes": [change(c) for c in s.changes], "drift": [change(c) for c in s.drift],
            "other_drift": [change(c) for c in s.other_drift], "outputs": [asdict(o) for o in s.outputs],
            "checks": [asdict(c) for c in s.checks],
            "deferred": [{**change(c), "deferred_reason": r} for r, c in s.deferred],
        }

    return json.dumps({"plans": [plan(s) for s in summaries]}, indent=2, ensure_ascii=False) + "\n"

