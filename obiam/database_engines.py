"""The RDS engines the toolkit allows for the WSO2 OB IAM databases: one object per engine with every
RDS and WSO2 fact about it (versions, port, parameter group family and parameters, log exports, license
model, JDBC URL and driver, the schema tool).

WSO2 lists the DBMSs it tests OB 3.0 against: MySQL 8.0, PostgreSQL 13,
SQL Server 2017 and Oracle 19c ("Tested DBMSs"). Each entry maps that DBMS onto
the RDS engine names that can run Multi-AZ, which the WSO2 HA pattern requires
of the RDBMS. `default_version` is the major WSO2 tested; `versions` adds the later
majors RDS supports, which the config accepts (WSO2 has not tested them: the README
says so).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from obiam.choices import EngineLifecycleSupport

# What follows the major in a full RDS engine version, per engine family, as RDS names them:
# MySQL 8.0.39 and PostgreSQL 13.16 (RDS User Guide, "Amazon RDS for MySQL/PostgreSQL versions"),
# SQL Server 15.00.4415.2.v1 ("Microsoft SQL Server versions on Amazon RDS"), Oracle
# 19.0.0.0.ru-2025-01.rur-2025-01.r1 or its spatial patch bundle 19.0.0.0.ru-2025-01.spb-1.r1
# (RDS for Oracle Release Notes, "Amazon RDS for Oracle Database 19c").
_MINOR = r"\.\d{1,4}"
_SQLSERVER_MINOR = r"\.\d{1,5}\.\d{1,3}\.v\d{1,3}"
_ORACLE_MINOR = r"\.0\.0\.0\.ru-\d{4}-\d{2}\.(rur-\d{4}-\d{2}|spb-\d{1,3})\.r\d{1,3}"


@dataclass(frozen=True)
class Jdbc:
    """How WSO2 talks to one RDS engine."""

    dialect: str  # the dbscripts file name
    driver: str
    url: str  # with {host}, {port}, {database}; `&amp;` because WSO2 renders it into XML
    validation_query: str
    schema_tool: str | None  # the AL2023 client package the first-boot schema step uses
    # OB 3.0 "Setting up databases": the recommended pool size (maxActive) for the engine.
    pool_max_active: int = 150
    # Oracle: one schema (user) per WSO2 database, each connecting as itself; others: one application user.
    user_per_database: bool = False


@dataclass(frozen=True)
class DatabaseEngine:
    """Everything the toolkit knows about one RDS engine: what config accepts, what RDS is told, how WSO2
    connects. Adding a version is one entry in `versions` (and its end of standard support, if any)."""

    name: str
    default_version: str  # the major WSO2 tested OB 3.0 on
    versions: tuple[str, ...]
    port: int
    minor: str  # a regular expression for what follows the major in a full version
    example: str  # a full version, for messages
    # The DB parameter group family, `{major}` replaced (a format string: SQL Server's is "14.0" for "14.00").
    parameter_group_family: str
    # name, value, apply method: what WSO2 needs of the engine (TLS enforced, its character set, ...).
    parameters: tuple[tuple[str, str, str], ...]
    log_exports: tuple[str, ...]
    license_model: str | None
    iam_authentication: bool
    jdbc: Jdbc
    # End of RDS standard support per major, for the engines RDS Extended Support covers (MySQL and
    # PostgreSQL: CreateDBInstance EngineLifecycleSupport). Empty: the choice does not apply.
    standard_support_ends: Mapping[str, date] = field(default_factory=dict)

    @property
    def lifecycle_choice_applies(self) -> bool:
        return bool(self.standard_support_ends)

    def major_of(self, version: str) -> str | None:
        """The supported major that `version` ("8.0", or a full version such as "8.0.39") belongs to, or
        None: also for a known major with anything but one of RDS's minor versions after it."""
        for major in self.versions:
            if version == major or re.fullmatch(re.escape(major) + self.minor, version):
                return major
        return None

    def family(self, version: str) -> str:
        """The parameter group family of `version` (of the tested major when it names none we know)."""
        return self.parameter_group_family.format(major=self.major_of(version) or self.default_version)


EXTENDED_SUPPORT: EngineLifecycleSupport = "open-source-rds-extended-support"
EXTENDED_SUPPORT_DISABLED: EngineLifecycleSupport = "open-source-rds-extended-support-disabled"

# RDS User Guide, "Supported MySQL major versions on Amazon RDS" and "Release calendars for Amazon RDS
# for PostgreSQL" (end of RDS standard support; read 2026-11-25). Confirm in an account with
# `aws rds describe-db-major-engine-versions --engine mysql|postgres` (SupportedEngineLifecycles).
_MYSQL_STANDARD_SUPPORT_ENDS = {"8.0": date(2026, 7, 31), "8.4": date(2029, 7, 31)}
_POSTGRES_STANDARD_SUPPORT_ENDS = {"13": date(2026, 2, 28), "14": date(2027, 2, 28), "15": date(2028, 2, 29),
                                   "16": date(2029, 2, 28), "17": date(2030, 2, 28)}

