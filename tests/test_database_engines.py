"""One engine object per RDS engine carries every fact about it; adding a version touches one place.

The facts: RDS User Guide, "Working with DB parameter groups" (a family is the engine and its major,
e.g. mysql8.0, postgres13, sqlserver-se-15.0, oracle-ee-19), "Supported MySQL major versions",
"Release calendars for Amazon RDS for PostgreSQL"; WSO2 OB 3.0 "Tested DBMSs" (the tested majors).

Cost: pure Python, no synthesis; ~0.1 s.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from conftest import ROOT
from obiam import wso2
from obiam.database_engines import ENGINES

ENGINE_NAMES = set(ENGINES)
# Where a branch on the engine's name may live: the engine table itself.
ENGINE_TABLE = ROOT / "obiam" / "database_engines.py"


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_every_supported_version_has_the_parameter_group_family_rds_names(name: str) -> None:
    engine = ENGINES[name]
    assert engine.default_version in engine.versions, "WSO2's tested major is one the config accepts"
    for version in engine.versions:
        family = engine.family(version)
        # SQL Server families carry the major with one decimal (sqlserver-se-15.0 for 15.00).
        expected = f"{name}-{version[:4]}" if name.startswith("sqlserver") else (
            f"{name}-{version}" if name.startswith("oracle") else f"{name}{version}")
        assert family == expected


def test_a_new_version_is_one_entry_in_the_engine() -> None:
    # What a newcomer does to allow MySQL 9.1: add it to `versions` (and its end of standard support).
    mysql = dataclasses.replace(ENGINES["mysql"], versions=(*ENGINES["mysql"].versions, "9.1"))
    assert mysql.major_of("9.1.2") == "9.1"
    assert mysql.family("9.1.2") == "mysql9.1"
    assert ENGINES["mysql"].major_of("9.1") is None, "the table itself is unchanged"


def test_full_versions_belong_to_their_major_only_with_a_minor_rds_names() -> None:
    assert ENGINES["mysql"].major_of("8.0.39") == "8.0"
    assert ENGINES["postgres"].major_of("13.16") == "13"
    assert ENGINES["sqlserver-se"].major_of("15.00.4415.2.v1") == "15.00"
    assert ENGINES["oracle-ee"].major_of("19.0.0.0.ru-2025-01.rur-2025-01.r1") == "19"
    assert ENGINES["mysql"].major_of("8.0.x") is None
    assert ENGINES["postgres"].major_of("12") is None


def test_the_lifecycle_choice_applies_to_the_engines_rds_extended_support_covers() -> None:
    assert {n for n, e in ENGINES.items() if e.lifecycle_choice_applies} == {"mysql", "postgres"}
    for engine in ENGINES.values():
        assert set(engine.standard_support_ends) <= set(engine.versions)


def _engine_name_branches(path: Path) -> list[str]:
    """`x == "mysql"`, `x.startswith("oracle")`, `{"postgres": ...}[x]`: code that decides by engine name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                node.value in ENGINE_NAMES or node.value in ("sqlserver", "oracle")):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    return found


def test_no_module_but_the_engine_table_decides_by_engine_name() -> None:
    sources = [p for top in ("obiam", "stacks", "constructs/wso2_on_aws") for p in sorted((ROOT / top).rglob("*.py"))]
    found = [hit for path in sources if path != ENGINE_TABLE for hit in _engine_name_branches(path)]
    # Allowed: config's default engine; the node-side contract check, which reads the JDBC URL scheme
    # WSO2 wrote (another vocabulary: jdbc:mysql, jdbc:sqlserver) and accepts legacy driver names too;
    # and wso2.py's column alterations, keyed by WSO2's dbscripts dialect (mysql, postgresql, mssql,
    # oracle: a fact of the product version's scripts, which the engine names by `jdbc.dialect`);
    # and the branch-databases function's list of the server's own schemas (`mysql` the system schema).
    allowed = ("obiam/config.py", "obiam/node_contract.py", "obiam/wso2.py", "obiam/branch_databases_function.py")
    assert [hit for hit in found if not hit.startswith(allowed)] == []
    dialects = {engine.jdbc.dialect for engine in ENGINES.values()}
    assert {dialect for dialect, _ in wso2.APIMGT_ALTERATIONS} == dialects
