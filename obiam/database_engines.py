"""The RDS engines the toolkit allows for the WSO2 OB IAM databases.

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

# What follows the major in a full RDS engine version, per engine family, as RDS names them:
# MySQL 8.0.39 and PostgreSQL 13.16 (RDS User Guide, "Amazon RDS for MySQL/PostgreSQL versions"),
# SQL Server 15.00.4415.2.v1 ("Microsoft SQL Server versions on Amazon RDS"), Oracle
# 19.0.0.0.ru-2025-01.rur-2025-01.r1 or its spatial patch bundle 19.0.0.0.ru-2025-01.spb-1.r1
# (RDS for Oracle Release Notes, "Amazon RDS for Oracle Database 19c").
_MINOR = r"\.\d{1,4}"
_SQLSERVER_MINOR = r"\.\d{1,5}\.\d{1,3}\.v\d{1,3}"
_ORACLE_MINOR = r"\.0\.0\.0\.ru-\d{4}-\d{2}\.(rur-\d{4}-\d{2}|spb-\d{1,3})\.r\d{1,3}"


@dataclass(frozen=True)
class DatabaseEngine:
    name: str
    default_version: str
    versions: tuple[str, ...]
    port: int
    minor: str  # a regular expression for what follows the major in a full version
    example: str  # a full version, for messages
    # End of RDS standard support per major, for the engines RDS Extended Support covers (MySQL and
    # PostgreSQL: CreateDBInstance EngineLifecycleSupport). Empty: the choice does not apply.
    standard_support_ends: Mapping[str, date] = field(default_factory=dict)

    @property
    def lifecycle_choice_applies(self) -> bool:
        return bool(self.standard_support_ends)


EXTENDED_SUPPORT = "open-source-rds-extended-support"
EXTENDED_SUPPORT_DISABLED = "open-source-rds-extended-support-disabled"

# RDS User Guide, "Supported MySQL major versions on Amazon RDS" and "Release calendars for Amazon RDS
# for PostgreSQL" (end of RDS standard support; read 2026-11-25). Confirm in an account with
# `aws rds describe-db-major-engine-versions --engine mysql|postgres` (SupportedEngineLifecycles).
_MYSQL_STANDARD_SUPPORT_ENDS = {"8.0": date(2026, 7, 31), "8.4": date(2029, 7, 31)}
_POSTGRES_STANDARD_SUPPORT_ENDS = {"13": date(2026, 2, 28), "14": date(2027, 2, 28), "15": date(2028, 2, 29),
                                   "16": date(2029, 2, 28), "17": date(2030, 2, 28)}

ENGINES: dict[str, DatabaseEngine] = {
    "mysql": DatabaseEngine("mysql", "8.0", ("8.0", "8.4"), 3306, _MINOR, "8.0.39", _MYSQL_STANDARD_SUPPORT_ENDS),
    "postgres": DatabaseEngine("postgres", "13", ("13", "14", "15", "16", "17"), 5432, _MINOR, "13.16",
                               _POSTGRES_STANDARD_SUPPORT_ENDS),
    # SQL Server Multi-AZ needs Standard or Enterprise edition; 14.00 is SQL Server 2017.
    "sqlserver-se": DatabaseEngine("sqlserver-se", "14.00", ("14.00", "15.00", "16.00"), 1433, _SQLSERVER_MINOR,
                                   "15.00.4415.2.v1"),
    "sqlserver-ee": DatabaseEngine("sqlserver-ee", "14.00", ("14.00", "15.00", "16.00"), 1433, _SQLSERVER_MINOR,
                                   "15.00.4415.2.v1"),
    "oracle-se2": DatabaseEngine("oracle-se2", "19", ("19", "21"), 1521, _ORACLE_MINOR,
                                 "19.0.0.0.ru-2025-01.rur-2025-01.r1"),
    "oracle-ee": DatabaseEngine("oracle-ee", "19", ("19", "21"), 1521, _ORACLE_MINOR,
                                "19.0.0.0.ru-2025-01.rur-2025-01.r1"),
}


def today() -> date:
    """The date support windows are judged on (a function, so tests can move it)."""
    return datetime.now(UTC).date()


def major_of(engine: DatabaseEngine, version: str) -> str | None:
    """The supported major that `version` ("8.0", or a full version such as "8.0.39") belongs to, or
    None: also for a known major with anything but one of RDS's minor versions after it."""
    for major in engine.versions:
        if version == major or re.fullmatch(re.escape(major) + engine.minor, version):
            return major
    return None
