"""The rehearsal's scenarios, run in the background of the test session; the tests assert on what they saw.

Issue 12 gives the rehearsal 30 s on top of `make test` on two cores, and the rest of the
suite keeps about one core busy. So tests/conftest.py starts the servers as soon as the
session knows it will run the rehearsal, hands over the session's own synthesized prod
stack (`synth`) and PostgreSQL variant (`variants`) when they exist, and runs the
rehearsal's tests last. Here two threads run the scenarios meanwhile, in the order their
shared state allows, and record what each scenario needs to judge its requirement (boot
results, health answers, the database server's statements, the shares' writes, the
node's files). tests/test_rehearsal.py waits for a record and asserts on it.

Order and concurrency (one moto, one MariaDB, one PostgreSQL, one pack object in S3):
- prod thread: servers -> deploy prod -> two nodes boot together -> a third joins -> the
  members refresh -> the boot runs again -> credential rotation -> a missing runtime
  parameter key -> (after the PostgreSQL boot has its pack) a pack with a bad checksum.
- side thread: (after the two nodes) a node that cannot reach the database.
- postgres thread: (once the servers and the variant exist) deploy the PostgreSQL variant;
  after the third prod node, one node boots; its own parameter, secrets, shares, database
  server and subnet.
- branch thread (issue 18): (once the servers and the session's branch stack exist) deploy
  its branch base (tests/rehearsal/base.py: the published parameter, the RDS-like master on
  the shared MariaDB, the base's function) and the branch, whose apply runs the base's real
  branch-databases function (create); after the third prod node, one branch node boots, in
  the base's subnet against the same MariaDB as prod; then the branch's destroy (the node
  goes, the function's delete) while prod's databases stay on that server. Its stages take
  1.2 s (deploy: the seeding and one Lambda-like subprocess), 13 s (the boot, beside the
  PostgreSQL boot) and 1.4 s (destroy) alone, 2.5 s, 17-18 s and 2.5 s inside `make test`.
  Measured cost on the 2-core machine: `make test`'s pytest 86.6 and 89.5 s with it, 85.1 s
  without (main at 4d812d9): +2-4 s; the rehearsal's last stage ends 5 s later (53 s, not 48 s).
The missing-key and bad-pack scenarios change the prod parameter and the pack object, so
they run when no other node reads them. The unreachable node starts after the share is
seeded (so the seeding scenario counts the two nodes' writes only); while it runs it is a
member like any pending node, which the members scenarios allow (they ask for "at least").
"""

from __future__ import annotations

import contextlib
import difflib
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.rehearsal import pack as packs
from tests.rehearsal.lab import BootResult, Lab, LabEnvironment, Node, make_root
from tests.rehearsal.services import DATABASE_IP, MariaDB, Session
from tests.rehearsal.stack import NodeStack
from tests.rehearsal.watch import Arrivals

# Namespaces, overlays and FUSE need root; .ci/run installs the Debian packages.
REQUIRED_TOOLS = ("unshare", "nsenter", "ip", "bindfs", "mariadbd", "mariadb-install-db", "mysql", "psql", "keytool",
                  "unzip", "jq", "curl")
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
# OB 3.0 "Setting up databases" (docs-open-banking 3.0.0 setting-up-databases.md): the six
# databases and the scripts that fill them; the tables named are the synthetic pack's
# representatives of each script (tests/rehearsal/pack.py).
REQUIRED_TABLES = {
    "openbank_apimgtdb": {"IDN_OAUTH2_ACCESS_TOKEN", "SP_METADATA", "AM_APPLICATION_REGISTRATION"},
    "openbank_am_configdb": {"REG_RESOURCE", "UM_USER"},
    "openbank_govdb": {"REG_RESOURCE", "UM_USER"},
    "openbank_userdb": {"REG_RESOURCE", "UM_USER"},
    "openbank_iskm_configdb": {"REG_RESOURCE", "UM_USER"},
    "openbank_openbankingdb": {"OB_CONSENT"},
}
SEEDED_DIRECTORIES = {d: set(files) for d, files in packs.ARTIFACTS.items()}
WIDENED_COLUMNS = (("SP_METADATA", "VALUE"), ("AM_APPLICATION_REGISTRATION", "INPUTS"))
SERVICE = "wso2-obiam.service"
JOURNAL_TAIL = 3000
WAIT_LIMIT = 600  # seconds a test waits for its record before it fails
# The branch node boots once this stage has ended (the two cores are busiest before).
BRANCH_BOOT_AFTER = "third"


