"""Before/after diffs of plan values the way a reviewer needs them.

Terraform's JSON plan (developer.hashicorp.com, "JSON Output Format", change representation)
gives `before`, `after`, `after_unknown`, `before_sensitive` and `after_sensitive` as parallel
trees; the marks may be `true` for a whole subtree, an object or a list of marks, or absent.
Nothing here trusts that the trees have the same shape (a dynamic attribute can turn from a
list into an object), so every comparison falls back to "this value changed" rather than fail.

- Sensitive on either side masks both sides: a value that becomes sensitive must not show
  its old, clear text, and one that stops being sensitive must not show its secret past.
- Lists without marks inside are compared as collections: elements added and removed, which
  is the only honest view of a set (sets have no positions; JSON gives them as lists).
- Long strings show the region that changed; strings holding JSON documents (IAM policies,
  container definitions) are parsed and diffed by path inside the document.
- Two different values never print the same: when both shortened forms coincide, each gets a
  short digest of its full value.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from obiam.review.paths import Path, display

SENSITIVE = "(sensitive)"
UNKNOWN = "(known after apply)"
MAX_VALUE = 80
_CONTEXT = 20
_MAX_DEPTH = 64


@dataclass(frozen=True)
class AttributeChange:
    path: str
    before: str
    after: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def line(self) -> str:
        if self.added or self.removed:
            parts = [f"+ {v}" for v in self.added] + [f"- {v}" for v in self.removed]
            return f"{self.path}: " + ", ".join(parts)
        return f"{self.path}: {self.before} -> {self.after}"


def _node(marks: Any, path: Path) -> Any:
    """The mark at `path`, or True when a mark above it covers the whole subtree."""
    node = marks
    for part in path:
        if node is True:
            return True
        if isinstance(node, dict) and isinstance(part, str):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
    return node


def mark_at(marks: Any, path: Path) -> bool:
    """Whether `path`, or anything above it, is marked true in a *_sensitive / after_unknown tree."""
    return _node(marks, path) is True


def has_mark(marks: Any, path: Path) -> bool:
    """Whether any value at or below `path` is marked."""
    return _any_true(_node(marks, path), 0)


def _any_true(node: Any, depth: int) -> bool:
    if node is True or depth > _MAX_DEPTH:
        return node is True
    if isinstance(node, dict):
        return any(_any_true(v, depth + 1) for v in node.values())
    if isinstance(node, list):
        return any(_any_true(v, depth + 1) for v in node)
    return False


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode("utf-8", "surrogatepass")).hexdigest()[:8]


def show(value: Any, limit: int = MAX_VALUE) -> str:
    if value is None:
        return "null"
    text = canonical(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Differ:
    """Diff one change object's before/after with its unknown and sensitive marks."""

    def __init__(self, change: dict[str, Any]) -> None:
        self.unknown = change.get("after_unknown")
        self.before_sensitive = change.get("before_sensitive")
        self.after_sensitive = change.get("after_sensitive")
        self.found: list[AttributeChange] = []

    def run(self, before: Any, after: Any, within: tuple[Path, ...] | None = None) -> list[AttributeChange]:
        """Attribute changes, limited to the paths `within` (and what lies under them) when given."""
        if within is None:
            self._diff((), before, after, 0)
        else:
            for path in within:
                self._diff(path, _at(before, path), _at(after, path), 0)
        return self.found

    def _sensitive(self, path: Path) -> bool:
        return mark_at(self.before_sensitive, path) or mark_at(self.after_sensitive, path)

    def _secret_inside(self, path: Path) -> bool:
        return has_mark(self.before_sensitive, path) or has_mark(self.after_sensitive, path)

    def _marked_inside(self, path: Path) -> bool:
        return any(has_mark(m, path) for m in (self.unknown, self.before_sensitive, self.after_sensitive))

    def _diff(self, path: Path, before: Any, after: Any, depth: int) -> None:
        if mark_at(self.unknown, path):
            self._add(path, SENSITIVE if self._secret_inside(path) else show(before), UNKNOWN)
        elif self._sensitive(path):
            if before != after or mark_at(self.before_sensitive, path) != mark_at(self.after_sensitive, path):
                self._add(path, SENSITIVE, SENSITIVE)
        elif before == after and not self._marked_inside(path):
            return
        elif depth < _MAX_DEPTH and isinstance(before, dict) and isinstance(after, dict):
            for key in sorted(set(before) | set(after), key=str):
                self._diff((*path, str(key)), before.get(key), after.get(key), depth + 1)
        elif depth < _MAX_DEPTH and isinstance(before, list) and isinstance(after, list):
            self._lists(path, before, after, depth)
        elif before == after:
            return
        elif self._secret_inside(path):
            # A type change (an object of secrets becoming a string, say): nothing of either side shows.
            self._add(path, SENSITIVE, SENSITIVE)
        elif isinstance(before, str) and isinstance(after, str):
            self._strings(path, before, after, depth)
        else:
            old, new = show(before), show(after)
            if old == new:
                old, new = f"{old} (sha256 {digest(before)})", f"{new} (sha256 {digest(after)})"
            self._add(path, old, new)

    def _lists(self, path: Path, before: list[Any], after: list[Any], depth: int) -> None:
        if self._marked_inside(path):  # marks go by position: so must the diff
            for i in range(max(len(before), len(after))):
                self._diff((*path, i), before[i] if i < len(before) else None,
                           after[i] if i < len(after) else None, depth + 1)
        elif before != after:
            self._collection(path, before, after, depth)

    def _strings(self, path: Path, before: str, after: str, depth: int) -> None:
        documents = _json_documents(before, after)
        if documents is not None and depth < _MAX_DEPTH:
            inner = Differ({})
            inner._diff((), documents[0], documents[1], depth + 1)
            prefix = display(path) if path else ""
            for change in inner.found:
                self.found.append(AttributeChange(f"{prefix}{{{change.path}}}", change.before, change.after,
                                                  change.added, change.removed))
            if inner.found:
                return
        self._add(path, *changed_region(before, after))

    def _collection(self, path: Path, before: list[Any], after: list[Any], depth: int) -> None:
        old, new = Counter(canonical(v) for v in before), Counter(canonical(v) for v in after)
        added, removed = new - old, old - new
        if not added and not removed:
            self._add(path, "(same elements, reordered)", "(same elements, reordered)")
            return
        moved = [i for i in range(len(before)) if before[i] != after[i]] if len(before) == len(after) else []
        if moved and len(moved) == sum(added.values()) == sum(removed.values()):
            # Elements edited where they stand (a policy statement gaining an action): by position.
            for i in moved:
                self._diff((*path, i), before[i], after[i], depth + 1)
            return
        self.found.append(AttributeChange(
            display(path), "", "",
            added=tuple(_short(v) for v in sorted(added.elements())),
            removed=tuple(_short(v) for v in sorted(removed.elements()))))

    def _add(self, path: Path, before: str, after: str) -> None:
        self.found.append(AttributeChange(display(path), before, after))


