"""Boot rehearsal: the prod user data, unmodified, booted on simulated nodes against real servers (issue 12).

Each scenario states a requirement of the node boot path and checks it on what the boot
really did: the database server's own statement log, the shared directories' writes, the
nodes' files and the health-check answers. The scenarios run in the background of the
test session, from the session's own synthesized stacks (tests/rehearsal/session.py,
started by tests/conftest.py); these tests run last and assert on what was recorded. See
tests/rehearsal/lab.py for what is real and what is a double. Run alone with `make rehearse`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from tests.rehearsal.lab import BootResult
from tests.rehearsal.session import (
    REQUIRED_TABLES,
    SEEDED_DIRECTORIES,
    BranchDestroyRecord,
    BranchRecord,
    BrokenRecord,
    ClusterRecord,
    Health,
    PostgresRecord,
    RebootRecord,
    RefreshRecord,
    Rehearsal,
    RotationRecord,
    ThirdRecord,
    describe,
)
from tests.rehearsal.stack import NodeStack

if TYPE_CHECKING:
    from tests.conftest import Synth

pytestmark = pytest.mark.rehearsal


@pytest.fixture(scope="session")
def cluster(rehearsal: Rehearsal) -> ClusterRecord:
    record: ClusterRecord = rehearsal.record("cluster")
    return record


def require_booted(cluster: ClusterRecord) -> None:
    assert not cluster.failed, f"the first two nodes of a new environment must boot:\n{describe(cluster.failed)}"


def assert_healthy(name: str, health: Health | None, when: str = "") -> None:
    assert health is not None, f"{name}: no health check was made {when}"
    assert health.code == 200, f"{name}: health check answered {health.code}{when}, expected 200\n{health.journal}"


# -- two nodes boot together ------------------------------------------------------------------------------

def test_two_nodes_boot_together_and_answer_the_health_check(cluster: ClusterRecord) -> None:
    """WSO2's HA guide: 2..N nodes behind the load balancer; the ALB health check (9443 + offset,
    /api/health-check/v1.0/health) must answer 200 on each, or the ASG replaces the node."""
    require_booted(cluster)
    for node in cluster.nodes:
        assert_healthy(node.name, cluster.health.get(node.name))


def test_two_nodes_create_every_wso2_schema_exactly_once(cluster: ClusterRecord) -> None:
    """OB 3.0 "Setting up databases": all six databases hold their tables before IS starts, the
    API-Manager-owned ones included (IS keeps IDN_* in openbank_apimgtdb, the registry in govdb,
    the realm in userdb), with SP_METADATA.VALUE widened to 4096 and AM_APPLICATION_REGISTRATION.INPUTS
    to 7500. Two nodes booting together must not both run the scripts."""
    assert not cluster.missing_tables, \
        f"tables missing after two nodes booted (database: missing tables): {cluster.missing_tables}"
    created = Counter(line.split("CREATE TABLE")[-1].split("(")[0].strip().split()[-1].upper()
                      for line in cluster.schema_statements if "CREATE TABLE" in line.upper())
    assert created, "no CREATE TABLE reached the database server"
    # Each script's tables land in several databases (one run per database); a second node would double all.
    expected = Counter(t for tables in REQUIRED_TABLES.values() for t in tables)
    twice = {t: n for t, n in created.items() if n > expected.get(t, 1)}
    assert not twice, f"schema scripts ran more than once (table: CREATE TABLE count): {twice}"
    assert cluster.widths == {("SP_METADATA", "VALUE"): "varchar(4096)",
                              ("AM_APPLICATION_REGISTRATION", "INPUTS"): "varchar(7500)"}, \
        f"OB's ALTER TABLE statements were not applied: {cluster.widths}"


def test_two_nodes_seed_the_shared_artifacts_once_and_completely(cluster: ClusterRecord) -> None:
    """WSO2's HA guide: runtime artifacts on a shared file system, seeded with the pack's defaults.
    EFS access points force uid/gid 802 and refuse chown (EFS User Guide, access points), so the seed
    must not preserve ownership; it happens once, and a marker is written only after it completed."""
    require_booted(cluster)
    assert not cluster.incomplete_shares, f"shared directories missing the pack's files: {cluster.incomplete_shares}"
    not_once = {f"{d}/{f}": n for (d, f), n in cluster.seed_writes.items() if n != 1}
    assert not not_once, f"each pack file must be written to the share exactly once (file: writes): {not_once}"
    unmarked = [d for d in SEEDED_DIRECTORIES if not cluster.markers.get(d)]
    assert not unmarked, f"no seed-complete marker (.obiam-*) in: {unmarked}"


def test_each_node_lists_both_nodes_as_cluster_members(cluster: ClusterRecord) -> None:
    """WSO2 IS 5.11 clustering (wka): every node lists the running members, itself included."""
    require_booted(cluster)
    expected = {n.ip for n in cluster.nodes}
    for node in cluster.nodes:
        listed = cluster.members.get(node.name, set())
        assert listed >= expected, f"{node.name} lists members {sorted(listed)}, expected at least {sorted(expected)}"


def without_user_data(stack: dict[str, Any]) -> dict[str, Any]:
    copy = json.loads(json.dumps(stack))
    for template in copy["resource"]["aws_launch_template"].values():
        template.pop("user_data")
    return copy


def test_the_rehearsal_boots_the_stack_user_data_unmodified(synth: Synth, rehearsal: Rehearsal,
                                                             cluster: ClusterRecord) -> None:
    """The lab runs the bytes the launch template carries (gunzipped as cloud-init does), nothing else. That
    stack is the prod stack with one change: product.pack_sha256 pins the pack the lab built, so the one
    line of the user data that names the pin differs, and nothing else in the stack."""
    booted = NodeStack.load("prod", cluster.environment.stack.path)
    assert cluster.user_data == booted.user_data, "node-1 ran a script other than its launch template's user data"
    prod = NodeStack.load("prod", synth.path("prod"))
    pin, lab_pin = (synth.environments["prod"].config.product.pack_sha256,
                    cluster.environment.config.product.pack_sha256)
    assert lab_pin == rehearsal.pack_sha256() != pin
    assert prod.user_data.count(pin.encode()) == 1
    assert booted.user_data == prod.user_data.replace(pin.encode(), lab_pin.encode()), \
        "the booted user data differs from prod's in more than the pinned pack hash"
    assert without_user_data(booted.data) == without_user_data(prod.data), \
        "the booted stack differs from prod's outside the launch template's user data"
    assert "GET /latest/meta-data/iam/security-credentials/" in cluster.imds_log, \
        "the node's AWS CLI did not take its credentials from IMDS"
    assert " 401" not in cluster.imds_log or "PUT /latest/api/token 200" in cluster.imds_log
    assert json.loads(cluster.dnf_log.splitlines()[0])[0] == "install", f"dnf was asked for: {cluster.dnf_log}"


def test_the_rehearsal_boots_a_pack_made_by_obiam_pack_build(rehearsal: Rehearsal) -> None:
    """The pack the nodes boot is the toolkit's own output from (synthetic) WSO2 downloads, and passes
    `obiam pack verify` for the engines the rehearsal runs."""
    from obiam.pack.verify import verify_pack

    pack = rehearsal.pack.result(timeout=60)
    for engine in ("mysql", "postgres"):
        failed = [c for c in verify_pack(pack.path, engine=engine) if not c.passed]
        assert not failed, f"the rehearsal's pack fails `obiam pack verify --engine {engine}`: {failed}"


# -- a third node joins -----------------------------------------------------------------------------------

def test_third_node_joins_without_reseeding_or_schema_work(rehearsal: Rehearsal) -> None:
    """A node joining a running cluster (ASG scale-out, instance refresh) reuses the schemas and the
    share as they are: no schema statement, no write to the shared artifacts."""
    third: ThirdRecord = rehearsal.record("third")
    assert third.result.returncode == 0, third.result.describe()
    assert_healthy("node-3", third.health)
    assert not third.statements, f"node-3 ran schema statements on a set-up environment: {third.statements[:5]}"
    assert not third.writes, f"node-3 rewrote shared artifacts (file: extra writes): {third.writes}"


def test_members_refresh_on_the_next_start_of_the_other_nodes(rehearsal: Rehearsal, cluster: ClusterRecord) -> None:
    """Members are read from the EC2 API before every WSO2 start (README: Hazelcast's aws discovery
    needs IMDSv1), so a restart of an older node picks up the newcomer."""
    third: ThirdRecord = rehearsal.record("third")
    assert third.result.returncode == 0, third.result.describe()
    node3 = third.node
    assert third.members >= {n.ip for n in [*cluster.nodes, node3]}, f"node-3 lists {sorted(third.members)}"
    refresh: RefreshRecord = rehearsal.record("refresh")
    assert refresh.restart_returncode == 0, f"restart failed: {refresh.restart_stderr}\n{refresh.journal}"
    assert node3.ip in refresh.first_members, \
        f"after a restart node-1 lists {sorted(refresh.first_members)}, without node-3"
    assert_healthy("node-1", refresh.health, " after the restart")


# -- reboot -----------------------------------------------------------------------------------------------

def test_running_the_boot_again_changes_nothing(rehearsal: Rehearsal) -> None:
    """The boot path is idempotent: running it again on a booted node succeeds and changes nothing:
    the node's files, the schemas, the shared artifacts."""
    reboot: RebootRecord = rehearsal.record("reboot")
    assert reboot.result.returncode == 0, reboot.result.describe()
    assert not reboot.changed, f"a second run of the boot changed the node's files: {reboot.changed[:15]}\n" \
                               f"{reboot.diff[:3000]}"
    assert not reboot.statements, f"a second run ran schema statements: {reboot.statements[:5]}"
    assert not reboot.rewritten, f"a second run rewrote shared artifacts: {reboot.rewritten}"
    assert_healthy("node-1", reboot.health, " after the second run")