class RehearsalClosed(RuntimeError):
    """The session ended (or failed) before this scenario ran."""


# -- observations ----------------------------------------------------------------------------------------

def members(node: Node) -> set[str]:
    """The well-known members in a node's deployment.toml, in either shape IS accepts."""
    clustering = node.deployment_toml().get("clustering", {})
    found = set()
    for member in clustering.get("members", []):
        found.add(str(member.get("hostName")) if isinstance(member, dict) else str(member).split(":")[0])
    return found


def seed_arrivals(arrivals: Counter[tuple[str, str]]) -> dict[tuple[str, str], int]:
    return {(d, f): arrivals[(d, f)] for d, files in SEEDED_DIRECTORIES.items() for f in files}


def missing_tables(environment: LabEnvironment) -> dict[str, list[str]]:
    """Database (under the environment's names) -> the required tables it lacks."""
    database, scope = environment.database, environment.scope
    present = database.databases()
    required = {scope.database(db): tables for db, tables in REQUIRED_TABLES.items()}
    return {db: sorted(tables - database.tables(db)) for db, tables in required.items()
            if db not in present or tables - database.tables(db)}


@dataclass
class Health:
    code: int
    journal: str  # the service journal's tail when the health check was made

    @classmethod
    def of(cls, node: Node) -> Health:
        code = node.health()
        return cls(code, node.journal()[-JOURNAL_TAIL:])


def boot_all(nodes: list[Node]) -> list[BootResult]:
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        return list(pool.map(Node.boot, nodes))


def describe(boots: list[BootResult]) -> str:
    return "\n\n".join(b.describe() for b in boots)


@dataclass
class ClusterRecord:
    environment: LabEnvironment
    nodes: list[Node]
    boots: list[BootResult]
    arrivals: Arrivals
    schema_statements: list[str]
    health: dict[str, Health] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    missing_tables: dict[str, list[str]] = field(default_factory=dict)
    widths: dict[tuple[str, str], str] = field(default_factory=dict)
    incomplete_shares: dict[str, list[str]] = field(default_factory=dict)
    seed_writes: dict[tuple[str, str], int] = field(default_factory=dict)
    markers: dict[str, list[str]] = field(default_factory=dict)
    user_data: bytes = b""  # what node-1 ran, as cloud-init's scripts-user would
    imds_log: str = ""
    dnf_log: str = ""

    @property
    def failed(self) -> list[BootResult]:
        return [b for b in self.boots if b.returncode != 0]


@dataclass
class ThirdRecord:
    node: Node
    result: BootResult
    statements: list[str]
    writes: dict[tuple[str, str], int]
    health: Health | None
    members: set[str]


@dataclass
class RefreshRecord:
    restart_returncode: int
    restart_stderr: str
    first_members: set[str]
    health: Health | None
    journal: str


@dataclass
class RebootRecord:
    result: BootResult
    changed: list[str]
    diff: str
    statements: list[str]
    rewritten: dict[str, int]
    health: Health | None


@dataclass
class RotationRecord:
    node: str
    health_before: Health
    rotated: int = 0
    restart_returncode: int | None = None
    restart_stderr: str = ""
    health_after: Health | None = None
    journal: str = ""  # the service journal's tail after the restart
    stale: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class BrokenRecord:
    """A boot with one broken input: what it printed, what its log kept, and whether WSO2 ran."""

    result: BootResult
    log: str
    service_active: bool
    cause: tuple[str, ...]  # words one of which the FAILED line must contain


