"""Branch environments' own databases and user on the shared branch-base server (issue 18).

The function (obiam/branch_databases_function.py) runs against a REAL database server:
Debian's mariadb-server, started once for this file on a free localhost port with TLS from the
rehearsal's test CA (tests/rehearsal/services.py MariaDB, tests/rehearsal/tls.py), and a master
user shaped like RDS's (everything, WITH GRANT OPTION, TLS only). Every statement the function
sends, its TLS handshake and its certificate check are the real ones. MariaDB 10.11 stands in for
RDS MySQL 8.0 (Debian ships no MySQL): the statements used are the same in both, but MySQL 8's
caching_sha2_password handshake is not exercised here. Secrets Manager is moto's, in process
(mock_aws), since no AWS account is reachable. The package test runs the vendored PyMySQL from the
extracted zip in a fresh interpreter that sees only the zip and what the Lambda Python runtime
has (boto3 and its dependencies), so no moto: there a two-secret stand-in answers GetSecretValue.

Needs root (like the rehearsal, mariadbd runs with --user=root) and Debian's mariadb-server
(.ci/run installs it). Cost: 4-7 s for the file's 36 tests (measured with --durations: 1-3.6 s to
initialise and start the server, depending on the machine's load; 0.35 s for the package test's
subprocess; under 0.2 s for each other test).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pymysql
import pytest
from moto import mock_aws

from obiam import branch_databases_function as function
from obiam import lambda_package
from tests.rehearsal import tls
from tests.rehearsal.services import MariaDB

pytestmark = pytest.mark.database_server

REGION = "eu-west-2"
MASTER_USER = "admin"
MASTER_PASSWORD = "Master-Passw0rd-0123456789"
PREFIX = "eph_"
# Quotes, a percent sign, a backslash and a semicolon: a password pasted into the SQL text would break
# the statement (or worse); passed as a parameter it is just a value.
PASSWORD = "It's-100%\\sure;--\"x"
ROTATED = "Rotated-'%_Passw0rd\\2"
PROD_LIKE = "openbank_identitydb"  # what the server may also hold: the function must never touch it


class _HostNamespace:
    """The machine's own namespaces: MariaDB's `services.command` runs its argv unchanged."""

    @staticmethod
    def command(*argv: str) -> list[str]:
        return list(argv)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    mariadb: MariaDB
    port: int
    ca: tls.TestCA

    def charset(self, database: str) -> str:
        where = f"SCHEMA_NAME = '{database}'"  # the test's own names, never outside input
        query = "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE " + where  # noqa: S608
        return self.mariadb.sql(query).stdout.strip()

    def tcp_connections(self) -> int:
        """Connections over the network the general log recorded (the tests' own `mysql` calls use the socket).
        Counted, not compared as text: the log's Quit lines land after the client has gone."""
        return sum(1 for line in self.mariadb.ddl_log().splitlines() if " Connect\t" in line and "@127.0.0.1 " in line)

    def users(self) -> set[str]:
        return set(self.mariadb.sql("SELECT User FROM mysql.user").stdout.split())

    def connect(self, user: str, password: str, tls: bool = True, host: str = "localhost") -> Any:
        """A client connection like the branch's node makes: TLS verified against the server's CA."""
        ssl = {"ca": str(self.ca.bundle), "check_hostname": True} if tls else None
        return pymysql.connect(host=host, port=self.port, user=user, password=password, ssl=ssl,
                               ssl_disabled=not tls, connect_timeout=5, autocommit=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if shutil.which("mariadbd", path="/usr/sbin:/usr/bin") is None:
        pytest.fail("Debian's mariadb-server is needed for these tests (.ci/run installs it)")
    directory = tmp_path_factory.mktemp("branch-databases")
    ca = tls.TestCA(directory / "ca")
    # RDS endpoints are DNS names and the function checks the certificate's name: the client dials localhost.
    issued = ca.issue("server", ["localhost"])
    port = _free_port()
    mariadb_class = type("LocalMariaDB", (MariaDB,), {"port": port})
    mariadb = mariadb_class(_HostNamespace(), directory / "mariadb", issued, ca.bundle)
    try:
        mariadb.create_master(MASTER_USER, MASTER_PASSWORD)
        # MariaDB's built-in default is latin1; RDS MySQL 8.0's is utf8mb4 (MySQL 8.0's default), so a
        # database created without a character set would come out utf8mb4 there, and must here too.
        mariadb.sql("SET GLOBAL character_set_server = utf8mb4, collation_server = utf8mb4_general_ci")
        mariadb.sql(f"CREATE DATABASE {PROD_LIKE}; CREATE TABLE {PROD_LIKE}.IDN_OAUTH_CONSUMER_APPS (ID INT)")
        yield Server(mariadb, port, ca)
    finally:
        mariadb.process.terminate()
        mariadb.process.wait(timeout=30)


class Secrets:
    def __init__(self) -> None:
        self.client = boto3.client("secretsmanager", region_name=REGION)
        self.created = 0

    def create(self, name: str, username: str, password: str) -> str:
        self.created += 1  # a fresh name each time: one moto serves the whole file
        arn: str = self.client.create_secret(Name=f"{name}-{self.created}",
                                             SecretString=self._value(username, password))["ARN"]
        return arn

    def rotate(self, arn: str, username: str, password: str) -> None:
        self.client.put_secret_value(SecretId=arn, SecretString=self._value(username, password))

    @staticmethod
    def _value(username: str, password: str) -> str:
        return json.dumps({"username": username, "password": password})


@pytest.fixture(scope="module")
def secrets(server: Server) -> Iterator[Secrets]:
    """Moto's Secrets Manager with the RDS-managed master secret, and the function's environment.
    One moto for the file (starting one per test costs ~0.2 s): every test names its own secrets."""
    with pytest.MonkeyPatch.context() as environment, mock_aws():
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}.items():
            environment.setenv(name, value)
        environment.delenv("AWS_PROFILE", raising=False)
        store = Secrets()
        master = store.create("rds!db-0123", MASTER_USER, MASTER_PASSWORD)
        environment.setenv("MASTER_SECRET_ARN", master)
        environment.setenv("DB_HOST", "localhost")
        environment.setenv("DB_PORT", str(server.port))
        environment.setenv("NAME_PREFIX", PREFIX)
        environment.setenv("CA_BUNDLE_URL", server.ca.bundle.as_uri())
        yield store


def branch_event(secrets: Secrets, user: str, databases: list[str], password: str = PASSWORD) -> dict[str, Any]:
    arn = secrets.create(f"obiam/{user}/database", user, password)
    return {"databases": databases, "user": user, "password_secret_arn": arn}


def crud(event: dict[str, Any], action: str, prev_input: dict[str, Any] | None = None) -> dict[str, Any]:
    """What aws_lambda_invocation (lifecycle_scope CRUD) sends: the input plus {"tf": {action, prev_input}}
    (hashicorp/terraform-provider-aws, internal/service/lambda/invocation.go, buildInput)."""
    return {**event, "tf": {"action": action, "prev_input": prev_input}}


def test_create_makes_latin1_databases_and_a_tls_only_user_confined_to_them(server: Server, secrets: Secrets) -> None:
    """WSO2 OB 3.0 creates its MySQL databases with charset latin1 (docs-open-banking 3.0.0,
    en/docs/install-and-setup/prerequisites.md); the branch's node runs WSO2's table scripts as the
    branch user, so it needs every privilege on its own databases and on nothing else."""
    user, databases = "eph_login_a1", ["eph_login_a1_identity", "eph_login_a1_apimgt"]
    event = branch_event(secrets, user, databases)
    connections_before = server.tcp_connections()
    result = function.handler(crud(event, "create"), None)
    assert server.tcp_connections() == connections_before + 1, "one connection of the master user per invocation"
    assert result["action"] == "create" and result["databases"] == databases and result["user"] == user
    assert PASSWORD not in json.dumps(result)
    for database in databases:
        assert server.charset(database) == "latin1", f"{database} must be created latin1"
    with server.connect(user, PASSWORD) as connection, connection.cursor() as cursor:
        for database in databases:
            # WSO2's first table script statement, then a row: what the branch's node does at boot.
            # (The test's own database names: S608 guards against outside input.)
            cursor.execute(f"CREATE TABLE `{database}`.IDN_BASE_TABLE (PRODUCT_NAME VARCHAR(20))")
            cursor.execute(f"INSERT INTO `{database}`.IDN_BASE_TABLE VALUES ('WSO2 Identity Server')")  # noqa: S608
        cursor.execute("SHOW DATABASES")
        assert {row[0] for row in cursor.fetchall()} == {*databases, "information_schema"}
        for forbidden in (f"SELECT * FROM {PROD_LIKE}.IDN_OAUTH_CONSUMER_APPS",  # noqa: S608
                          "SELECT * FROM mysql.user",
                          "CREATE DATABASE eph_login_a1_extra", f"DROP DATABASE {PROD_LIKE}"):
            with pytest.raises(pymysql.err.OperationalError) as denied:
                cursor.execute(forbidden)
            assert denied.value.args[0] in (1044, 1142), f"{forbidden!r} must be denied: {denied.value}"
        cursor.execute("SHOW GRANTS")
        grants = [row[0] for row in cursor.fetchall()]
    assert not any("GRANT OPTION" in grant for grant in grants), grants
    assert [g for g in grants if " ON *.* " in g and not g.startswith("GRANT USAGE ON *.*")] == [], \
        f"no global privilege for a branch user: {grants}"
    # The user is TLS only (REQUIRE SSL): the same password over a clear-text connection is refused.
    with pytest.raises(pymysql.err.OperationalError) as refused:
        server.connect(user, PASSWORD, tls=False)
    assert refused.value.args[0] == 1045


def test_deleting_one_branch_leaves_a_second_branch_and_the_rest_of_the_server_alone(
        server: Server, secrets: Secrets) -> None:
    """Every branch of the account shares one server: a destroyed branch takes only its own databases and
    user with it (a branch environment's `terraform destroy` runs this delete)."""
    first = branch_event(secrets, "eph_login_b1", ["eph_login_b1_identity", "eph_login_b1_apimgt"])
    second = branch_event(secrets, "eph_consent_b2", ["eph_consent_b2_identity"])
    function.handler(crud(first, "create"), None)
    function.handler(crud(second, "create"), None)
    with server.connect("eph_consent_b2", PASSWORD) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE eph_consent_b2_identity.OB_CONSENT (ID INT)")
    function.handler(crud(first, "delete", first), None)
    remaining = server.mariadb.databases()
    assert not {"eph_login_b1_identity", "eph_login_b1_apimgt"} & remaining
    assert "eph_login_b1" not in server.users()
    assert {"eph_consent_b2_identity", PROD_LIKE, "mysql"} <= remaining
    assert server.mariadb.tables("eph_consent_b2_identity") == {"OB_CONSENT"}
    with server.connect("eph_consent_b2", PASSWORD) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM eph_consent_b2_identity.OB_CONSENT")


def test_delete_is_idempotent_and_needs_no_branch_secret(server: Server, secrets: Secrets) -> None:
    """A destroy that failed half-way is run again: dropping what is already gone succeeds. The branch's
    own password secret may be gone by then, so delete uses the master secret only."""
    event = branch_event(secrets, "eph_login_c1", ["eph_login_c1_identity"])
    function.handler(crud(event, "create"), None)
    function.handler(crud(event, "delete", event), None)
    secrets.client.delete_secret(SecretId=event["password_secret_arn"], ForceDeleteWithoutRecovery=True)
    result = function.handler(crud(event, "delete", event), None)
    assert result == {"action": "delete", "databases": ["eph_login_c1_identity"], "user": "eph_login_c1"}
    assert "eph_login_c1_identity" not in server.mariadb.databases()
    assert "eph_login_c1" not in server.users()


REFUSED = {
    "a database without the prefix": {"databases": [PROD_LIKE]},
    "the server's own schema": {"databases": ["mysql"]},
    "information_schema": {"databases": ["information_schema"]},
    "a name that would end the quoting": {"databases": ["eph_x`; DROP DATABASE mysql; --"]},
    "upper case": {"databases": ["EPH_LOGIN_IDENTITY"]},
    "a database name over 64 characters": {"databases": ["eph_" + "x" * 61]},
    "a user without the prefix": {"user": "admin"},
    "RDS's own account": {"user": "rdsadmin"},
    "a user name over 32 characters": {"user": "eph_" + "u" * 29},
    "no databases": {"databases": []},
    "a database listed twice": {"databases": ["eph_login_d1_identity", "eph_login_d1_identity"]},
    "a password ARN that is not a secret": {"password_secret_arn": "arn:aws:s3:::bucket/key"},
}


@pytest.mark.parametrize("change", REFUSED.values(), ids=REFUSED.keys())
@pytest.mark.parametrize("action", ["create", "delete"])
def test_names_outside_the_branch_prefix_are_refused_before_any_sql(
        server: Server, secrets: Secrets, change: dict[str, Any], action: str) -> None:
    """The function holds the master user of a server other environments use: it must only ever touch
    names under NAME_PREFIX, and a refused event must not reach the server at all (its general log
    records every connection and statement)."""
    event = {**branch_event(secrets, "eph_login_d1", ["eph_login_d1_identity"]), **change}
    databases_before, connections_before = server.mariadb.databases(), server.tcp_connections()
    with pytest.raises(ValueError, match=r"refused|must|twice"):
        function.handler(crud(event, action, event if action == "delete" else None), None)
    assert server.tcp_connections() == connections_before, "a refused event must not connect to the server"
    assert server.mariadb.databases() == databases_before


def test_the_servers_master_user_is_never_a_branch_user(
        server: Server, secrets: Secrets, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a master user whose name fits the prefix: dropping or re-passwording it would lock every
    branch out of the shared server."""
    master = secrets.create("rds!db-4567", "eph_master", MASTER_PASSWORD)
    monkeypatch.setenv("MASTER_SECRET_ARN", master)
    event = branch_event(secrets, "eph_master", ["eph_master_identity"])
    connections_before = server.tcp_connections()
    for action in ("create", "delete"):
        with pytest.raises(ValueError, match="is the server's master user"):
            function.handler(crud(event, action, event if action == "delete" else None), None)
    assert server.tcp_connections() == connections_before


def test_an_update_whose_previous_input_names_a_foreign_database_is_refused(server: Server, secrets: Secrets) -> None:
    """On update the function drops what prev_input listed and the input no longer does; prev_input is
    held to the same prefix rule, so a tampered state cannot make it drop another environment's database."""
    event = branch_event(secrets, "eph_login_e1", ["eph_login_e1_identity"])
    previous = {**event, "databases": ["eph_login_e1_identity", PROD_LIKE]}
    with pytest.raises(ValueError, match=r"tf\.prev_input: database name 'openbank_identitydb' is refused"):
        function.handler(crud(event, "update", previous), None)
    assert PROD_LIKE in server.mariadb.databases()


def test_an_update_drops_a_removed_database_and_the_users_grant_on_it(server: Server, secrets: Secrets) -> None:
    """A database dropped from the branch's list goes on the next apply. MySQL keeps a database's grants
    after DROP DATABASE (MySQL 8.0 reference manual, DROP DATABASE), so the grant is revoked first: a
    later database of the same name must not open to this user."""
    user = "eph_login_f1"
    before = branch_event(secrets, user, ["eph_login_f1_identity", "eph_login_f1_apimgt"])
    function.handler(crud(before, "create"), None)
    after = {**before, "databases": ["eph_login_f1_identity"]}
    result = function.handler(crud(after, "update", before), None)
    assert result["dropped_databases"] == ["eph_login_f1_apimgt"]
    assert "eph_login_f1_apimgt" not in server.mariadb.databases()
    assert "eph_login_f1_identity" in server.mariadb.databases()
    server.mariadb.sql("CREATE DATABASE eph_login_f1_apimgt")
    try:
        with server.connect(user, PASSWORD) as connection, connection.cursor() as cursor:
            with pytest.raises(pymysql.err.OperationalError):
                cursor.execute("CREATE TABLE eph_login_f1_apimgt.T (ID INT)")
            cursor.execute("CREATE TABLE eph_login_f1_identity.T (ID INT)")
    finally:
        server.mariadb.sql("DROP DATABASE eph_login_f1_apimgt")


def test_an_update_with_a_new_user_name_drops_the_old_user(server: Server, secrets: Secrets) -> None:
    before = branch_event(secrets, "eph_login_g1", ["eph_login_g1_identity"])
    function.handler(crud(before, "create"), None)
    after = branch_event(secrets, "eph_login_g2", ["eph_login_g1_identity"])
    result = function.handler(crud(after, "update", before), None)
    assert result["dropped_user"] == "eph_login_g1" and result["dropped_databases"] == []
    assert "eph_login_g1" not in server.users()
    with server.connect("eph_login_g2", PASSWORD) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE eph_login_g1_identity.T (ID INT)")


def test_a_rotated_password_takes_effect_on_the_next_apply(server: Server, secrets: Secrets) -> None:
    """CREATE USER IF NOT EXISTS leaves an existing user's password alone; ALTER USER sets the secret's
    current value, so a rotated secret reaches the server on the branch's next apply."""
    user = "eph_login_h1"
    event = branch_event(secrets, user, ["eph_login_h1_identity"])
    function.handler(crud(event, "create"), None)
    secrets.rotate(event["password_secret_arn"], user, ROTATED)
    function.handler(crud(event, "update", event), None)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        server.connect(user, PASSWORD)
    assert refused.value.args[0] == 1045
    server.connect(user, ROTATED).close()


def test_a_secret_for_another_user_is_refused(server: Server, secrets: Secrets) -> None:
    event = branch_event(secrets, "eph_login_i1", ["eph_login_i1_identity"])
    secrets.rotate(event["password_secret_arn"], "eph_login_zz", PASSWORD)
    with pytest.raises(ValueError, match="names user 'eph_login_zz', not the event's 'eph_login_i1'"):
        function.handler(crud(event, "create"), None)
    assert "eph_login_i1_identity" not in server.mariadb.databases()


def test_a_server_certificate_from_another_ca_or_for_another_name_is_refused(
        server: Server, secrets: Secrets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The master password goes to the server only once its certificate verifies against the RDS CA bundle
    and names the endpoint (RDS user guide, "Using SSL/TLS to encrypt a connection to a DB instance")."""
    event = crud(branch_event(secrets, "eph_login_j1", ["eph_login_j1_identity"]), "create")
    monkeypatch.setenv("CA_BUNDLE_URL", tls.TestCA(tmp_path / "other-ca").bundle.as_uri())
    with pytest.raises(pymysql.err.OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        function.handler(event, None)
    monkeypatch.setenv("CA_BUNDLE_URL", server.ca.bundle.as_uri())
    monkeypatch.setenv("DB_HOST", "127.0.0.1")  # the certificate names localhost only
    with pytest.raises(pymysql.err.OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        function.handler(event, None)
    assert "eph_login_j1_identity" not in server.mariadb.databases()


def test_an_event_without_a_lifecycle_action_creates(server: Server, secrets: Secrets) -> None:
    """lifecycle_scope CREATE_ONLY (the provider's default) sends the input without the tf key."""
    event = branch_event(secrets, "eph_login_k1", ["eph_login_k1_identity"])
    assert function.handler(event, None)["action"] == "create"
    assert "eph_login_k1_identity" in server.mariadb.databases()
    with pytest.raises(ValueError, match=r"tf\.action must be one of create, update, delete"):
        function.handler({**event, "tf": {"action": "read"}}, None)


# The Lambda Python runtime's own packages: boto3 and what it imports. Nothing else may be needed.
LAMBDA_RUNTIME = ["boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py"]


def test_the_package_is_deterministic_and_runs_from_the_zip_alone(server: Server, tmp_path: Path) -> None:
    """Terraform's source_code_hash is the zip's SHA-256: the same code must give the same bytes. Lambda
    extracts the zip and imports index.handler with only the runtime's packages (boto3) beside it, so
    PyMySQL must come from the zip; this runs a real create through the extracted package."""
    first, second = lambda_package.branch_databases(), lambda_package.branch_databases()
    assert first.content == second.content
    archive = zipfile.ZipFile(io.BytesIO(first.content))
    names = archive.namelist()
    assert names == sorted(names) and "index.py" in names and "pymysql/connections.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert any(n.endswith("/LICENSE") for n in names), "PyMySQL's MIT licence travels with its code"
    assert {(i.date_time, i.external_attr >> 16) for i in archive.infolist()} == {((1980, 1, 1, 0, 0, 0), 0o100644)}
    task = tmp_path / "task"
    archive.extractall(task)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    site = Path(boto3.__file__).resolve().parents[1]
    for name in LAMBDA_RUNTIME:
        (runtime / name).symlink_to(site / name)
    script = textwrap.dedent(f"""
        import json, sys
        sys.path[:0] = [{str(task)!r}, {str(runtime)!r}]
        import index
        assert index.pymysql.__file__.startswith({str(task)!r}), index.pymysql.__file__
        class Secrets:  # the subprocess has no moto: the two secrets, as Secrets Manager returns them
            def get_secret_value(self, SecretId):
                users = {{"master": ({MASTER_USER!r}, {MASTER_PASSWORD!r}), "branch": ("eph_zip", "Zip-Passw0rd")}}
                username, password = users[SecretId.rsplit(":", 1)[1]]
                return {{"SecretString": json.dumps({{"username": username, "password": password}})}}
        settings = index.Settings("arn:aws:secretsmanager:{REGION}:1:secret:master", "localhost", {server.port},
                                  {PREFIX!r}, {server.ca.bundle.as_uri()!r})
        event = {{"databases": ["eph_zip_identity"], "user": "eph_zip",
                  "password_secret_arn": "arn:aws:secretsmanager:{REGION}:1:secret:branch"}}
        print(json.dumps(index.run(event, settings, Secrets())))
    """)
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True,
                              timeout=60, check=False, env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)})
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["databases"] == ["eph_zip_identity"]
        assert "eph_zip_identity" in server.mariadb.databases()
    finally:
        server.mariadb.sql("DROP DATABASE IF EXISTS eph_zip_identity; DROP USER IF EXISTS eph_zip")


def test_an_inventory_lists_the_branch_names_on_the_server_and_changes_nothing(server: Server,
                                                                              secrets: Secrets) -> None:
    """`obiam reap` asks for every eph_ database and user on the shared server to find what a branch left
    behind; the answer holds the branch prefix's names only (never the server's own or another
    environment's) and no statement changes the server."""
    left = branch_event(secrets, "eph_left_b9", ["eph_left_b9_identity", "eph_left_b9_consent"])
    function.handler(crud(left, "create"), None)
    before = (server.mariadb.databases(), server.users())
    answer = function.handler({"inventory": True}, None)
    assert answer["action"] == "inventory"
    assert {"eph_left_b9_identity", "eph_left_b9_consent"} <= set(answer["databases"])
    assert "eph_left_b9" in answer["users"]
    assert all(name.startswith("eph_") for name in [*answer["databases"], *answer["users"]])
    assert PROD_LIKE not in answer["databases"] and "mysql" not in answer["databases"]
    assert (server.mariadb.databases(), server.users()) == before
    with pytest.raises(ValueError, match="an inventory event is"):
        function.handler({"inventory": True, "user": "eph_left_b9"}, None)
    function.handler(crud(left, "delete", left), None)
