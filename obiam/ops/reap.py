"""`obiam reap`: find per-branch environments past their deadline, say so, and (with --apply) destroy them.

Found through the Resource Groups Tagging API by the tags every ephemeral stack carries
(obiam.naming: `obiam:ephemeral`, `Environment`, `Branch`, `ExpiresAt`), each identified by its
own Environment tag, never by a name branches share. The deadline is ExpiresAt, or a later
`obiam:keep-until` (`obiam keep`) capped at ExpiresAt + ephemeral.max_keep_hours. Each is destroyed
with the command a developer would run: the cdktf CLI, with OBIAM_EPHEMERAL_BRANCH naming the
branch so the app rebuilds that stack.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import boto3

from obiam import ephemeral
from obiam.naming import BRANCH_TAG_KEY, EPHEMERAL_TAG_KEY, EXPIRES_AT_TAG_KEY, KEEP_UNTIL_TAG_KEY
from obiam.ops.aws import client


@dataclass(frozen=True)
class EphemeralEnvironment:
    name: str
    branch: str | None
    expires_at: datetime | None
    resources: int
    keep_until: datetime | None = None
    arns: tuple[str, ...] = ()

    def deadline(self, max_keep_hours: int) -> datetime | None:
        """ExpiresAt, or a later keep-until tag, but never more than max_keep_hours past ExpiresAt."""
        if self.expires_at is None:
            return None
        if self.keep_until is None or self.keep_until <= self.expires_at:
            return self.expires_at
        return min(self.keep_until, self.expires_at + timedelta(hours=max_keep_hours))

    def expired(self, now: datetime, max_keep_hours: int = 0) -> bool:
        # No readable expiry means the environment cannot be proven alive: treat it as expired.
        deadline = self.deadline(max_keep_hours)
        return deadline is None or deadline <= now


def find_ephemeral_environments(aws: boto3.session.Session, region: str) -> list[EphemeralEnvironment]:
    tagging = client(aws, "resourcegroupstaggingapi", region)
    found: dict[str, dict[str, list[str]]] = {}
    for page in tagging.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": EPHEMERAL_TAG_KEY, "Values": ["true"]}]):
        for mapping in page["ResourceTagMappingList"]:
            tags = {t["Key"]: t["Value"] for t in mapping.get("Tags", [])}
            name = tags.get("Environment")
            if not name:
                continue
            entry = found.setdefault(name, {"branch": [], "expires": [], "keep": [], "arns": []})
            entry["arns"].append(mapping["ResourceARN"])
            for key, tag in (("branch", BRANCH_TAG_KEY), ("expires", EXPIRES_AT_TAG_KEY),
                             ("keep", KEEP_UNTIL_TAG_KEY)):
                if tags.get(tag):
                    entry[key].append(tags[tag])
    return [EphemeralEnvironment(
        name, entry["branch"][0] if entry["branch"] else None, _parse(_first(entry["expires"])),
        len(entry["arns"]), _latest(entry["keep"]), tuple(sorted(entry["arns"])))
        for name, entry in sorted(found.items())]


def _first(values: list[str]) -> str | None:
    return values[0] if values else None


def _latest(values: list[str]) -> datetime | None:
    parsed = [moment for moment in map(_parse, values) if moment is not None]
    return max(parsed) if parsed else None


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


@dataclass(frozen=True)
class Decision:
    environment: EphemeralEnvironment
    destroy: bool
    deadline: datetime | None
    # The destroy command as it would run, or why it cannot run (then the environment is reported).
    command: list[str] | None = None
    variables: dict[str, str] | None = None
    problem: str | None = None

    def as_json(self) -> dict[str, object]:
        environment = self.environment
        return {"name": environment.name, "branch": environment.branch,
                "expires_at": _iso(environment.expires_at), "keep_until": _iso(environment.keep_until),
                "deadline": _iso(self.deadline), "action": "destroy" if self.destroy else "keep",
                "resources": environment.resources, "problem": self.problem}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def decide(found: list[EphemeralEnvironment], moment: datetime, *, ttl_hours: int,
           max_keep_hours: int) -> list[Decision]:
    decisions = []
    for environment in found:
        deadline = environment.deadline(max_keep_hours)
        if not environment.expired(moment, max_keep_hours):
            decisions.append(Decision(environment, False, deadline))
            continue
        try:
            command, variables = destroy_command(environment, ttl_hours)
        except ValueError as problem:
            decisions.append(Decision(environment, True, deadline, problem=str(problem)))
            continue
        decisions.append(Decision(environment, True, deadline, command, variables))
    return decisions


def notice(decisions: list[Decision], account: str, region: str, leftovers: Sequence[str] = ()) -> str:
    """What the reaper is about to destroy, for people (printed, and sent to SNS when asked); `leftovers`:
    branches with no live environment whose databases on the branch base are about to be dropped."""
    doomed = [d for d in decisions if d.destroy]
    lines = [f"obiam reap in account {account}, {region}: {len(doomed)} per-branch environment(s) past their "
             "deadline will be destroyed:"]
    lines += [f"- {d.environment.name} (branch {d.environment.branch or '?'}, deadline "
              f"{_iso(d.deadline) or 'unreadable'}, {d.environment.resources} tagged resources)" for d in doomed]
    if leftovers:
        lines.append(f"and the databases and users of {len(leftovers)} branch(es) no live environment owns will be "
                     f"dropped from the branch base: {', '.join(leftovers)}")
    lines.append("Keep one longer: obiam keep --branch <branch> --hours N (before the next run).")
    return "\n".join(lines)


def keep(aws: boto3.session.Session, region: str, environment: EphemeralEnvironment, until: datetime,
         max_keep_hours: int) -> None:
    """Tags the environment with obiam:keep-until (one resource carries it; the reaper reads them all)."""
    if environment.expires_at is None:
        raise ValueError(f"{environment.name} has no readable {EXPIRES_AT_TAG_KEY} tag; it cannot be kept")
    latest = environment.expires_at + timedelta(hours=max_keep_hours)
    if until > latest:
        raise ValueError(f"{environment.name} may be kept until {_iso(latest)} at the latest ({EXPIRES_AT_TAG_KEY} "
                         f"{_iso(environment.expires_at)} + ephemeral.max_keep_hours {max_keep_hours}); a push to "
                         "its branch moves ExpiresAt on")
    # The VPC when there is one: it carries few tags, so one more stays within AWS's 50.
    target = next((arn for arn in environment.arns if ":vpc/" in arn), environment.arns[0])
    client(aws, "resourcegroupstaggingapi", region).tag_resources(
        ResourceARNList=[target], Tags={KEEP_UNTIL_TAG_KEY: _iso(until) or ""})


Runner = Callable[[Sequence[str], dict[str, str]], int]


def run_command(command: Sequence[str], variables: dict[str, str]) -> int:
    return subprocess.run(list(command), env={**os.environ, **variables}, check=False).returncode


def now() -> datetime:
    return datetime.now(tz=UTC)