_MYSQL_PARAMETERS = (
    ("require_secure_transport", "1", "immediate"),
    # WSO2 creates its MySQL databases and tables with latin1.
    ("character_set_server", "latin1", "immediate"),
    ("collation_server", "latin1_swedish_ci", "immediate"),
    # WSO2's scripts create triggers; with binary logging on (backups) MySQL needs this.
    ("log_bin_trust_function_creators", "1", "immediate"),
    # OB 3.0 "Setting up databases": consent attributes are read with GROUP_CONCAT,
    # which cuts at 1024 characters by default.
    ("group_concat_max_len", "10000", "immediate"),
    ("slow_query_log", "1", "immediate"),
    ("long_query_time", "2", "immediate"),
    # RDS User Guide, "Publishing MySQL logs to Amazon CloudWatch Logs": the slow query
    # log reaches CloudWatch only when written to files.
    ("log_output", "FILE", "immediate"),
)
# PostgreSQL and SQL Server refuse connections without TLS once rds.force_ssl is on (a static parameter).
_FORCE_SSL = (("rds.force_ssl", "1", "pending-reboot"),)
_ORACLE_LOGS = ("alert", "audit", "listener", "trace")

# IS 5.11 ships H2 only (product-is v5.11.0 LICENSE.txt lists h2-1.4.199 and no other JDBC
# driver), so every engine's driver comes from `database.jdbc_driver_s3_uri`. MySQL 8 needs
# Connector/J 8.x, whose class is com.mysql.cj.jdbc.Driver.
_MYSQL_JDBC = Jdbc("mysql", "com.mysql.cj.jdbc.Driver",
                   "jdbc:mysql://{host}:{port}/{database}?sslMode=VERIFY_IDENTITY&amp;autoReconnect=true",
                   "SELECT 1", "mariadb105")
_POSTGRES_JDBC = Jdbc("postgresql", "org.postgresql.Driver",
                      "jdbc:postgresql://{host}:{port}/{database}?sslmode=verify-full"
                      "&amp;sslrootcert=/opt/obiam/rds-ca-bundle.pem",
                      "SELECT 1", "postgresql15")
_SQLSERVER_JDBC = Jdbc("mssql", "com.microsoft.sqlserver.jdbc.SQLServerDriver",
                       "jdbc:sqlserver://{host}:{port};databaseName={database};encrypt=true;"
                       "trustServerCertificate=false", "SELECT 1", None, pool_max_active=300)
# Oracle: one schema (user) per WSO2 database in the RDS instance's ORCL service, as OB's guide
# creates them; the API Manager and IS scripts would otherwise collide in one schema.
_ORACLE_JDBC = Jdbc("oracle", "oracle.jdbc.OracleDriver", "jdbc:oracle:thin:@//{host}:{port}/ORCL",
                    "SELECT 1 FROM DUAL", None, user_per_database=True)


def _sqlserver(name: str) -> DatabaseEngine:
    # SQL Server Multi-AZ needs Standard or Enterprise edition; 14.00 is SQL Server 2017.
    return DatabaseEngine(name, "14.00", ("14.00", "15.00", "16.00"), 1433, _SQLSERVER_MINOR, "15.00.4415.2.v1",
                          name + "-{major:.4}", _FORCE_SSL, ("error", "agent"), "license-included", False,
                          _SQLSERVER_JDBC)


def _oracle(name: str, license_model: str) -> DatabaseEngine:
    return DatabaseEngine(name, "19", ("19", "21"), 1521, _ORACLE_MINOR, "19.0.0.0.ru-2025-01.rur-2025-01.r1",
                          name + "-{major}", (), _ORACLE_LOGS, license_model, False, _ORACLE_JDBC)


ENGINES: dict[str, DatabaseEngine] = {
    "mysql": DatabaseEngine("mysql", "8.0", ("8.0", "8.4"), 3306, _MINOR, "8.0.39", "mysql{major}",
                            _MYSQL_PARAMETERS, ("error", "slowquery"), None, True, _MYSQL_JDBC,
                            _MYSQL_STANDARD_SUPPORT_ENDS),
    "postgres": DatabaseEngine("postgres", "13", ("13", "14", "15", "16", "17"), 5432, _MINOR, "13.16",
                               "postgres{major}", _FORCE_SSL, ("postgresql", "upgrade"), None, True, _POSTGRES_JDBC,
                               _POSTGRES_STANDARD_SUPPORT_ENDS),
    "sqlserver-se": _sqlserver("sqlserver-se"),
    "sqlserver-ee": _sqlserver("sqlserver-ee"),
    "oracle-se2": _oracle("oracle-se2", "license-included"),
    "oracle-ee": _oracle("oracle-ee", "bring-your-own-license"),
}


def today() -> date:
    """The date support windows are judged on (a function, so tests can move it)."""
    return datetime.now(UTC).date()


def major_of(engine: DatabaseEngine, version: str) -> str | None:
    """`engine.major_of(version)`, for callers that hold the engine apart (obiam/ops/preflight.py)."""
    return engine.major_of(version)