# -- credential rotation ----------------------------------------------------------------------------------

def test_a_restart_uses_the_rotated_database_passwords(rehearsal: Rehearsal) -> None:
    """RDS rotates the master secret every 7 days by default (RDS User Guide, "Password management with
    Secrets Manager"), and the WSO2 user's secret may be rotated too: both are read at every start, so a
    `systemctl restart` after a rotation connects with the new values, and no old one stays on disk."""
    rotation: RotationRecord = rehearsal.record("rotation")
    assert_healthy(rotation.node, rotation.health_before, " before the rotation")
    assert rotation.restart_returncode == 0, (
        f"restart after rotating {rotation.rotated} database secret(s) failed: {rotation.restart_stderr}\n"
        f"{rotation.journal}")
    after = rotation.health_after
    assert after is not None and after.code == 200, (
        "after the rotation WSO2 could not start with the database password it was given "
        f"(health {after.code if after else None}):\n{after.journal if after else ''}")
    assert not rotation.stale, f"rotated-out database passwords are still on the node's disk: {rotation.stale}"


# -- broken inputs ----------------------------------------------------------------------------------------

def assert_stops_naming(record: BrokenRecord) -> None:
    result: BootResult = record.result
    assert result.returncode != 0, f"the boot succeeded although its input was broken:\n{result.describe()}"
    lines = result.failed_lines
    assert len(lines) == 1, f"expected one 'obiam-bootstrap: FAILED: ...' line, got {len(lines)}:\n" \
                            f"{result.describe()}"
    assert any(c.lower() in lines[0].lower() for c in record.cause), \
        f"the FAILED line does not name the cause (one of {record.cause}): {lines[0]}"
    assert lines[0].split("FAILED:", 1)[1].strip() in record.log, \
        "the FAILED line is not in /var/log/obiam-bootstrap.log"
    assert not record.service_active, "WSO2 was started although the boot failed"


