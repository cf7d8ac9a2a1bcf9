"""The branch-databases Lambda function: one branch environment's own databases and user on the shared server.

Per-branch test environments share one "branch base" stack per account, and with it ONE RDS
MySQL server. Each branch gets databases and a database user of its own on that server:
created when the branch is deployed, dropped when it is destroyed. The branch stack invokes
this function (owned by the base stack) through Terraform's `aws_lambda_invocation` with
`lifecycle_scope = "CRUD"`; the AWS provider then adds, under the invocation's
`terraform_key` (default "tf"), `{"action": "create"|"update"|"delete", "prev_input": {...}}`
to the JSON input (hashicorp/terraform-provider-aws, internal/service/lambda/invocation.go,
buildInput; the action values in internal/service/lambda/consts.go). `prev_input` is the
previous input on update, null on create, and the current input on delete.

Runs in AWS Lambda (Python 3.12 runtime: standard library, the runtime's boto3, and PyMySQL
vendored into the package by obiam.lambda_package.branch_databases). The event:
    {"databases": ["eph_login_abc123_identity", ...], "user": "eph_login_abc123",
     "password_secret_arn": "arn:aws:secretsmanager:...", "tf": {...}}
The environment (set by the base stack): MASTER_SECRET_ARN (the RDS-managed master secret),
DB_HOST, DB_PORT, NAME_PREFIX (every database and user name must start with it, so the
function can never touch another environment's or the server's own databases) and
CA_BUNDLE_URL (the RDS CA bundle; the server's certificate is verified against it).

- create/update: each database with CHARACTER SET latin1 (WSO2 OB 3.0 creates its MySQL
  databases latin1: docs-open-banking 3.0.0, install-and-setup/prerequisites.md), the user
  (TLS only) with the password in its Secrets Manager secret, and ALL privileges on its own
  databases only (the branch's node runs WSO2's table scripts as this user; no GRANT OPTION,
  no global privilege). On update, databases no longer listed are dropped and a renamed user's
  old account is dropped.
- delete: the databases and the user are dropped; dropping what is already gone succeeds.
- inventory (`{"inventory": true}`, sent by `obiam reap`, never by Terraform): the names on the
  server that start with NAME_PREFIX, so a branch's leftovers (a destroy that never ran its
  delete) can be found; it changes nothing.

A bad event raises ValueError with one sentence, which Lambda returns as the FunctionError
payload and Terraform prints as the failed apply's or destroy's error. No password is ever
logged or returned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import ssl
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pymysql

# A logger of its own at INFO: Lambda's root logger drops INFO, and setting the root's level would
# reach every other logger of the process.
LOG = logging.getLogger("branch_databases")
LOG.setLevel(logging.INFO)

DEFAULT_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
# MySQL: database names up to 64 characters, user names up to 32 (MySQL 8.0 reference manual,
# "Identifier Length Limits"). Lower case only: RDS MySQL's lower_case_table_names is 0 on Linux,
# so one case keeps "Eph_x" and "eph_x" from being two databases.
DATABASE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
USER_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
# The server's own schemas and RDS's own accounts, refused whatever NAME_PREFIX says.
RESERVED = frozenset({"mysql", "sys", "information_schema", "performance_schema", "innodb", "tmp",
                      "rdsadmin", "rdsrepladmin", "root", "mariadb.sys", "mysql.sys", "mysql.session",
                      "mysql.infoschema"})
ACTIONS = ("create", "update", "delete")
ANY_HOST = "%"
CONNECT_TIMEOUT_SECONDS = 10

_ca_bundles: dict[str, Path] = {}


@dataclass(frozen=True)
class Branch:
    """One invocation's input, validated: the branch's databases, its user and its password's secret."""

    databases: tuple[str, ...]
    user: str
    password_secret_arn: str


@dataclass(frozen=True)
class Settings:
    master_secret_arn: str
    host: str
    port: int
    name_prefix: str
    ca_bundle_url: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        missing = [name for name in ("MASTER_SECRET_ARN", "DB_HOST", "DB_PORT", "NAME_PREFIX") if not environ.get(name)]
        if missing:
            raise ValueError(f"the function's environment lacks {', '.join(missing)} (set by the branch base stack)")
        prefix = environ["NAME_PREFIX"]
        if not USER_NAME.fullmatch(prefix) or len(prefix) > 16:
            raise ValueError(f"NAME_PREFIX {prefix!r} must be 1-16 lower-case letters, digits or _ starting with a "
                             "letter (e.g. eph_)")
        if not environ["DB_PORT"].isdigit():
            raise ValueError(f"DB_PORT {environ['DB_PORT']!r} must be a port number")
        url = environ.get("CA_BUNDLE_URL") or DEFAULT_CA_BUNDLE_URL
        if urllib.parse.urlsplit(url).scheme not in ("https", "file"):
            raise ValueError(f"CA_BUNDLE_URL {url!r} must be an https:// or file:// URL")
        return cls(environ["MASTER_SECRET_ARN"], environ["DB_HOST"], int(environ["DB_PORT"]), prefix, url)


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda's entry point (index.handler)."""
    settings = Settings.from_environment(os.environ)
    return run(event, settings, boto3.client("secretsmanager"))


