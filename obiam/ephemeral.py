"""Per-branch environments made from `environments/ephemeral.yaml`."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from obiam.branch_scope import BRANCH_ENVIRONMENT_PREFIX
from obiam.config_values import BRANCH_VPC_PREFIX
from obiam.environments import ConfigError, Environment, parse_environment
from obiam.naming import TAG_VALUE_ALLOWED, tag_value_problem
from obiam.safe_yaml import show

# Environment variables the app reads (main.py / stacks.app); documented in the README.
BRANCH_VARIABLE = "OBIAM_EPHEMERAL_BRANCH"
CREATED_AT_VARIABLE = "OBIAM_EPHEMERAL_CREATED_AT"
# When the branch's pull request was opened: pushes move ExpiresAt on, but never past this plus
# ephemeral.max_lifetime_hours.
OPENED_AT_VARIABLE = "OBIAM_EPHEMERAL_OPENED_AT"

_PREFIX = BRANCH_ENVIRONMENT_PREFIX
_SLUG_LENGTH = 9  # "eph-" + 9 + "-" + 6 = 20, the longest environment name
# Creation times the app accepts: Unix time 0 up to a time whose expiry (at most 14 days later,
# ephemeral.ttl_hours) still fits Python's and Terraform's four-digit years.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 1, tzinfo=UTC)
_CREATED_AT_ALLOWED = ("allowed: an ISO 8601 timestamp such as 2026-11-24T10:00:00Z, or Unix seconds, from "
                       f"{EARLIEST:%Y-%m-%dT%H:%M:%SZ} to {LATEST:%Y-%m-%dT%H:%M:%SZ}")


def stack_name(branch: str) -> str:
    """A short, stable, valid environment name for a branch or PR ref.

    The slug keeps it readable; the hash of the full ref keeps two branches with
    the same first characters apart.
    """
    if not branch.strip():
        raise ValueError("branch name is empty")
    slug = re.sub(r"[^a-z0-9]+", "-", branch.lower()).strip("-")[:_SLUG_LENGTH].strip("-") or "branch"
    # surrogatepass: a name read from a non-UTF-8 environment still hashes instead of crashing.
    digest = hashlib.sha256(branch.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return f"{_PREFIX}{slug}-{digest}"


def branch_problem(branch: str) -> str | None:
    """Why `branch` cannot name a per-branch environment, or None.

    It becomes the `Branch` tag as it is, never rewritten: `obiam reap` rebuilds the stack from
    that tag (its stack name must be stack_name(tag)), so a branch whose name is not a valid AWS
    tag value is refused rather than sanitized.
    """
    if not branch.strip():
        return "blank; allowed: a branch or pull-request name such as pr-42 or feature/login"
    problem = tag_value_problem(branch)
    if problem is not None:
        return (f"it becomes the Branch tag, and AWS refuses a tag value with {problem}; allowed: {TAG_VALUE_ALLOWED} "
                "(the CI workflow passes pr-<number>)")
    return None


def parse_created_at(value: str) -> datetime:
    """An ISO 8601 timestamp or Unix seconds, as UTC; ValueError, with what is allowed, otherwise."""
    text = value.strip()
    if not text:
        raise ValueError(f"blank; {_CREATED_AT_ALLOWED}")
    if not text.isascii():
        raise ValueError(f"not ASCII; {_CREATED_AT_ALLOWED}")
    if text.isdigit():
        # Compared as digits first: int() of 5000 digits is refused, and of 4000 slow.
        if len(text) > len(str(int(LATEST.timestamp()))) or int(text) > LATEST.timestamp():
            raise ValueError(f"out of range; {_CREATED_AT_ALLOWED}")
        return datetime.fromtimestamp(int(text), tz=UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        parsed = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(_CREATED_AT_ALLOWED) from None
    except OverflowError:  # astimezone() past year 1 or 9999
        raise ValueError(f"out of range; {_CREATED_AT_ALLOWED}") from None
    if not EARLIEST <= parsed <= LATEST:
        raise ValueError(f"out of range; {_CREATED_AT_ALLOWED}")
    return parsed


def variables(environ: Mapping[str, str]) -> tuple[str | None, datetime | None]:
    """OBIAM_EPHEMERAL_BRANCH and OBIAM_EPHEMERAL_CREATED_AT from `environ`, checked; empty means unset.

    Every problem is a ConfigError line naming the variable, its value (cut short) and what is allowed.
    """
    problems: list[str] = []
    branch = environ.get(BRANCH_VARIABLE) or None
    if branch is not None and (problem := branch_problem(branch)) is not None:
        problems.append(f"{BRANCH_VARIABLE} = {show(branch)}: {problem}")
    created_raw = environ.get(CREATED_AT_VARIABLE) or None
    created = None
    if created_raw is not None:
        try:
            created = parse_created_at(created_raw)
        except ValueError as error:
            problems.append(f"{CREATED_AT_VARIABLE} = {show(created_raw)}: {error}")
    if problems:
        raise ConfigError(problems)
    return branch, created


def opened_at(environ: Mapping[str, str]) -> datetime | None:
    """OBIAM_EPHEMERAL_OPENED_AT from `environ`, checked; empty means unset."""
    raw = environ.get(OPENED_AT_VARIABLE) or None
    if raw is None:
        return None
    try:
        return parse_created_at(raw)
    except ValueError as error:
        raise ConfigError([f"{OPENED_AT_VARIABLE} = {show(raw)}: {error}"]) from None


def from_template(template: Environment, branch: str, created_at: datetime,
                  opened: datetime | None = None) -> Environment:
    """The template's config under the branch's stack name, tagged with the branch and its expiry:
    ttl_hours after this deploy, but never more than max_lifetime_hours after `opened`."""
    problem = branch_problem(branch)
    if problem is not None:
        raise ConfigError([f"branch {show(branch)}: {problem}"])
    settings = template.config.ephemeral
    ttl = settings.ttl_hours if settings else 72
    expires = (created_at.astimezone(UTC) + timedelta(hours=ttl)).replace(microsecond=0)
    if opened is not None and settings is not None:
        expires = min(expires, (opened.astimezone(UTC) + timedelta(hours=settings.max_lifetime_hours))
                      .replace(microsecond=0))
    name = stack_name(branch)
    data = template.config.model_dump()
    if settings is not None and settings.domain:
        # Its own URL, and WSO2's hostname with it (the certificate covers *.<domain>).
        data["load_balancer"]["hostname"] = f"{name}.{settings.domain}"
    if settings is not None and settings.vpc_cidr_pool and template.config.network.existing_vpc is None:
        data["network"]["vpc_cidr"] = branch_vpc_cidr(settings.vpc_cidr_pool, branch)
    return parse_environment(name, data, template.source, branch=branch,
                             expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"), base=template.base)


def branch_vpc_cidr(pool: str, branch: str) -> str:
    """The branch's own /20 of the pool, chosen by a hash of the branch name (stable across pushes)."""
    blocks = list(ipaddress.IPv4Network(pool).subnets(new_prefix=BRANCH_VPC_PREFIX))
    digest = int(hashlib.sha256(branch.encode("utf-8", "surrogatepass")).hexdigest(), 16)
    return str(blocks[digest % len(blocks)])
