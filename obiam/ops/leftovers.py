"""What branches left on their branch base's shared database server.

A branch's destroy drops its databases and user (the base's function, invoked by Terraform with
tf.action "delete"). Something can still be left behind: a first apply that failed after the
function created the databases (a failed create is not in the state, so no destroy deletes it),
or a branch whose state was lost. `obiam reap` asks the base's function for every `eph_` name on
the server (`{"inventory": true}`, which changes nothing), and reports the ones no live branch
environment owns. A live branch is any with a tagged resource, expired or not: an expired one is
destroyed through Terraform, which drops its databases itself.

Dropping a leftover is never automatic: a branch being created at that very moment can have its
databases before the Resource Groups Tagging API lists its first resource, and dropping them
would leave it broken (its next apply sees no change to make). `reap --apply --drop-leftovers` is
for a person who has read the report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from obiam import branch_scope, wso2
from obiam.ops.aws import OpsError

# Every WSO2 database name a branch can have, in any supported product version: a database is a
# branch's when it is `<branch scope>_<one of these>`.
_WSO2_DATABASES = sorted({d.name for product in wso2.PRODUCTS.values() for d in product.databases},
                         key=len, reverse=True)


@dataclass(frozen=True)
class Leftover:
    """One branch's databases and user on the server with no live branch environment."""

    scope: str  # the branch's user name and database prefix, eph_<stack name with _>
    databases: tuple[str, ...]
    user: bool

    @property
    def environment(self) -> str:
        return self.scope.replace("_", "-")

    def as_json(self) -> dict[str, Any]:
        return {"environment": self.environment, "user": self.scope if self.user else None,
                "databases": list(self.databases)}


def find(inventory: dict[str, Any], live_environments: Iterable[str]) -> list[Leftover]:
    """The inventory's names that belong to no live branch environment, grouped by branch."""
    users = set(inventory.get("users", []))
    databases = list(inventory.get("databases", []))
    live = {branch_scope.on_branch_base(name).database_user for name in live_environments
            if name.startswith(branch_scope.BRANCH_ENVIRONMENT_PREFIX)}
    scopes = set(users)
    for database in databases:
        owner = next((database[:-len(name) - 1] for name in _WSO2_DATABASES if database.endswith(f"_{name}")), None)
        scopes.add(owner or database)  # a name this toolkit never makes is reported on its own
    return [Leftover(scope, tuple(sorted(d for d in databases if d == scope or d.startswith(f"{scope}_"))),
                     scope in users)
            for scope in sorted(scopes - live)]


def invoke(lambda_client: Any, function_name: str, event: dict[str, Any]) -> dict[str, Any]:
    """A synchronous call of the base's function; its error, if it raised one, as an OpsError."""
    response = lambda_client.invoke(FunctionName=function_name, InvocationType="RequestResponse",
                                    Payload=json.dumps(event).encode())
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        message = payload.get("errorMessage") if isinstance(payload, dict) else payload
        raise OpsError(f"{function_name} failed: {message}")
    if not isinstance(payload, dict):
        raise OpsError(f"{function_name} answered {payload!r}, not an object")
    return payload


def drop_event(leftover: Leftover, secret_arn: str) -> dict[str, Any]:
    """The event a branch's destroy would have sent (tf.action "delete"); the function reads no
    secret for a delete, but validates the ARN's shape."""
    return {"databases": list(leftover.databases) or [f"{leftover.scope}_{_WSO2_DATABASES[-1]}"],
            "user": leftover.scope, "password_secret_arn": secret_arn,
            "tf": {"action": "delete", "prev_input": None}}