def run(event: Any, settings: Settings, secretsmanager: Any) -> dict[str, Any]:
    """Validate everything first (no SQL for a bad event), then create, update or drop."""
    if not isinstance(event, dict):
        raise ValueError("the event must be a JSON object with databases, user and password_secret_arn")
    if "inventory" in event:
        if event != {"inventory": True}:
            raise ValueError('an inventory event is {"inventory": true} and nothing else')
        with _connect(settings, _credentials(secretsmanager, settings.master_secret_arn,
                                             "the server's master user")) as cursor:
            return _inventory(cursor, settings.name_prefix)
    action, previous = _lifecycle(event)
    branch = _branch(event, settings.name_prefix, "the event")
    old = _branch(previous, settings.name_prefix, "tf.prev_input") if action == "update" and previous else None
    master = _credentials(secretsmanager, settings.master_secret_arn, "the server's master user")
    if master[0] in {branch.user, old.user if old else None}:
        raise ValueError(f"user {master[0]!r} is the server's master user; a branch needs a user of its own")
    if action == "delete":
        with _connect(settings, master) as cursor:
            _drop(cursor, branch.databases, branch.user)
        LOG.info("dropped databases %s and user %s", list(branch.databases), branch.user)
        return {"action": action, "databases": list(branch.databases), "user": branch.user}
    username, password = _credentials(secretsmanager, branch.password_secret_arn, "the branch's database user")
    if username != branch.user:
        raise ValueError(f"secret {branch.password_secret_arn} names user {username!r}, "
                         f"not the event's {branch.user!r}")
    with _connect(settings, master) as cursor:
        _create(cursor, branch, password)
        dropped: tuple[str, ...] = ()
        dropped_user = None
        if old is not None:
            dropped = tuple(d for d in old.databases if d not in branch.databases)
            if old.user != branch.user:
                dropped_user = old.user
                _drop(cursor, dropped, old.user)
            else:
                _revoke_and_drop(cursor, dropped, branch.user)
    LOG.info("%s: databases %s for user %s; dropped databases %s, dropped user %s", action, list(branch.databases),
             branch.user, list(dropped), dropped_user)
    return {"action": action, "databases": list(branch.databases), "user": branch.user,
            "dropped_databases": list(dropped), "dropped_user": dropped_user}


def _lifecycle(event: dict[str, Any]) -> tuple[str, Any]:
    """(action, prev_input): "create" when the invocation is not CRUD-scoped (no tf key)."""
    tf = event.get("tf")
    if tf is None:
        return "create", None
    if not isinstance(tf, dict) or tf.get("action") not in ACTIONS:
        raise ValueError(f"tf.action must be one of {', '.join(ACTIONS)} (aws_lambda_invocation with "
                         f"lifecycle_scope CRUD sets it); got {tf.get('action') if isinstance(tf, dict) else tf!r}")
    previous = tf.get("prev_input")
    if previous is not None and not isinstance(previous, dict):
        raise ValueError("tf.prev_input must be the previous input object or null")
    return tf["action"], previous


def _branch(event: dict[str, Any], prefix: str, where: str) -> Branch:
    databases = event.get("databases")
    if not isinstance(databases, list) or not databases:
        raise ValueError(f"{where}: databases must be a non-empty list of database names starting with {prefix}")
    for name in databases:
        _check_name(name, prefix, DATABASE_NAME, f"{where}: database", "up to 64")
    if len(set(databases)) != len(databases):
        raise ValueError(f"{where}: databases lists a name twice: {databases}")
    user = _check_name(event.get("user"), prefix, USER_NAME, f"{where}: user", "up to 32")
    arn = event.get("password_secret_arn")
    if not isinstance(arn, str) or not arn.startswith("arn:") or ":secretsmanager:" not in arn:
        raise ValueError(f"{where}: password_secret_arn must be the ARN of the user's Secrets Manager secret; "
                         f"got {arn!r}")
    return Branch(tuple(databases), user, arn)


