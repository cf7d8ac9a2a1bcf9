"""`obiam reap`: find per-branch environments past their ExpiresAt tag and destroy them.

Found through the Resource Groups Tagging API by the tags every ephemeral stack
carries (obiam.naming: `obiam:ephemeral`, `Environment`, `Branch`, `ExpiresAt`).
Each is destroyed with the same command a developer would run: the cdktf CLI,
with OBIAM_EPHEMERAL_BRANCH naming the branch so the app rebuilds that stack.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import boto3

from obiam import ephemeral
from obiam.naming import BRANCH_TAG_KEY, EPHEMERAL_TAG_KEY, EXPIRES_AT_TAG_KEY
from obiam.ops.aws import client


@dataclass(frozen=True)
class EphemeralEnvironment:
    name: str
    branch: str | None
    expires_at: datetime | None
    resources: int

    def expired(self, now: datetime) -> bool:
        # No readable expiry means the environment cannot be proven alive: treat it as expired.
        return self.expires_at is None or self.expires_at <= now


def find_ephemeral_environments(aws: boto3.session.Session, region: str) -> list[EphemeralEnvironment]:
    tagging = client(aws, "resourcegroupstaggingapi", region)
    found: dict[str, dict[str, object]] = {}
    for page in tagging.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": EPHEMERAL_TAG_KEY, "Values": ["true"]}]):
        for mapping in page["ResourceTagMappingList"]:
            tags = {t["Key"]: t["Value"] for t in mapping.get("Tags", [])}
            name = tags.get("Environment")
            if not name:
                continue
            entry = found.setdefault(name, {"branch": None, "expires": None, "count": 0})
            entry["count"] = int(str(entry["count"])) + 1
            entry["branch"] = entry["branch"] or tags.get(BRANCH_TAG_KEY)
            entry["expires"] = entry["expires"] or tags.get(EXPIRES_AT_TAG_KEY)
    return [EphemeralEnvironment(name, _str(entry["branch"]), _parse(entry["expires"]), int(str(entry["count"])))
            for name, entry in sorted(found.items())]


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _parse(value: object) -> datetime | None:
    try:
        return ephemeral.parse_created_at(str(value)) if value else None
    except ValueError:
        return None


def destroy_command(environment: EphemeralEnvironment, ttl_hours: int) -> tuple[list[str], dict[str, str]]:
    """The command that destroys one environment, and the variables it needs.

    The creation time is set back from ExpiresAt so the synthesized stack matches what
    was deployed; the cdktf CLI then runs `terraform destroy` against its state.
    """
    if environment.branch is None:
        raise ValueError(f"{environment.name} has no {BRANCH_TAG_KEY} tag; destroy it by hand")
    if ephemeral.stack_name(environment.branch) != environment.name:
        raise ValueError(f"{environment.name}: its {BRANCH_TAG_KEY} tag {environment.branch!r} names stack "
                         f"{ephemeral.stack_name(environment.branch)}; destroy it by hand")
    variables = {ephemeral.BRANCH_VARIABLE: environment.branch}
    if environment.expires_at is not None:
        created = environment.expires_at - timedelta(hours=ttl_hours)
        variables[ephemeral.CREATED_AT_VARIABLE] = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    return ["npx", "cdktf", "destroy", environment.name, "--auto-approve"], variables


Runner = Callable[[Sequence[str], dict[str, str]], int]


def run_command(command: Sequence[str], variables: dict[str, str]) -> int:
    return subprocess.run(list(command), env={**os.environ, **variables}, check=False).returncode


def now() -> datetime:
    return datetime.now(tz=UTC)