def test_a_missing_runtime_parameter_key_stops_the_boot_naming_it(rehearsal: Rehearsal) -> None:
    """The runtime parameter is the stack's contract with the node: a key it lacks (a half-applied
    stack) stops the boot with one line naming the key."""
    assert_stops_naming(rehearsal.record("missing-key"))


def test_an_unreachable_database_stops_the_boot_naming_it(rehearsal: Rehearsal) -> None:
    """A database the node cannot reach (security group, wrong endpoint) stops the boot with one line
    naming the database, instead of a WSO2 that starts against nothing."""
    assert_stops_naming(rehearsal.record("unreachable"))


def test_a_pack_whose_checksum_does_not_match_stops_the_boot(rehearsal: Rehearsal) -> None:
    """The pack is code the node runs as its service: one that is not the pinned one (its SHA-256 differs
    from product.pack_sha256, rendered into the user data) must never be unpacked."""
    assert_stops_naming(rehearsal.record("tampered"))


# -- the second engine ------------------------------------------------------------------------------------

def test_a_node_boots_against_postgresql(rehearsal: Rehearsal) -> None:
    """The staging stack on PostgreSQL (database.engine: postgres): the schemas created, WSO2 connecting
    as its own least-privileged user rather than the RDS master, and the health check answering."""
    record: PostgresRecord = rehearsal.record("postgres")
    assert all(b.returncode == 0 for b in record.boots), describe(record.boots)
    assert not record.missing_tables, f"PostgreSQL tables missing after the boot: {record.missing_tables}"
    for name, health in record.health.items():
        assert_healthy(f"{name} on PostgreSQL", health)
    assert record.connects_as, "WSO2 reported no datasource"
    assert record.master_username not in record.connects_as, \
        f"WSO2 connects to PostgreSQL as the RDS master user {record.master_username}"
    assert record.connects_as <= record.roles, \
        f"WSO2 connects as {sorted(record.connects_as)}, but the server's login roles are {sorted(record.roles)}"


