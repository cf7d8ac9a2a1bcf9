"""Loading `environments/*.yaml` into validated `Environment`s, with readable errors.

Every problem becomes one line naming the file, the dotted field path, the value
and what is allowed. Nothing here imports cdktf, so config errors surface in a
fraction of a second, before the 7 s provider load, and nothing is written.
"""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from obiam import naming, safe_yaml
from obiam.config import FROM_BRANCH_BASE, BranchBaseConfig, EnvironmentConfig
from obiam.config_values import ENVIRONMENT_NAME, RuleViolations
from obiam.safe_yaml import dotted, show

EPHEMERAL_TEMPLATE = "ephemeral"
# The top-level key and value that make a file a branch base instead of an environment.
BRANCH_BASE_KIND = "branch-base"
# A list of 10,000 wrong values is reported by its first problems, not 10,000 lines.
MAX_PROBLEMS_PER_FILE = 25
_M = typing.TypeVar("_M", bound=BaseModel)


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
    # Set only for a per-branch environment standing on a branch base (ephemeral.base).
    base: BranchBase | None = None

    @property
    def default_tags(self) -> dict[str, str]:
        """Tags the AWS provider puts on every resource of the environment."""
        tags = self.config.tags
        return naming.default_tags(environment=self.name, owner=tags.owner, cost_center=tags.cost_center,
                                   extra=tags.extra, branch=self.branch, expires_at=self.expires_at)


@dataclass(frozen=True)
class BranchBase:
    """A validated branch base (`kind: branch-base`): the shared VPC, directory and database server
    of the per-branch environments in one account."""

    name: str
    config: BranchBaseConfig
    source: str

    @property
    def default_tags(self) -> dict[str, str]:
        tags = self.config.tags
        return naming.default_tags(environment=self.name, owner=tags.owner, cost_center=tags.cost_center,
                                   extra=tags.extra)


# Either kind of stack the toolkit synthesizes: an environment, or a branch base.
Deployable = Environment | BranchBase


@dataclass(frozen=True)
class Catalog:
    """Every file of an environments directory: the environments and the branch bases."""

    environments: list[Environment]
    bases: list[BranchBase]


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
                      expires_at: str | None = None, base: BranchBase | None = None) -> Environment:
    """Validates already-parsed data; raises ConfigError listing every problem."""
    _check_name(name, source)
    config = _validate(EnvironmentConfig, data, source)
    named = config.ephemeral.base if config.ephemeral else None
    if named != (base.name if base else None):
        # The stack builds on `base`, the user data on the config: they must agree.
        raise ConfigError([f"{source}: ephemeral.base = {show(named)}, but the branch base read with it is "
                           f"{show(base.name if base else None)}; allowed: read the file with load_file, which "
                           "reads the base it names from beside it"])
    return Environment(name=name, config=config, source=source, branch=branch, expires_at=expires_at, base=base)


def parse_branch_base(name: str, data: dict[str, Any], source: str) -> BranchBase:
    _check_name(name, source)
    return BranchBase(name=name, config=_validate(BranchBaseConfig, data, source), source=source)


def _check_name(name: str, source: str) -> None:
    if not isinstance(name, str) or not ENVIRONMENT_NAME.match(name):
        raise ConfigError([f"{source}: environment name {show(name)}: allowed: 2-20 characters, lower-case letters, "
                           "digits and -, starting with a letter (it becomes part of AWS resource names)"])