@dataclass
class PostgresRecord:
    boots: list[BootResult]
    missing_tables: dict[str, list[str]]
    health: dict[str, Health]
    master_username: str = ""
    connects_as: set[str] = field(default_factory=set)  # the users WSO2's datasources connect as
    roles: set[str] = field(default_factory=set)  # the login roles on the server


@dataclass
class BranchRecord:
    """A branch environment on its base: the base's function's create, the node's boot, and what the shared
    server saw from the node."""

    environment: LabEnvironment
    created: list[dict[str, Any]]  # the branch-databases function's answers (apply's create)
    boots: list[BootResult]
    missing_tables: dict[str, list[str]] = field(default_factory=dict)
    health: dict[str, Health] = field(default_factory=dict)
    datasources: list[dict[str, Any]] = field(default_factory=list)  # WSO2's, as the product double used them
    node_sessions: list[Session] = field(default_factory=list)  # the server's connections from the node(s)
    master_sessions: list[Session] = field(default_factory=list)  # the base master's connections, from anywhere

    @property
    def database_user(self) -> str:
        return self.environment.scope.database_user


@dataclass
class BranchDestroyRecord:
    """The server before and after the branch's `cdktf destroy` (the function's delete)."""

    deleted: list[dict[str, Any]]
    branch_user: str
    branch_prefix: str
    databases_before: set[str]
    databases_after: set[str]
    users_after: set[str]
    # Every other database on the server (prod's, the system's) -> its tables, before and after.
    others_before: dict[str, set[str]]
    others_after: dict[str, set[str]]


# -- the session's rehearsal -------------------------------------------------------------------------------

