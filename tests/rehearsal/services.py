"""The rehearsal's shared servers, all inside the services namespace: moto, MariaDB, PostgreSQL, bindfs.

The services namespace is the VPC as the nodes see it: a bridge on 10.40.0.0/16 that
every node's veth joins, with the "AWS endpoints" (moto) on 10.40.0.2 and the database
host on 10.40.0.3. The test process reaches moto through one veth with a /30 of its own
from 198.18.0.0/15 (the benchmarking range, so nothing collides with the machine's routes,
nor with another test session's lab on the same machine), and the database servers
through their Unix sockets.
"""

from __future__ import annotations

import ipaddress
import json
import os
import pwd
import re
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.rehearsal.namespaces import Holder, run
from tests.rehearsal.tls import Issued

VPC_CIDR = "10.40.0.0/16"
ENDPOINTS_IP = "10.40.0.2"
DATABASE_IP = "10.40.0.3"
HOST_LINK_NETWORK = ipaddress.ip_network("198.18.0.0/15")
# The one AMI the lab's instances run (moto's MOTO_AMIS_PATH): moto's own catalogue of several hundred
# per region costs ~1 s of its CPU in DescribeImages.
AMIS = [{"ami_id": "ami-0a1b2c3d4e5f60718", "name": "al2023-ami-2023.6.20241111.0-kernel-6.1-x86_64",
         "description": "Amazon Linux 2023 AMI", "owner_id": "137112412989", "public": True, "state": "available",
         "architecture": "x86_64", "virtualization_type": "hvm", "hypervisor": "xen", "image_type": "machine",
         "root_device_type": "ebs", "root_device_name": "/dev/xvda", "sriov": "simple",
         "image_location": "amazon/al2023-ami-2023.6.20241111.0-kernel-6.1-x86_64"}]
MOTO_PORT = 5000
VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


def wait_for(check, what: str, timeout: float = 30, process: subprocess.Popen[bytes] | None = None,  # type: ignore[no-untyped-def]
             log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.05)
    detail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{what} did not come up\n{detail}")


def free_host_link() -> tuple[str, str]:
    """(test process end, services end): a /30 of 198.18.0.0/15 no interface of this machine uses yet.

    One per lab: two labs with the same addresses (`make test` while a CI run rehearses in a
    clone) would each reach whichever moto the route picks.
    """
    used = run("ip", "-4", "-o", "addr", "show").stdout
    blocks = HOST_LINK_NETWORK.num_addresses // 4
    for offset in range(blocks):
        base = HOST_LINK_NETWORK.network_address + 4 * ((os.getpid() + offset) % blocks)
        if f" {base + 1}/" not in used and f" {base + 2}/" not in used:
            return str(base + 1), str(base + 2)
    raise RuntimeError(f"no free /30 left in {HOST_LINK_NETWORK}")


def setup_network(services: Holder, suffix: str, link: tuple[str, str]) -> None:
    host_end, inner_end = f"olh{suffix}", f"ols{suffix}"
    run("ip", "link", "add", host_end, "type", "veth", "peer", "name", inner_end, "netns", str(services.pid))
    run("ip", "addr", "add", f"{link[0]}/30", "dev", host_end)
    run("ip", "link", "set", host_end, "up")
    services.run("ip", "-batch", "-", input="\n".join([
        "link set lo up",
        # A fixed MAC: a bridge without one takes its lowest port's, so a node leaving would change the
        # address behind 10.40.0.2/.3 and the other nodes' ARP entries would point nowhere for a minute.
        "link add br0 address 02:00:0a:28:00:01 type bridge",
        f"addr add {ENDPOINTS_IP}/16 dev br0",
        f"addr add {DATABASE_IP}/16 dev br0",
        "link set br0 up",
        f"addr add {link[1]}/30 dev {inner_end}",
        f"link set {inner_end} up",
    ]) + "\n")


