"""Per-branch environments made from `environments/ephemeral.yaml`."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

from obiam.environments import Environment, parse_environment

# Environment variables the app reads (main.py / stacks.app); documented in the README.
BRANCH_VARIABLE = "OBIAM_EPHEMERAL_BRANCH"
CREATED_AT_VARIABLE = "OBIAM_EPHEMERAL_CREATED_AT"

_PREFIX = "eph-"
_SLUG_LENGTH = 9  # "eph-" + 9 + "-" + 6 = 20, the longest environment name


def stack_name(branch: str) -> str:
    """A short, stable, valid environment name for a branch or PR ref.

    The slug keeps it readable; the hash of the full ref keeps two branches with
    the same first characters apart.
    """
    if not branch.strip():
        raise ValueError("branch name is empty")
    slug = re.sub(r"[^a-z0-9]+", "-", branch.lower()).strip("-")[:_SLUG_LENGTH].strip("-") or "branch"
    digest = hashlib.sha256(branch.encode("utf-8")).hexdigest()[:6]
    return f"{_PREFIX}{slug}-{digest}"


def parse_created_at(value: str) -> datetime:
    """An ISO 8601 timestamp or Unix seconds, as UTC."""
    text = value.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text), tz=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def from_template(template: Environment, branch: str, created_at: datetime) -> Environment:
    """The template's config under the branch's stack name, tagged with the branch and its expiry."""
    ttl = template.config.ephemeral.ttl_hours if template.config.ephemeral else 72
    expires = (created_at.astimezone(UTC) + timedelta(hours=ttl)).replace(microsecond=0)
    return parse_environment(
        stack_name(branch), template.config.model_dump(), template.source, branch=branch,
        expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"))