def _validate(model: type[_M], data: dict[str, Any], source: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = format_validation_error(source, error, model)
        if len(problems) > MAX_PROBLEMS_PER_FILE:
            problems[MAX_PROBLEMS_PER_FILE - 1:] = [f"{source}: ... and {len(problems) - MAX_PROBLEMS_PER_FILE + 1} "
                                                    "more problems"]
        raise ConfigError(problems) from None


def load_file(path: Path, root: Path | None = None) -> Environment | BranchBase:
    """An environment file, or a branch base if it says `kind: branch-base`. An environment that
    names a base (ephemeral.base) takes its network, database and directory from that base's file
    beside it."""
    source = _display_path(path, root)
    if path.suffix != ".yaml":
        raise ConfigError([f"{source}: not read: environment files are named <environment>.yaml (make synth and "
                           f"obiam --env read only those); rename it to {show(path.stem + '.yaml')}"])
    data = read_yaml(path, source)
    if data.get("kind") == BRANCH_BASE_KIND:
        return parse_branch_base(path.stem, data, source)
    base_name = _named_base(data)
    if base_name is None:
        return parse_environment(path.stem, data, source)
    where = f"{source}: ephemeral.base = {show(base_name)}"
    base_path = path.parent / f"{base_name}.yaml"
    if not base_path.is_file():
        raise ConfigError([f"{where}: no such branch base ({_display_path(base_path, root)}); allowed: the name of "
                           f"a file in the same directory with kind: {BRANCH_BASE_KIND}"])
    base = load_file(base_path, root)
    if not isinstance(base, BranchBase):
        raise ConfigError([f"{where}: {base.source} is an environment, not a branch base; allowed: a file with "
                           f"kind: {BRANCH_BASE_KIND}"])
    again = [key for key in FROM_BRANCH_BASE if key in data]
    if again:
        raise ConfigError([f"{source}: {', '.join(again)}: comes from the branch base {base.source} "
                           "(ephemeral.base), for every branch environment alike; remove it here"])
    shared = base.config.model_dump(include=set(FROM_BRANCH_BASE))
    environment = parse_environment(path.stem, {**data, **shared}, source, base=base)
    problems = []
    if base.config.account.id != environment.config.account.id:
        problems.append(f"{where}: the base is in account {base.config.account.id}, this file in "
                        f"{environment.config.account.id} (account.id); allowed: a base of the same account")
    if base.config.region != environment.config.region:
        problems.append(f"{where}: the base is in {base.config.region}, this file in {environment.config.region} "
                        "(region); allowed: a base of the same region")
    if problems:
        raise ConfigError(problems)
    return environment


def _named_base(data: dict[str, Any]) -> str | None:
    """ephemeral.base if it is a well-formed name; anything else is left to validation to report."""
    settings = data.get("ephemeral")
    name = settings.get("base") if isinstance(settings, dict) else None
    return name if isinstance(name, str) and ENVIRONMENT_NAME.match(name) else None


def load_environment(path: Path, root: Path | None = None) -> Environment:
    loaded = load_file(path, root)
    if isinstance(loaded, BranchBase):
        raise ConfigError([f"{loaded.source}: is a branch base (kind: {BRANCH_BASE_KIND}), not an environment; "
                           "allowed here: an environment name (a branch base is deployed with cdktf deploy "
                           f"{loaded.name} and used through ephemeral.base)"])
    return loaded


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
    return load_catalog(directory, root).environments


def load_catalog(directory: Path, root: Path | None = None) -> Catalog:
    """Every file in `directory` (environments and branch bases), validated together."""
    problems: list[str] = []
    environments: list[Environment] = []
    bases: list[BranchBase] = []
    paths = discover(directory, root)
    if not paths:
        raise ConfigError([f"{_display_path(directory, root)}: no environment files (*.yaml) found"])
    for path in paths:
        try:
            loaded = load_file(path, root)
        except ConfigError as error:
            problems.extend(error.problems)
            continue
        if isinstance(loaded, BranchBase):
            bases.append(loaded)
        else:
            environments.append(loaded)
    if problems:
        # A broken base is reported once, not again for every template standing on it.
        raise ConfigError(list(dict.fromkeys(problems)))
    return Catalog(environments, bases)


def _display_path(path: Path, root: Path | None) -> str:
    root = root or Path.cwd()
    try:  # the parent only: the file itself may be a dangling link or a link loop
        return (path.parent.resolve() / path.name).relative_to(root.resolve()).as_posix()
    except (ValueError, OSError, RuntimeError):  # RuntimeError: Python 3.11's pathlib on a link loop
        return path.as_posix()


def format_validation_error(source: str, error: ValidationError,
                            root: type[BaseModel] = EnvironmentConfig) -> list[str]:
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
            lines.append(_line(source, loc, value, _unknown_key_message(loc, root), True))
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


def _unknown_key_message(loc: tuple[str | int, ...], root: type[BaseModel]) -> str:
    model = _model_at(loc[:-1], root)
    if model is None:
        return "unknown key"
    allowed = list(model.model_fields)
    where = dotted(loc[:-1]) or "the top level"
    guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    return f"unknown key{hint}; allowed keys in {where}: {', '.join(allowed)}"


def _model_at(loc: tuple[str | int, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
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