# -- a branch environment on its branch base (issue 18) ---------------------------------------------------

@pytest.fixture(scope="session")
def branch(rehearsal: Rehearsal) -> BranchRecord:
    record: BranchRecord = rehearsal.record("branch")
    return record


def branch_databases(record: BranchRecord) -> set[str]:
    """The branch's own WSO2 databases on the base's server: eph_<stack>_<database> (obiam/branch_scope.py)."""
    return {record.environment.scope.database(db) for db in REQUIRED_TABLES}


def test_a_branch_node_boots_on_the_databases_its_apply_had_the_base_make(synth: Synth, rehearsal: Rehearsal,
                                                                          branch: BranchRecord) -> None:
    """Issue 18 (README, "Per-branch environments"): a branch stack has no database server of its own. Its
    apply invokes the base's branch-databases function (aws_lambda_invocation, lifecycle_scope CRUD, so the
    AWS provider adds tf.action "create": hashicorp/terraform-provider-aws internal/service/lambda/invocation.go)
    before the nodes boot; that makes the branch's databases and user on the base's server, and the node then
    boots healthy with all of WSO2's tables (OB 3.0 "Setting up databases") in those databases. The node runs
    the session's branch stack's user data, changed only in the pinned pack hash."""
    environment = branch.environment
    synthesized = NodeStack.load(environment.name, synth.path(environment.name))
    pin = synth.environments[environment.name].config.product.pack_sha256
    assert environment.stack.user_data == synthesized.user_data.replace(pin.encode(), rehearsal.pack_sha256().encode())
    assert [(a["action"], set(a["databases"]), a["user"]) for a in branch.created] == \
        [("create", branch_databases(branch), branch.database_user)], f"the function answered {branch.created}"
    assert all(b.returncode == 0 for b in branch.boots), describe(branch.boots)
    for name, health in branch.health.items():
        assert_healthy(f"{name} of {environment.name}", health)
    assert branch.health, "no health check was made"
    assert not branch.missing_tables, f"tables missing in the branch's databases: {branch.missing_tables}"


