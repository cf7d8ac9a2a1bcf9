"""What a branch environment standing on a branch base owns on the base's shared servers.

The database server and the directory are shared by every branch environment of an account, so
whatever a branch creates there carries a name no other branch can have: derived from its stack
name, which `obiam.ephemeral.stack_name` makes unique per branch and always starts with "eph-".
An environment with servers of its own keeps the fixed names of obiam.wso2.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from obiam import wso2

BRANCH_ENVIRONMENT_PREFIX = "eph-"
# Every branch's databases and database user start with this; the base's branch-databases function
# refuses any other name, so it can never create or drop a database that is not a branch's.
BRANCH_DATABASE_PREFIX = BRANCH_ENVIRONMENT_PREFIX.replace("-", "_")
# sAMAccountName allows at most 20 characters (Active Directory schema, SAM-Account-Name).
MAX_ACCOUNT_NAME = 20
# MySQL user names allow at most 32 characters, database names 64 (MySQL 8.0 reference manual,
# "Identifier Length Limits").
MAX_DATABASE_USER = 32
MAX_DATABASE_NAME = 64


@dataclass(frozen=True)
class SharedServerNames:
    """Names of the environment's databases, database user and directory accounts."""

    database_prefix: str
    database_user: str
    bind_account: str
    super_admin_account: str

    def database(self, name: str) -> str:
        return f"{self.database_prefix}{name}"


OWN_SERVERS = SharedServerNames("", wso2.APPLICATION_DB_USER, wso2.BIND_ACCOUNT, wso2.SUPER_ADMIN_ACCOUNT)


def on_branch_base(environment_name: str) -> SharedServerNames:
    """The names of a branch environment on a branch base: databases `eph_<name>_<database>`, user
    `eph_<name>`, directory accounts `ob-<8 hex digits of the name's SHA-256>-bind` and `-admin`
    (the stack name itself is 20 characters, too long for an account name with a suffix)."""
    if not environment_name.startswith(BRANCH_ENVIRONMENT_PREFIX):
        raise ValueError(f"{environment_name!r} is not a branch environment's name (they start with "
                         f"{BRANCH_ENVIRONMENT_PREFIX!r})")
    scope = environment_name.replace("-", "_")
    digest = hashlib.sha256(environment_name.encode()).hexdigest()[:8]
    return SharedServerNames(f"{scope}_", scope, f"ob-{digest}-bind", f"ob-{digest}-admin")


def names_for(environment_name: str, on_base: bool) -> SharedServerNames:
    """The names an environment uses on its database server and directory: its branch base's shared
    ones carry the branch's own names; servers of its own keep the fixed ones."""
    return on_branch_base(environment_name) if on_base else OWN_SERVERS
