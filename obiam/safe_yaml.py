"""One YAML file read into plain Python data, in bounded time and memory whatever it holds.

PyYAML's SafeLoader, with what an environment file needs and what a hostile or broken one must
not get:

- at most MAX_FILE_BYTES of UTF-8. A byte order mark at the start is accepted (YAML 1.2,
  section 5.2 allows one, and Windows editors write it); UTF-16 and UTF-32 are refused.
- no duplicate keys (PyYAML silently keeps the last one), checked on the keys a mapping spells
  out, so merge keys (`<<: *defaults`) work and the mapping may override what they bring in, as
  YAML's merge type says.
- keys are text: a mapping, a list, a number, a boolean or null used as a key is refused.
- at most MAX_VALUES values once aliases are expanded, nested at most MAX_DEPTH levels, and no
  alias that contains itself: an alias bomb ("billion laughs") is refused from its node graph,
  before anything is expanded, and nothing ever prints the expanded value.
- integers of at most MAX_INT_CHARACTERS characters (Python refuses to convert longer decimal
  ones, and no setting takes anything near that).

Every problem is a YamlFileError whose text is one line, with a line and column or the path of
the field; nothing here raises anything else.
"""

from __future__ import annotations

import codecs
import errno
import os
import re
import reprlib
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 256 * 1024
MAX_VALUES = 10_000
MAX_DEPTH = 32
MAX_INT_CHARACTERS = 32

_STR_TAG = "tag:yaml.org,2002:str"
_INT_TAG = "tag:yaml.org,2002:int"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TAG_KINDS = {"tag:yaml.org,2002:int": "a number", "tag:yaml.org,2002:float": "a number",
              "tag:yaml.org,2002:bool": "a boolean", "tag:yaml.org,2002:null": "null",
              "tag:yaml.org,2002:timestamp": "a date"}
_A_FILE = "allowed: a regular file (or a symbolic link to one)"
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.:/=+@-]{1,64}")


class YamlFileError(Exception):
    """Why a file could not be read as YAML; `str()` is one line without the file name."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader; duplicate keys and the other limits are checked on the node graph (check_tree)."""

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """YAML's merge key type (yaml.org/type/merge.html): the mapping's own keys win over merged
        ones, and of a list of merged mappings the earlier ones win. PyYAML 6.0.4 lets a later
        mapping win (it drops repeated keys by the id() of their strings, which differ)."""
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        own: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                own.append((key_node, value_node))
                continue
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"expected a mapping or a list of mappings to merge (<<), but found a {source.id}",
                        source.start_mark)
                self.flatten_mapping(source)
                merged.extend(source.value)
        if len(own) == len(node.value):
            return
        first: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for pair in merged:  # check_tree has made sure every key is a text scalar
            first.setdefault(pair[0].value, pair)
        node.value = [*first.values(), *own]


def read_file(path: Path) -> Any:
    """The file's YAML document as Python data (None when it is empty)."""
    return load(decode(read_bytes(path)))


def read_bytes(path: Path) -> bytes:
    """At most MAX_FILE_BYTES of a regular file; a directory, FIFO or device is never opened."""
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO, socket or device"
            raise YamlFileError(f"is {kind}, not a file; {_A_FILE}")
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise YamlFileError(unreadable(path, error)) from None
    if len(data) > MAX_FILE_BYTES:
        raise YamlFileError(f"is larger than {MAX_FILE_BYTES // 1024} KiB; allowed: at most "
                            f"{MAX_FILE_BYTES // 1024} KiB (an environment file is a few KiB)")
    return data


def unreadable(path: Path, error: OSError, allowed: str = _A_FILE) -> str:
    """Why `path` cannot be opened, in words: a dangling link and a link loop are named as such."""
    if error.errno == errno.ELOOP:
        return f"is a symbolic link loop; {allowed}"
    if isinstance(error, FileNotFoundError):
        if path.is_symlink():
            return f"is a symbolic link to {show(os.readlink(path))}, which does not exist; {allowed}"
        return "file not found"
    if isinstance(error, PermissionError):
        return "cannot be read: permission denied"
    return f"cannot be read: {error.strerror or type(error).__name__}"


def decode(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)):
        raise YamlFileError("is UTF-16 or UTF-32 (its byte order mark says so); allowed: UTF-8 text, "
                            "with or without a byte order mark: save the file as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise YamlFileError(f"is not UTF-8: line {line}, byte {column} is 0x{data[error.start]:02x}; allowed: "
                            "UTF-8 text, with or without a byte order mark: save the file as UTF-8") from None