def test_a_branch_node_creates_its_tables_as_the_branch_user_and_never_as_the_master(branch: BranchRecord) -> None:
    """On a branch base, db-init (obiam/bootstrap/templates/db-init.sh.j2, db_user_from_base) creates WSO2's
    tables with the branch's own user, whose secret the runtime parameter's db_secret_arn names: the base's
    function gave that user every right on the branch's databases and none elsewhere, so the node needs no
    master credential and creates no user. The shared server's general log shows who ran what: every
    connection from the node is the branch user's, each CREATE TABLE ran in one of the branch's databases,
    no CREATE USER or GRANT came from the node, and the base's master user connected once per invocation of
    the base's function, never from the node."""
    assert all(b.returncode == 0 for b in branch.boots), describe(branch.boots)
    sessions = branch.node_sessions
    assert sessions, "the server's general log has no connection from the branch node"
    assert {s.user for s in sessions} == {branch.database_user}, \
        f"the branch node connected as {sorted({s.user for s in sessions})}, expected only {branch.database_user}"
    created = Counter(database for s in sessions for database, statement in s.statements
                      if "CREATE TABLE" in statement.upper())
    assert set(created) == branch_databases(branch), \
        f"CREATE TABLE ran in {sorted(created)}, expected the branch's databases {sorted(branch_databases(branch))}"
    granted = [statement for s in sessions for _, statement in s.statements
               if any(word in statement.upper() for word in ("CREATE USER", "ALTER USER", "GRANT "))]
    assert not granted, f"the branch node managed users on the shared server: {granted[:3]}"
    master = branch.environment.base.master_username if branch.environment.base else ""
    hosts = sorted({s.host for s in branch.master_sessions})
    assert master and len(branch.master_sessions) == len(branch.created), (
        f"the base's master user {master} connected {len(branch.master_sessions)} time(s) from {hosts}, expected "
        f"once per invocation of the base's function ({len(branch.created)})")


def test_wso2_on_a_branch_uses_the_branch_databases_as_the_branch_user(branch: BranchRecord) -> None:
    """WSO2's datasources on a branch (deployment.toml, obiam/bootstrap settings_for) point at the base's
    server and the branch's own eph_<stack>_<database> databases, and connect as the branch user: the
    product double connected to each and read its table."""
    assert branch.datasources, "WSO2 reported no datasource"
    environment = branch.environment
    used = {}
    for datasource in branch.datasources:
        match = re.fullmatch(r"jdbc:mysql://([^:/]+):(\d+)/([^?]+)(?:\?.*)?", datasource["url"])
        assert match is not None, f"{datasource['name']}: not a MySQL JDBC URL: {datasource['url']}"
        assert match.group(1) == environment.db_host, f"{datasource['name']} points at {match.group(1)}"
        assert datasource["username"] == branch.database_user, \
            f"{datasource['name']} connects as {datasource['username']}, not the branch user"
        used[datasource["name"]] = match.group(3)
    assert set(used.values()) <= branch_databases(branch), f"datasources outside the branch's databases: {used}"


def test_destroying_a_branch_drops_its_databases_and_user_and_nothing_else(rehearsal: Rehearsal) -> None:
    """`cdktf destroy` of a branch (constructs/wso2_on_aws/branch_databases.py): after its nodes, the
    invocation's delete (tf.action "delete") makes the base's function drop the branch's databases and user.
    The shared server keeps everything else: prod's databases here, every table in them."""
    record: BranchDestroyRecord = rehearsal.record("branch-destroy")
    before = {d for d in record.databases_before if d.startswith(record.branch_prefix)}
    assert len(before) == len(REQUIRED_TABLES), f"the branch's databases before the destroy: {sorted(before)}"
    assert [d["action"] for d in record.deleted] == ["delete"], f"the function answered {record.deleted}"
    left = {d for d in record.databases_after if d.startswith(record.branch_prefix)}
    assert not left, f"the branch's databases outlived its destroy: {sorted(left)}"
    assert record.branch_user not in record.users_after, f"the branch user {record.branch_user} outlived its destroy"
    prod = {db: tables for db, tables in REQUIRED_TABLES.items() if tables <= record.others_before.get(db, set())}
    assert prod == REQUIRED_TABLES, "prod's databases were not on the shared server: the check would prove nothing"
    assert record.others_after == record.others_before, "the branch's destroy changed other databases on the server"