def _short(text: str) -> str:
    """A collection element, cut with the digest of the whole so two cut elements never read the same."""
    if len(text) <= MAX_VALUE:
        return text
    return f"{text[:MAX_VALUE - 3]}... (sha256 {hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]})"


def _at(value: Any, path: Path) -> Any:
    for part in path:
        if isinstance(value, dict) and isinstance(part, str):
            value = value.get(part)
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            value = value[part]
        else:
            return None
    return value


def _json_documents(before: str, after: str) -> tuple[Any, Any] | None:
    """Both strings parsed, when both hold a JSON object or array (policies, task definitions)."""
    parsed = []
    for text in (before, after):
        stripped = text.strip()
        if not stripped.startswith(("{", "[")):
            return None
        try:
            parsed.append(json.loads(stripped))
        except (ValueError, RecursionError):
            return None
    return parsed[0], parsed[1]


def changed_region(before: str, after: str) -> tuple[str, str]:
    """Short forms of two different strings that show where they differ, never equal to each other."""
    old, new = json.dumps(before, ensure_ascii=False), json.dumps(after, ensure_ascii=False)
    if len(old) <= MAX_VALUE and len(new) <= MAX_VALUE:
        return old, new
    start = 0
    while start < min(len(before), len(after)) and before[start] == after[start]:
        start += 1
    end = 0
    while (end < min(len(before), len(after)) - start
           and before[len(before) - 1 - end] == after[len(after) - 1 - end]):
        end += 1
    old_window = old if len(old) <= MAX_VALUE else _window(before, start, end)
    new_window = new if len(new) <= MAX_VALUE else _window(after, start, end)
    if old_window == new_window:
        old_window += f" (sha256 {digest(before)})"
        new_window += f" (sha256 {digest(after)})"
    return old_window, new_window


def _window(text: str, start: int, end: int) -> str:
    """`text` around the changed region [start, len-end), with the position of the change."""
    lo = max(0, start - _CONTEXT)
    hi = min(len(text), max(len(text) - end + _CONTEXT, lo))
    middle = text[lo:hi]
    if len(middle) > MAX_VALUE:
        middle = middle[:MAX_VALUE - 3] + "..."
    shown = json.dumps(middle, ensure_ascii=False)[1:-1]
    return (f"...{shown}" if lo else shown) + ("..." if hi < len(text) else "") + f" (at {start} of {len(text)})"