class Rehearsal:
    STAGES = ("lab", "prod", "cluster", "third", "unreachable", "refresh", "reboot", "rotation", "missing-key",
              "postgres-deploy", "postgres", "branch-deploy", "branch", "branch-destroy", "tampered")

    def __init__(self, regions: list[str]) -> None:
        self.regions = tuple(regions)
        # The lab's database servers present one certificate for every RDS-style endpoint it hands out.
        self.database_hosts = [f"*.c0rehearsal.{region}.rds.amazonaws.com" for region in regions]
        self.lab: Lab | None = None
        self.records: dict[str, Future[Any]] = {name: Future() for name in self.STAGES}
        self.timeline: dict[str, tuple[float, float]] = {}  # stage -> (start, end), seconds since the start
        self.pack: Future[packs.Pack] = Future()  # the lab's pack, as soon as it is built
        self._prod: Future[tuple[NodeStack, Any]] = Future()
        self._postgres: Future[tuple[NodeStack, Any]] = Future()
        self._branch: Future[tuple[NodeStack, Any, str, Path]] = Future()  # + its base's name and stack
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self.started = time.monotonic()

    # -- inputs, from tests/conftest.py --------------------------------------------------------------------
    def start(self) -> None:
        for name, target in (("prod", self._prod_thread), ("side", self._side_thread),
                             ("postgres", self._postgres_thread), ("branch", self._branch_thread)):
            thread = threading.Thread(target=target, name=f"rehearsal-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def provide_prod(self, path: Path, config: Any) -> None:
        if not self._prod.done():
            self._prod.set_result((NodeStack.load("prod", path), config))

    def provide_postgres(self, name: str, stack: dict[str, Any], path: Path, config: Any) -> None:
        if not self._postgres.done():
            self._postgres.set_result((NodeStack.from_json(name, stack, path), config))

    def provide_branch(self, name: str, path: Path, config: Any, base: str, base_path: Path) -> None:
        """A branch environment's stack, and the synthesized stack of the branch base it stands on."""
        if not self._branch.done():
            self._branch.set_result((NodeStack.load(name, path), config, base, base_path))

    def pack_sha256(self, timeout: float = WAIT_LIMIT) -> str:
        """The SHA-256 of the pack the lab built (`obiam pack build`), which the booted stacks must pin."""
        return self.pack.result(timeout=timeout).sha256

    def input_failed(self, which: str, error: BaseException) -> None:
        future = {"prod": self._prod, "postgres": self._postgres, "branch": self._branch}[which]
        if not future.done():
            future.set_exception(RuntimeError(f"the session's {which} synthesis failed: {error!r}"))

    # -- results, for tests/test_rehearsal.py --------------------------------------------------------------
    def record(self, stage: str, timeout: float = WAIT_LIMIT) -> Any:
        return self.records[stage].result(timeout=timeout)

    def close(self) -> None:
        """Ends every process and mount the rehearsal started, wherever the scenarios are."""
        self._closing.set()
        for future in (self._prod, self._postgres, self._branch, self.pack):
            if not future.done():
                future.set_exception(RehearsalClosed("the test session ended first"))
        cluster = self.records["cluster"]
        if cluster.done() and cluster.exception() is None:
            cluster.result().arrivals.close()
        if self.lab is not None:
            self.lab.close()  # running boots end with their namespaces; the threads then stop
        for thread in self._threads:
            thread.join(timeout=30)
        for name, future in self.records.items():
            if not future.done():
                future.set_exception(RehearsalClosed(f"{name}: the test session ended first"))

    # -- the two threads -----------------------------------------------------------------------------------
    def _stage(self, name: str, function: Callable[[], Any]) -> None:
        started = time.monotonic()
        try:
            if self._closing.is_set():
                raise RehearsalClosed(f"{name}: the test session ended first")
            value = function()
        except BaseException as error:  # handed to the test that waits for it
            self.records[name].set_exception(error)
        else:
            self.records[name].set_result(value)
        finally:
            self.timeline[name] = (started - self.started, time.monotonic() - self.started)

    def summary(self) -> str:
        """One line per stage: when it ran, relative to the start of the servers."""
        return "\n".join(f"{name:<12} {start:6.1f}s -> {end:6.1f}s ({end - start:5.1f}s)"
                         f"{'' if self.records[name].done() and self.records[name].exception() is None else ' FAILED'}"
                         for name, (start, end) in sorted(self.timeline.items(), key=lambda item: item[1]))

    def _prod_thread(self) -> None:
        self._stage("lab", self._start_lab)
        if not self.pack.done():  # the lab failed before its pack was built: nobody may wait for it
            error = self.records["lab"].exception() or RuntimeError("the lab ended without building its pack")
            with contextlib.suppress(InvalidStateError):
                self.pack.set_exception(RuntimeError(f"the lab failed before its pack was built: {error!r}"))
        self._stage("prod", self._deploy_prod)
        self._stage("cluster", self._cluster)
        self._stage("third", self._third)
        self._stage("refresh", self._refresh)
        self._stage("reboot", self._reboot)
        self._stage("rotation", self._rotation)
        wait_futures([self.records["unreachable"]])  # that node reads the runtime parameter too
        self._stage("missing-key", self._missing_key)
        # The PostgreSQL and branch nodes download the same pack object.
        wait_futures([self.records["postgres"], self.records["branch"]])
        self._stage("tampered", self._tampered)

    def _side_thread(self) -> None:
        wait_futures([self.records["cluster"]])
        self._stage("unreachable", self._unreachable)

    def _postgres_thread(self) -> None:
        wait_futures([self.records["lab"], self._postgres])
        self._stage("postgres-deploy", self._postgres_deploy)
        # Its boot waits for the prod nodes' first boots, which the prod scenarios after them need, and
        # then shares the two cores with those (restarts, mostly single-threaded).
        wait_futures([self.records["third"]])
        self._stage("postgres", self._postgres_boot)

    def _branch_thread(self) -> None:
        wait_futures([self.records["lab"], self._branch])
        self._stage("branch-deploy", self._branch_deploy)
        wait_futures([self.records[BRANCH_BOOT_AFTER]])
        self._stage("branch", self._branch_boot)
        self._stage("branch-destroy", self._branch_destroy)

    # -- stages --------------------------------------------------------------------------------------------
    def _start_lab(self) -> Lab:
        import os
        import shutil

        missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
        if os.geteuid() != 0 or missing or not (POSTGRES_BIN / "initdb").exists():
            raise RuntimeError(f"the boot rehearsal needs root and {', '.join(missing) or 'PostgreSQL 15'}: "
                               "run as root after .ci/run's apt-get install step")
        self.lab = Lab(make_root())
        if self._closing.is_set():  # close() ran while the lab was being made
            self.lab.close()
            raise RehearsalClosed("lab: the test session ended first")
        self.lab.start(self.database_hosts, self.regions, self.pack)
        return self.lab

    def _needs(self, stage: str) -> Any:
        """An earlier stage's record; if that stage failed, this one fails naming it (its own test shows why)."""
        error = self.records[stage].exception()
        if error is not None:
            raise RuntimeError(f"the {stage} stage failed first: {type(error).__name__}: {error}") from None
        return self.records[stage].result()

    def _lab(self) -> Lab:
        return self._needs("lab")

    def _environment(self) -> LabEnvironment:
        return self._needs("prod")

    def _cluster_record(self) -> ClusterRecord:
        return self._needs("cluster")

    def _deploy_prod(self) -> LabEnvironment:
        lab = self._lab()
        stack, config = self._prod.result()
        return lab.deploy(stack, config)

    def _cluster(self) -> ClusterRecord:
        environment = self._environment()
        arrivals = Arrivals({d: environment.share_for(d).backing for d in SEEDED_DIRECTORIES})
        nodes = [environment.node("node-1"), environment.node("node-2")]
        boots = boot_all(nodes)
        record = ClusterRecord(environment, nodes, boots, arrivals, environment.schema_statements())
        first = nodes[0]
        record.user_data = (first.directory / "upper/var/lib/cloud/instance/scripts/part-001").read_bytes()
        record.imds_log = (first.records / "imds.log").read_text() if (first.records / "imds.log").exists() else ""
        record.dnf_log = (first.records / "dnf.log").read_text() if (first.records / "dnf.log").exists() else ""
        record.missing_tables = missing_tables(environment)
        if not record.missing_tables:
            record.widths = {(t, c): environment.database.column_type("openbank_apimgtdb", t, c)
                             for t, c in WIDENED_COLUMNS}
        for directory, files in SEEDED_DIRECTORIES.items():
            backing = environment.share_for(directory).backing
            present = {p.name for p in backing.iterdir()}
            if files - present:
                record.incomplete_shares[directory] = sorted(files - present)
            record.markers[directory] = sorted(p.name for p in backing.iterdir()
                                               if p.name.startswith(".obiam-") and not p.name.endswith(".lock"))
        record.seed_writes = seed_arrivals(arrivals.snapshot())
        if not record.failed:
            for node in nodes:
                record.health[node.name] = Health.of(node)
                record.members[node.name] = members(node)
        return record

    def _require_cluster(self) -> ClusterRecord:
        record = self._cluster_record()
        if record.failed:
            raise AssertionError(f"the first two nodes of a new environment must boot:\n{describe(record.failed)}")
        return record

    def _third(self) -> ThirdRecord:
        cluster = self._require_cluster()
        environment = cluster.environment
        before_writes = seed_arrivals(cluster.arrivals.snapshot())
        before_statements = len(environment.schema_statements())
        node = environment.node("node-3")
        result = node.boot()
        after_writes = seed_arrivals(cluster.arrivals.snapshot())
        statements = environment.schema_statements()[before_statements:]
        changed = {k: after_writes[k] - before_writes[k] for k in after_writes if after_writes[k] != before_writes[k]}
        ok = result.returncode == 0
        return ThirdRecord(node, result, statements, changed, Health.of(node) if ok else None,
                           members(node) if ok else set())

    def _unreachable(self) -> BrokenRecord:
        """A database the node cannot reach: its route to the database host is unreachable, so every
        connection fails at once (as a security group's REJECT would), not after a TCP timeout."""
        environment = self._environment()
        self._require_cluster()
        return self._broken(environment.node("no-database", unreachable=(DATABASE_IP,)),
                            (environment.db_host, "database"))

    def _refresh(self) -> RefreshRecord:
        cluster = self._require_cluster()
        third = self._needs("third")
        if third.result.returncode != 0:
            raise AssertionError(third.result.describe())
        first = cluster.nodes[0]
        restart = first.sh(f"systemctl restart {SERVICE}")
        ok = restart.returncode == 0
        return RefreshRecord(restart.returncode, restart.stderr, members(first) if ok else set(),
                             Health.of(first) if ok else None, first.journal()[-2000:])

    def _reboot(self) -> RebootRecord:
        """Runs before the rotation, which legitimately changes what a later start writes."""
        cluster = self._require_cluster()
        node = cluster.nodes[0]
        before_files, before_writes = node.snapshot(), seed_arrivals(cluster.arrivals.snapshot())
        before_statements = len(cluster.environment.schema_statements())
        result = node.boot()
        after_files = node.snapshot()
        changed = sorted(k for k in before_files.keys() | after_files.keys()
                         if before_files.get(k) != after_files.get(k))
        diff = "".join(difflib.unified_diff(before_files.get(changed[0], "").splitlines(True),
                                            after_files.get(changed[0], "").splitlines(True), changed[0],
                                            changed[0], n=1)) if changed else ""
        statements = cluster.environment.schema_statements()[before_statements:]
        writes = seed_arrivals(cluster.arrivals.snapshot())
        rewritten = {f"{d}/{f}": writes[(d, f)] - before_writes[(d, f)] for d, f in writes
                     if writes[(d, f)] != before_writes[(d, f)]}
        return RebootRecord(result, changed, diff, statements, rewritten,
                            Health.of(node) if result.returncode == 0 else None)

    def _rotation(self) -> RotationRecord:
        cluster = self._require_cluster()
        node, environment = cluster.nodes[1], cluster.environment
        record = RotationRecord(node.name, Health.of(node))
        if record.health_before.code != 200:
            return record
        used = {d["username"] for d in node.product_status()["datasources"]}
        # The RDS-managed master secret, and the secret of the user WSO2 connects as (if it is another one).
        rotated = {environment.db_secret_arn} | {arn for arn, value in environment.secret_values.items()
                                                 if value.get("username") in used}
        old = [environment.rotate_secret(arn)[0] for arn in sorted(rotated)]
        record.rotated = len(rotated)
        restart = node.sh(f"systemctl restart {SERVICE}")
        record.restart_returncode, record.restart_stderr = restart.returncode, restart.stderr
        record.journal = node.journal()[-2000:]
        if restart.returncode == 0:
            record.health_after = Health.of(node)
        stale = {f"rotated-out password {i + 1}": node.files_containing(value) for i, value in enumerate(old)}
        record.stale = {k: v for k, v in stale.items() if v}
        return record

    def _missing_key(self) -> BrokenRecord:
        """The runtime parameter without one key (a half-applied stack)."""
        environment = self._environment()
        broken = {k: v for k, v in environment.runtime_value.items() if k != "db_host"}
        environment.put_runtime_value(broken)
        try:
            node = environment.node("missing-key")
            return self._broken(node, ("db_host",))
        finally:
            environment.put_runtime_value(environment.runtime_value)

    def _tampered(self) -> BrokenRecord:
        """The pack object replaced by one whose SHA-256 differs from the one the environment pins."""
        lab, environment = self._lab(), self._environment()
        s3 = environment.client("s3")
        bucket, key = environment.config.product.pack_s3_uri[len("s3://"):].split("/", 1)
        s3.put_object(Bucket=bucket, Key=key, Body=packs.tampered(lab.pack, lab.root / "pack").read_bytes())
        try:
            return self._broken(environment.node("tampered-pack"), ("sha-256", "sha256", "checksum"))
        finally:
            s3.put_object(Bucket=bucket, Key=key, Body=lab.pack.path.read_bytes())

    @staticmethod
    def _broken(node: Node, cause: tuple[str, ...]) -> BrokenRecord:
        try:
            result = node.boot()
            try:
                log = node.read("/var/log/obiam-bootstrap.log")
            except FileNotFoundError as error:
                log = f"(no log: {error})"
            return BrokenRecord(result, log, node.service_active(), cause)
        finally:
            node.terminate()

    def _postgres_deploy(self) -> LabEnvironment:
        lab = self._lab()
        stack, config = self._postgres.result()
        return lab.deploy(stack, config)

    def _postgres_boot(self) -> PostgresRecord:
        environment: LabEnvironment = self._needs("postgres-deploy")
        node = environment.node("node-1")
        boots = [node.boot()]
        record = PostgresRecord(boots, missing_tables(environment), {}, environment.master_username)
        if boots[0].returncode == 0:
            record.health[node.name] = Health.of(node)
            if record.health[node.name].code == 200:
                record.connects_as = {d["username"] for d in node.product_status()["datasources"]}
        record.roles = set(environment.database.sql("SELECT rolname FROM pg_roles WHERE rolcanlogin").stdout.split())
        return record

    def _branch_deploy(self) -> LabEnvironment:
        """`cdktf deploy` of the base (once, long before), then of the branch: its apply invokes the base's
        branch-databases function (create) before any node boots."""
        lab = self._lab()
        stack, config, base_name, base_path = self._branch.result()
        base = lab.bases.get(base_name) or lab.deploy_base(base_name, base_path)
        return lab.deploy(stack, config, base)

    def _branch_boot(self) -> BranchRecord:
        environment: LabEnvironment = self._needs("branch-deploy")
        assert environment.base is not None
        created = environment.branch_answers
        node = environment.node("node-1")
        boots = [node.boot()]
        record = BranchRecord(environment, created, boots, missing_tables(environment))
        if boots[0].returncode == 0:
            record.health[node.name] = Health.of(node)
            if record.health[node.name].code == 200:
                record.datasources = list(node.product_status()["datasources"])
        sessions = environment.database.sessions() if isinstance(environment.database, MariaDB) else []
        record.node_sessions = [s for s in sessions if s.host == node.ip]
        record.master_sessions = [s for s in sessions if s.user == environment.base.master_username]
        return record

    def _branch_destroy(self) -> BranchDestroyRecord:
        """`cdktf destroy` of the branch: the nodes go first (they boot after the databases, so they are
        destroyed before them), then the invocation's delete drops the branch's databases and user."""
        environment: LabEnvironment = self._needs("branch-deploy")
        database = environment.database
        assert isinstance(database, MariaDB)
        for node in environment.nodes:
            node.terminate()
        scope = environment.scope

        def others() -> dict[str, set[str]]:
            return {db: database.tables(db) for db in sorted(database.databases())
                    if not db.startswith(scope.database_prefix)}

        before, others_before = database.databases(), others()
        deleted = environment.destroy_branch_databases()
        users = set(database.sql("SELECT User FROM mysql.user").stdout.split())
        return BranchDestroyRecord(deleted, scope.database_user, scope.database_prefix, before,
                                   database.databases(), users, others_before, others())