def _check_name(name: Any, prefix: str, pattern: re.Pattern[str], what: str, length: str) -> str:
    if (not isinstance(name, str) or not pattern.fullmatch(name) or not name.startswith(prefix)
            or name in RESERVED):
        raise ValueError(f"{what} name {name!r} is refused: it must start with {prefix} and be {length} lower-case "
                         "letters, digits or _ starting with a letter (this function touches branch databases only)")
    return name


def _credentials(secretsmanager: Any, arn: str, what: str) -> tuple[str, str]:
    """(username, password) from a Secrets Manager JSON secret, as RDS and this project write them."""
    try:
        document = json.loads(secretsmanager.get_secret_value(SecretId=arn)["SecretString"])
    except json.JSONDecodeError:
        document = None
    if (not isinstance(document, dict) or not isinstance(document.get("username"), str)
            or not isinstance(document.get("password"), str) or not document["password"]):
        raise ValueError(f"secret {arn} ({what}) must be JSON with a username and a password")
    return document["username"], document["password"]


def _ca_bundle(url: str) -> Path:
    """The CA bundle, downloaded once per Lambda container (its /tmp outlives one invocation)."""
    cached = _ca_bundles.get(url)
    if cached is not None and cached.exists():
        return cached
    with urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT_SECONDS) as response:  # noqa: S310 (https/file only)
        content = response.read()
    if b"-----BEGIN CERTIFICATE-----" not in content:
        raise ValueError(f"CA_BUNDLE_URL {url} did not return PEM certificates")
    path = Path(tempfile.gettempdir()) / f"ca-bundle-{hashlib.sha256(url.encode()).hexdigest()[:16]}.pem"
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(content)
    partial.replace(path)
    _ca_bundles[url] = path
    return path


@contextmanager
def _connect(settings: Settings, master: tuple[str, str]) -> Iterator[Any]:
    """A cursor of the master user, over TLS that verifies the server's certificate and host name."""
    context = ssl.create_default_context(cafile=str(_ca_bundle(settings.ca_bundle_url)))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    connection = pymysql.connect(host=settings.host, port=settings.port, user=master[0],
                                 password=master[1], ssl=context, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                 autocommit=True, charset="utf8mb4")
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()


def _create(cursor: Any, branch: Branch, password: str) -> None:
    # Names are validated (prefix and pattern) before they get here; backticks quote them all the same.
    # The host is passed as a parameter: a literal % in the statement would be read as a placeholder.
    for database in branch.databases:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET latin1")
    account = f"`{branch.user}`@%s"
    cursor.execute(f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY %s REQUIRE SSL", (ANY_HOST, password))
    # An existing user gets the secret's current password: a rotated secret takes effect on the next apply.
    cursor.execute(f"ALTER USER {account} IDENTIFIED BY %s REQUIRE SSL", (ANY_HOST, password))
    for database in branch.databases:
        cursor.execute(f"GRANT ALL PRIVILEGES ON `{database}`.* TO {account}", (ANY_HOST,))


def _revoke_and_drop(cursor: Any, databases: tuple[str, ...], user: str) -> None:
    """Drop databases the user keeps living without: its grants on them go first, since MySQL keeps a
    database's grants after DROP DATABASE and a later database of that name would inherit them."""
    for database in databases:
        try:
            cursor.execute(f"REVOKE ALL PRIVILEGES ON `{database}`.* FROM `{user}`@%s", (ANY_HOST,))
        except pymysql.MySQLError as error:
            if error.args[0] not in (1141, 1269):  # ER_NONEXISTING_GRANT, ER_REVOKE_GRANTS: nothing to revoke
                raise
        cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")


def _inventory(cursor: Any, prefix: str) -> dict[str, Any]:
    """Every database and user on the server whose name starts with the branch prefix: what `obiam reap`
    compares with the live branches to find what a branch left behind (changes nothing)."""
    cursor.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
    databases = sorted(str(row[0]) for row in cursor.fetchall() if str(row[0]).startswith(prefix))
    cursor.execute("SELECT DISTINCT User FROM mysql.user")
    users = sorted(str(row[0]) for row in cursor.fetchall() if str(row[0]).startswith(prefix))
    return {"action": "inventory", "databases": databases, "users": users}


def _drop(cursor: Any, databases: tuple[str, ...], user: str) -> None:
    for database in databases:
        cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
    # DROP USER removes the account's grants with it.
    cursor.execute(f"DROP USER IF EXISTS `{user}`@%s", (ANY_HOST,))