def start_moto(services: Holder, directory: Path, address: str) -> subprocess.Popen[bytes]:
    """moto's server in the services namespace; `address`: where the test process reaches it."""
    log = directory / "moto.log"
    amis = directory / "moto-amis.json"
    amis.write_text(json.dumps(AMIS))
    # All interfaces of the services namespace: the nodes' bridge and the test process's veth.
    process = subprocess.Popen(services.command("env", f"MOTO_AMIS_PATH={amis}", str(VENV_BIN / "moto_server"),
                                                "-H", "0.0.0.0", "-p", str(MOTO_PORT)),  # noqa: S104
                               stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def up() -> bool:
        try:
            urllib.request.urlopen(f"http://{address}:{MOTO_PORT}/moto-api/", timeout=1)
            return True
        except OSError:
            return False
    wait_for(up, "moto_server", process=process, log=log)
    return process


class MariaDB:
    """Debian's mariadb-server: TLS with the test CA, the general log on (to count schema statements)."""

    port = 3306

    def __init__(self, services: Holder, directory: Path, tls: Issued, ca: Path) -> None:
        self.directory = directory
        self.socket = directory / "mysqld.sock"
        self.general_log = directory / "general.log"
        data = directory / "data"
        data.mkdir(parents=True)
        run("mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root", "--skip-test-db",
            "--auth-root-authentication-method=socket", timeout=120)
        log = directory / "error.log"
        self.process = subprocess.Popen(services.command(
            "/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}", "--user=root", f"--socket={self.socket}",
            f"--port={self.port}", "--bind-address=0.0.0.0", f"--pid-file={directory / 'mysqld.pid'}",
            f"--log-error={log}", "--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
            "--performance-schema=OFF", f"--ssl-ca={ca}", f"--ssl-cert={tls.certificate}", f"--ssl-key={tls.key}",
            "--general-log=1", f"--general-log-file={self.general_log}"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.sql("SELECT 1", check=False).returncode == 0, "MariaDB", process=self.process,
                 log=log)

    def sql(self, statement: str, database: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("mysql", "--no-defaults", f"--socket={self.socket}", "--user=root", "--batch",
                   "--skip-column-names", *([database] if database else []), "-e", statement, check=check)

    def create_master(self, username: str, password: str) -> None:
        # RDS's master user: everything on every database, over TLS only (the parameter group requires it).
        self.sql(f"CREATE USER '{username}'@'%' IDENTIFIED BY '{password}' REQUIRE SSL; "
                 f"GRANT ALL PRIVILEGES ON *.* TO '{username}'@'%' WITH GRANT OPTION;")

    def set_password(self, username: str, password: str) -> None:
        self.sql(f"ALTER USER '{username}'@'%' IDENTIFIED BY '{password}'")

    def databases(self) -> set[str]:
        return set(self.sql("SHOW DATABASES").stdout.split())

    def tables(self, database: str) -> set[str]:
        return {t.upper() for t in self.sql("SHOW TABLES", database).stdout.split()}

    def column_type(self, database: str, table: str, column: str) -> str:
        # Names are the test's own constants, never outside input.
        where = f"TABLE_SCHEMA = '{database}' AND UPPER(TABLE_NAME) = '{table}' AND UPPER(COLUMN_NAME) = '{column}'"
        query = "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE " + where  # noqa: S608
        return self.sql(query).stdout.strip().lower()

    def ddl_log(self) -> str:
        return self.general_log.read_text(errors="replace") if self.general_log.exists() else ""

    def sessions(self) -> list[Session]:
        """Every connection the general log recorded: who connected from where, and what it ran in which database."""
        found: dict[int, Session] = {}
        current: tuple[Session, int] | None = None  # the session and index of the statement being continued
        for line in self.ddl_log().splitlines():
            entry = GENERAL_LOG_ENTRY.match(line)
            if entry is None:
                if current is not None and current[1] >= 0:  # a multi-line statement goes on
                    session, index = current
                    database, statement = session.statements[index]
                    session.statements[index] = (database, f"{statement}\n{line}")
                continue
            number, command, argument = int(entry.group(1)), entry.group(2), entry.group(3)
            session = found.setdefault(number, Session(number))
            current = (session, -1)
            if command == "Connect":
                account = re.match(r"(?:Access denied for user ')?([^@' ]+)'?@'?([^' ]+)'?(?: on (\S*))?", argument)
                if account is not None:
                    session.user, session.host = account.group(1), account.group(2)
                    session.database = account.group(3) or ""
                session.denied = argument.startswith("Access denied")
            elif command == "Init DB":
                session.database = argument.strip()
            elif command in ("Query", "Execute"):
                session.statements.append((session.database, argument))
                current = (session, len(session.statements) - 1)
        return list(found.values())


# One entry of MariaDB's general log: [date time] id command<TAB>argument (a statement may go on over more lines).
GENERAL_LOG_ENTRY = re.compile(r"^(?:\d{6}\s+\d{1,2}:\d{2}:\d{2})?\s+(\d+) ([A-Z][a-z]+(?: [A-Za-z]+)?)\t(.*)$")


@dataclass
class Session:
    """One connection to the database server, as its general log recorded it."""

    id: int
    user: str = ""
    host: str = ""
    database: str = ""  # the database in use (the connection's, or the last USE)
    denied: bool = False
    statements: list[tuple[str, str]] = field(default_factory=list)  # (database in use, statement)


class PostgreSQL:
    """Debian's PostgreSQL 15: TLS with the test CA, DDL statements logged (to count schema work)."""

    port = 5432

    def __init__(self, services: Holder, directory: Path, tls: Issued, ca: Path) -> None:
        self.directory = directory
        postgres = pwd.getpwnam("postgres")
        directory.mkdir(parents=True)
        os.chown(directory, postgres.pw_uid, postgres.pw_gid)
        data = directory / "data"
        self.log = directory / "postgres.log"
        as_postgres = ["setpriv", f"--reuid={postgres.pw_uid}", f"--regid={postgres.pw_gid}", "--init-groups"]
        binaries = Path("/usr/lib/postgresql/15/bin")
        run(*as_postgres, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
            "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", timeout=120)
        for source, name in ((tls.certificate, "server.crt"), (tls.key, "server.key"), (ca, "root.crt")):
            shutil.copy(source, data / name)
            os.chown(data / name, postgres.pw_uid, postgres.pw_gid)
            (data / name).chmod(0o600)
        # RDS refuses clear-text connections when rds.force_ssl is on; hostssl only.
        (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 0.0.0.0/0 scram-sha-256\n")
        self.socket_directory = directory
        self.process = subprocess.Popen(services.command(
            *as_postgres, str(binaries / "postgres"), "-D", str(data), "-c", "listen_addresses=*",
            "-c", f"port={self.port}", "-c", f"unix_socket_directories={directory}", "-c", "ssl=on",
            "-c", "fsync=off", "-c", "log_statement=ddl", "-c", "log_line_prefix=%m [%d] %u ",
            "-c", "shared_buffers=16MB"),
            stdin=subprocess.DEVNULL, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        wait_for(lambda: self.sql("SELECT 1", check=False).returncode == 0, "PostgreSQL", process=self.process,
                 log=self.log)

    def sql(self, statement: str, database: str = "postgres", check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("psql", "--no-psqlrc", "-tA", "-h", str(self.socket_directory), "-p", str(self.port),
                   "-U", "postgres", "-d", database, "-c", statement, check=check)

    def create_master(self, username: str, password: str) -> None:
        # RDS for PostgreSQL's master user is no superuser: it may create databases and roles.
        self.sql(f"CREATE ROLE {username} LOGIN CREATEDB CREATEROLE PASSWORD '{password}'")

    def set_password(self, username: str, password: str) -> None:
        self.sql(f"ALTER ROLE {username} PASSWORD '{password}'")

    def databases(self) -> set[str]:
        return set(self.sql("SELECT datname FROM pg_database").stdout.split())

    def tables(self, database: str) -> set[str]:
        out = self.sql("SELECT tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
                       database)
        return {t.upper() for t in out.stdout.split()}

    def column_type(self, database: str, table: str, column: str) -> str:
        where = f"upper(table_name) = '{table}' AND upper(column_name) = '{column}'"  # the test's own names
        query = ("SELECT data_type || COALESCE('(' || character_maximum_length || ')', '') "
                 "FROM information_schema.columns WHERE " + where)
        out = self.sql(query, database)
        return out.stdout.strip().lower().replace("character varying", "varchar")

    def ddl_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_share(services: Holder, backing: Path, mount_point: Path, uid: int) -> None:
    """One EFS access point: bindfs forcing the access point's posix_user and refusing chown, as EFS does."""
    backing.mkdir(parents=True)
    os.chown(backing, uid, uid)
    backing.chmod(0o750)  # the access point's creation_info permissions
    mount_point.mkdir(parents=True)
    services.run("bindfs", f"--force-user={uid}", f"--force-group={uid}", f"--create-for-user={uid}",
                 f"--create-for-group={uid}", "--chown-deny", "--chgrp-deny", "-o", "allow_other",
                 str(backing), str(mount_point))