def load(text: str) -> Any:
    """The single YAML document in `text`, checked against the limits above before it is built."""
    loader: _UniqueKeyLoader | None = None
    try:
        loader = _UniqueKeyLoader(text)  # checks every character first (ReaderError)
        node = loader.get_single_node()
        if node is None:
            return None
        check_tree(node)
        return loader.construct_document(node)
    except RecursionError:  # the composer recurses once per level: a file of 100,000 `[`
        raise YamlFileError(f"nested deeper than {MAX_DEPTH} levels; allowed: at most {MAX_DEPTH}") from None
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        raise YamlFileError(f"not valid YAML: line {line}, column {column}: character #x{error.character:04x} is "
                            "not allowed; allowed: printable characters, tabs and line breaks") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = getattr(error, "context", None)
        problem = " ".join(f"{context + ', ' if context else ''}{getattr(error, 'problem', None) or error}".split())
        raise YamlFileError(f"not valid YAML: {where}{_cut(problem, 200)}") from None
    finally:
        if loader is not None:
            loader.dispose()


def check_tree(root: yaml.Node) -> None:
    """Refuses, from the node graph alone, what must never be built: every node is visited once,
    however often aliases repeat it, and its expanded size and depth come from its children's."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    entered: set[int] = set()
    work: list[tuple[yaml.Node, tuple[str | int, ...], bool]] = [(root, (), False)]
    while work:
        node, path, finished = work.pop()
        key = id(node)
        if finished:
            entered.discard(key)
            children = [child for _, child in _children(node)]
            size[key] = 1 + sum(size[id(child)] for child in children)
            depth[key] = 1 + max((depth[id(child)] for child in children), default=0)
            if size[key] > MAX_VALUES:
                raise YamlFileError(f"{dotted(path) or '(top level)'}: expands to more than {MAX_VALUES} values "
                                    f"through aliases (&anchor / *alias); allowed: at most {MAX_VALUES}")
            if depth[key] > MAX_DEPTH:
                raise YamlFileError(f"{dotted(path) or '(top level)'}: nested deeper than {MAX_DEPTH} levels; "
                                    f"allowed: at most {MAX_DEPTH}")
            continue
        if key in size:
            continue
        if key in entered:
            raise YamlFileError(f"{dotted(path) or '(top level)'}: an alias (*name) refers to a value that contains "
                                "it, which never ends; allowed: aliases to values outside the alias itself")
        _check_node(node, path)
        entered.add(key)
        work.append((node, path, True))
        # Reversed, so the first child is entered first: a node repeated by aliases is reported at its
        # first place in the file, which is where its anchor is.
        work.extend(reversed([(child, (*path, name), False) for name, child in _children(node)]))


def _children(node: yaml.Node) -> Iterable[tuple[str | int, yaml.Node]]:
    if isinstance(node, yaml.SequenceNode):
        return enumerate(node.value)
    if isinstance(node, yaml.MappingNode):
        return ((str(key.value), value) for key, value in node.value)
    return ()


def _check_node(node: yaml.Node, path: tuple[str | int, ...]) -> None:
    where = dotted(path) or "(top level)"
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _INT_TAG and len(node.value) > MAX_INT_CHARACTERS:
            raise YamlFileError(f"{where} = {show(node.value, 24)} ({len(node.value)} characters): allowed: numbers "
                                f"of at most {MAX_INT_CHARACTERS} characters")
        return
    if not isinstance(node, yaml.MappingNode):
        return
    seen: set[str] = set()
    for key, _ in node.value:
        mark = f"line {key.start_mark.line + 1}, column {key.start_mark.column + 1}"
        if key.tag == _MERGE_TAG:
            name = "<<"
        elif not isinstance(key, yaml.ScalarNode):
            kind = "a mapping" if isinstance(key, yaml.MappingNode) else "a list"
            raise YamlFileError(f"{where}: {mark}: {kind} used as a key; allowed: keys that are names (text)")
        elif key.tag != _STR_TAG:
            kind = _TAG_KINDS.get(key.tag, f"tag {show(key.tag, 40)}")
            raise YamlFileError(f"{where}: {mark}: key {show(key.value)} is read by YAML as {kind}; allowed: keys "
                                f"that are names (text): quote it, e.g. \"{_cut(key.value, 40)}\"")
        else:
            name = key.value
        if name in seen:
            raise YamlFileError(f"not valid YAML: {mark}: duplicate key {show(name)} in {where}")
        seen.add(name)


def dotted(loc: Iterable[str | int]) -> str:
    """A field path as the README spells it: `nodes.instance_type`, `availability_zones[0]`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        else:
            out += ("." if out else "") + (part if _PLAIN_KEY.fullmatch(part) else show(part, 40))
    return out


_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxtuple, _repr.maxset, _repr.maxdict = 3, 6, 6, 6, 4
_repr.maxstring, _repr.maxother, _repr.maxlong = 120, 120, 120


def show(value: Any, limit: int = 80) -> str:
    """`repr(value)` in at most `limit` characters, without ever building the whole of a large value."""
    if isinstance(value, dict):
        return "{...}"
    if isinstance(value, str):
        return _cut(repr(value[:limit]), limit)
    try:
        text = _repr.repr(value)
    except ValueError:  # an integer Python refuses to print in decimal
        return f"<an integer of {value.bit_length()} bits>" if isinstance(value, int) else "<unprintable>"
    return _cut(text, limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
