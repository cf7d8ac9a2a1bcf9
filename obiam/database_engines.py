"""The RDS engines the toolkit allows for the WSO2 OB IAM databases.

WSO2 lists the DBMSs it tests OB 3.0 against: MySQL 8.0, PostgreSQL 13,
SQL Server 2017 and Oracle 19c ("Tested DBMSs"). Each entry maps that DBMS onto
the RDS engine names that can run Multi-AZ, which the WSO2 HA pattern requires
of the RDBMS. `default_version` is the major WSO2 tested; `versions` adds the later
majors RDS supports, which the config accepts (WSO2 has not tested them: the README
says so).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatabaseEngine:
    name: str
    default_version: str
    versions: tuple[str, ...]
    port: int


ENGINES: dict[str, DatabaseEngine] = {
    "mysql": DatabaseEngine("mysql", "8.0", ("8.0", "8.4"), 3306),
    "postgres": DatabaseEngine("postgres", "13", ("13", "14", "15", "16", "17"), 5432),
    # SQL Server Multi-AZ needs Standard or Enterprise edition; 14.00 is SQL Server 2017.
    "sqlserver-se": DatabaseEngine("sqlserver-se", "14.00", ("14.00", "15.00", "16.00"), 1433),
    "sqlserver-ee": DatabaseEngine("sqlserver-ee", "14.00", ("14.00", "15.00", "16.00"), 1433),
    "oracle-se2": DatabaseEngine("oracle-se2", "19", ("19", "21"), 1521),
    "oracle-ee": DatabaseEngine("oracle-ee", "19", ("19", "21"), 1521),
}


def major_of(engine: DatabaseEngine, version: str) -> str | None:
    """The supported major that `version` ("8.0" or "8.0.39") belongs to, or None."""
    for major in engine.versions:
        if version == major or version.startswith(major + "."):
            return major
    return None
