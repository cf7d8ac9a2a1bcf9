"""Loading `environments/*.yaml` into validated `Environment`s, with readable errors.

Every problem becomes one line naming the file, the dotted field path, the value
and what is allowed. Nothing here imports cdktf, so config errors surface in a
fraction of a second, before the 7 s provider load, and nothing is written.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from obiam.config import EnvironmentConfig, RuleViolations

EPHEMERAL_TEMPLATE = "ephemeral"
# Names end up in ALB and target-group names (32 characters at most) after "obiam-".
_ENV_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])$")


class ConfigError(Exception):
    """One or more problems in environment files; `str()` is the report, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Environment:
    """A validated environment: its stack name, its config, and where the config came from."""

    name: str
    config: EnvironmentConfig
    source: str
    # Set only for per-branch environments made from the ephemeral template.
    branch: str | None = None
    expires_at: str | None = None


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate keys, which PyYAML would resolve silently to the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path, source: str) -> dict[str, Any]:
    """The file's top-level mapping; every way of failing becomes a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{source}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"{source}: cannot be read: {error}"]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError([f"{source}: not valid YAML: {where}{problem}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a mapping of keys to values, "
                           f"not a {type(data).__name__}"])
    return data


def parse_environment(name: str, data: dict[str, Any], source: str, *, branch: str | None = None,
                      expires_at: str | None = None) -> Environment:
    """Validates already-parsed data; raises ConfigError listing every problem."""
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise ConfigError([f"{source}: environment name {name!r}: allowed: 2-20 characters, lower-case letters, "
                           "digits and -, starting with a letter (it becomes part of AWS resource names)"])
    try:
        config = EnvironmentConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(source, error)) from None
    return Environment(name=name, config=config, source=source, branch=branch, expires_at=expires_at)


def load_environment(path: Path, root: Path | None = None) -> Environment:
    source = _display_path(path, root)
    return parse_environment(path.stem, read_yaml(path, source), source)


def discover(directory: Path) -> list[Path]:
    """Environment files in a stable order; the ephemeral template is among them."""
    return sorted(p for p in directory.glob("*.yaml") if p.is_file())


def load_all(directory: Path, root: Path | None = None) -> list[Environment]:
    """Every environment file in `directory`, validated together so one run reports every problem."""
    problems: list[str] = []
    environments: list[Environment] = []
    paths = discover(directory)
    if not paths:
        raise ConfigError([f"{_display_path(directory, root)}: no environment files (*.yaml) found"])
    for path in paths:
        try:
            environments.append(load_environment(path, root))
        except ConfigError as error:
            problems.extend(error.problems)
    if problems:
        raise ConfigError(problems)
    return environments


def _display_path(path: Path, root: Path | None) -> str:
    root = root or Path.cwd()
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def format_validation_error(source: str, error: ValidationError) -> list[str]:
    lines: list[str] = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        context = item.get("ctx") or {}
        cause = context.get("error")
        if isinstance(cause, RuleViolations):
            for rel, value, message in cause.violations:
                lines.append(_line(source, loc + rel, value, message, value is not None))
            continue
        kind = item["type"]
        value = item.get("input")
        if kind == "missing":
            lines.append(_line(source, loc, None, "required, and has no default", False))
        elif kind == "extra_forbidden":
            lines.append(_line(source, loc, value, _unknown_key_message(loc), True))
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
            lines.append(_line(source, loc, value, message + _yaml_hint(kind, value), True))
    return lines


def _line(source: str, loc: Iterable[str | int], value: Any, message: str, show_value: bool) -> str:
    path = _dotted(loc) or "(top level)"
    shown = f" = {_show(value)}" if show_value else ""
    return f"{source}: {path}{shown}: {message}"


def _dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        else:
            out += ("." if out else "") + part
    return out


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "{...}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _yaml_hint(kind: str, value: Any) -> str:
    if kind in ("string_type", "literal_error") and isinstance(value, bool):
        return " (YAML reads unquoted yes/no/on/off/true/false as booleans: quote the value)"
    if kind == "string_type" and isinstance(value, int | float):
        return f" (YAML read {value!r} as a number: quote it, e.g. \"{value}\")"
    return ""


def _unknown_key_message(loc: tuple[str | int, ...]) -> str:
    model = _model_at(loc[:-1])
    if model is None:
        return "unknown key"
    allowed = list(model.model_fields)
    where = _dotted(loc[:-1]) or "the top level"
    guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    return f"unknown key{hint}; allowed keys in {where}: {', '.join(allowed)}"


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = EnvironmentConfig
    for part in loc:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _nested_model(field.annotation) if field else None
    return model


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None
