"""Per-branch environment names: stable, short, valid, and distinct per branch."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from obiam import ephemeral
from obiam.environments import ENVIRONMENT_NAME


@given(st.text(min_size=1, max_size=200).filter(str.strip))
def test_any_branch_gives_a_valid_environment_name(branch: str) -> None:
    name = ephemeral.stack_name(branch)
    assert ENVIRONMENT_NAME.match(name), name
    assert len(name) <= 20
    assert ephemeral.stack_name(branch) == name


def test_branches_sharing_a_prefix_get_different_names() -> None:
    assert ephemeral.stack_name("feature/login-page-a") != ephemeral.stack_name("feature/login-page-b")


def test_name_reads_like_the_branch() -> None:
    assert ephemeral.stack_name("Feature/JIRA-123-login").startswith("eph-feature-j-")


def test_cli_prints_the_name() -> None:
    out = subprocess.run([sys.executable, "-m", "obiam.cli", "ephemeral", "name", "--branch", "pr-42"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == ephemeral.stack_name("pr-42")
