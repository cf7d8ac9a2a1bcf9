"""Loading `environments/*.yaml` into validated `Environment`s, with readable errors.

Every problem becomes one line naming the file, the dotted field path, the value
and what is allowed. Nothing here imports cdktf, so config errors surface in a
fraction of a second, before the 7 s provider load, and nothing is written.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from obiam import naming, safe_yaml
from obiam.config import EnvironmentConfig
from obiam.config_values import RuleViolations
from obiam.safe_yaml import dotted, show

EPHEMERAL_TEMPLATE = "ephemeral"
# Names end up in ALB and target-group names (32 characters at most) after "obiam-".
# A list of 10,000 wrong values is reported by its first problems, not 10,000 lines.
MAX_PROBLEMS_PER_FILE = 25
ENVIRONMENT_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])$")


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

    @property
    def default_tags(self) -> dict[str, str]:
        """Tags the AWS provider puts on every resource of the environment."""
        tags = self.config.tags
        return naming.default_tags(environment=self.name, owner=tags.owner, cost_center=tags.cost_center,
                                   extra=tags.extra, branch=self.branch, expires_at=self.expires_at)


def read_yaml(path: Path, source: str) -> dict[str, Any]:
    """The file's top-level mapping; every way of failing becomes a ConfigError (obiam.safe_yaml's limits)."""
    try:
        data = safe_yaml.read_file(path)
    except safe_yaml.YamlFileError as error:
        raise ConfigError([f"{source}: {error}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a mapping of keys to values, "
                           f"not a {type(data).__name__}"])
    return data


def parse_environment(name: str, data: dict[str, Any], source: str, *, branch: str | None = None,
                      expires_at: str | None = None) -> Environment:
    """Validates already-parsed data; raises ConfigError listing every problem."""
    if not isinstance(name, str) or not ENVIRONMENT_NAME.match(name):
        raise ConfigError([f"{source}: environment name {show(name)}: allowed: 2-20 characters, lower-case letters, "
                           "digits and -, starting with a letter (it becomes part of AWS resource names)"])
    try:
        config = EnvironmentConfig.model_validate(data)
    except ValidationError as error:
        problems = format_validation_error(source, error)
        if len(problems) > MAX_PROBLEMS_PER_FILE:
            problems[MAX_PROBLEMS_PER_FILE - 1:] = [f"{source}: ... and {len(problems) - MAX_PROBLEMS_PER_FILE + 1} "
                                                    "more problems"]
        raise ConfigError(problems) from None
    return Environment(name=name, config=config, source=source, branch=branch, expires_at=expires_at)


def load_environment(path: Path, root: Path | None = None) -> Environment:
    source = _display_path(path, root)
    if path.suffix != ".yaml":
        raise ConfigError([f"{source}: not read: environment files are named <environment>.yaml (make synth and "
                           f"obiam --env read only those); rename it to {show(path.stem + '.yaml')}"])
    return parse_environment(path.stem, read_yaml(path, source), source)


def discover(directory: Path, root: Path | None = None) -> list[Path]:
    """Every entry of `directory` named like a YAML file, in a stable order; the ephemeral template is
    among them. Nothing is skipped: load_environment reports a `.yml` (or upper-case) name, and
    reading reports a dangling link, a link loop, a directory or a FIFO, each naming the file.
    """
    shown = _display_path(directory, root)
    allowed = "allowed: a directory of environment files"
    try:
        entries = sorted(os.listdir(directory))
    except FileNotFoundError:
        raise ConfigError([f"{shown}: no such directory; {allowed}"]) from None
    except NotADirectoryError:
        raise ConfigError([f"{shown}: is a file; {allowed}"]) from None
    except OSError as error:
        raise ConfigError([f"{shown}: {safe_yaml.unreadable(directory, error, allowed)}"]) from None
    return [directory / name for name in entries if name.rpartition(".")[2].lower() in ("yaml", "yml")]


def load_all(directory: Path, root: Path | None = None) -> list[Environment]:
    """Every environment file in `directory`, validated together so one run reports every problem."""
    problems: list[str] = []
    environments: list[Environment] = []
    paths = discover(directory, root)
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
    try:  # the parent only: the file itself may be a dangling link or a link loop
        return (path.parent.resolve() / path.name).relative_to(root.resolve()).as_posix()
    except (ValueError, OSError, RuntimeError):  # RuntimeError: Python 3.11's pathlib on a link loop
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
    path = dotted(loc) or "(top level)"
    shown = f" = {show(value)}" if show_value else ""
    return f"{source}: {path}{shown}: {message}"


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
    where = dotted(loc[:-1]) or "the top level"
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
