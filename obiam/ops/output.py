"""Check results as a rich table on a terminal, plain lines otherwise, or JSON for machines."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def all_passed(checks: Sequence[Check]) -> bool:
    return bool(checks) and all(check.passed for check in checks)


def print_checks(title: str, checks: Sequence[Check], *, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps({"title": title, "passed": all_passed(checks), "checks": [asdict(c) for c in checks]},
                         indent=2))
        return
    console = Console()
    if console.is_terminal:
        table = Table(title=title, title_justify="left")
        for column in ("", "check", "detail"):
            table.add_column(column)
        for check in checks:
            table.add_row("[green]PASS[/]" if check.passed else "[red]FAIL[/]", check.name, check.detail)
        console.print(table)
    else:
        print(title)
        for check in checks:
            print(f"{'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")
    failed = sum(not c.passed for c in checks)
    print(f"{len(checks) - failed} passed, {failed} failed", file=sys.stdout)
