"""OBIAM_EPHEMERAL_BRANCH and OBIAM_EPHEMERAL_CREATED_AT of every shape: accepted, or one line naming
the variable, its value (cut short) and what is allowed (issue 13, item 2); a per-branch stack never
takes an environment file's name (item 3)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import ROOT
from obiam import ephemeral
from obiam.environments import ConfigError, load_all
from obiam.naming import tag_value_problem
from stacks.app import load_selection

BRANCH = ephemeral.BRANCH_VARIABLE
CREATED = ephemeral.CREATED_AT_VARIABLE
ALLOWED_TIMES = ("allowed: an ISO 8601 timestamp such as 2026-11-24T10:00:00Z, or Unix seconds, from "
                 "1970-01-01T00:00:00Z to 9999-12-01T00:00:00Z")


def problems(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        ephemeral.variables(environ)
    return caught.value.problems


@pytest.mark.parametrize(("value", "expected"), [
    (" ", f"{CREATED} = ' ': blank; {ALLOWED_TIMES}"),
    ("yesterday", f"{CREATED} = 'yesterday': {ALLOWED_TIMES}"),
    ("2026-13-01T00:00:00Z", f"{CREATED} = '2026-13-01T00:00:00Z': {ALLOWED_TIMES}"),
    ("9" * 5000, f"{CREATED} = '{'9' * 76}...: out of range; {ALLOWED_TIMES}"),
    ("999999999999", f"{CREATED} = '999999999999': out of range; {ALLOWED_TIMES}"),
    ("9999-12-31T23:59:59Z", f"{CREATED} = '9999-12-31T23:59:59Z': out of range; {ALLOWED_TIMES}"),
    ("0001-01-01T00:00:00+01:00", f"{CREATED} = '0001-01-01T00:00:00+01:00': out of range; {ALLOWED_TIMES}"),
    ("1969-12-31T23:59:59Z", f"{CREATED} = '1969-12-31T23:59:59Z': out of range; {ALLOWED_TIMES}"),
    ("-1", f"{CREATED} = '-1': {ALLOWED_TIMES}"),
    ("\u0661\u0662\u0663", f"{CREATED} = '\u0661\u0662\u0663': not ASCII; {ALLOWED_TIMES}"),
], ids=["blank", "words", "month-13", "5000-digits", "year-33658", "expiry-after-9999", "year-0", "before-1970",
        "negative", "arabic-indic-digits"])
def test_a_creation_time_out_of_shape_or_range_is_refused(value: str, expected: str) -> None:
    assert problems({BRANCH: "pr-1", CREATED: value}) == [expected]


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-11-20T09:30:00Z", datetime(2026, 11, 20, 9, 30, tzinfo=UTC)),
    ("2026-11-20T10:30:00+01:00", datetime(2026, 11, 20, 9, 30, tzinfo=UTC)),
    ("1795340000", datetime(2026, 11, 22, 9, 33, 20, tzinfo=UTC)),
    ("0", datetime(1970, 1, 1, tzinfo=UTC)),
])
def test_a_creation_time_in_range_is_read_as_utc(value: str, expected: datetime) -> None:
    assert ephemeral.variables({BRANCH: "pr-1", CREATED: value}) == ("pr-1", expected)


def test_empty_variables_mean_unset() -> None:
    assert ephemeral.variables({BRANCH: "", CREATED: ""}) == (None, None)


TAG_RULE = "allowed: at most 256 letters, digits, spaces and _ . : / = + - @, not starting with aws:"


@pytest.mark.parametrize(("branch", "expected"), [
    ("   ", f"{BRANCH} = '   ': blank; allowed: a branch or pull-request name such as pr-42 or feature/login"),
    ("fix/#12", f"{BRANCH} = 'fix/#12': it becomes the Branch tag, and AWS refuses a tag value with character '#' "
                f"(U+0023); {TAG_RULE} (the CI workflow passes pr-<number>)"),
    ("a" * 257, f"{BRANCH} = '{'a' * 76}...: it becomes the Branch tag, and AWS refuses a tag value with 257 "
                f"characters; {TAG_RULE} (the CI workflow passes pr-<number>)"),
    ("x\udcff", f"{BRANCH} = 'x\\udcff': it becomes the Branch tag, and AWS refuses a tag value with character "
                f"'\\udcff' (U+DCFF); {TAG_RULE} (the CI workflow passes pr-<number>)"),
], ids=["blank", "hash-sign", "257-characters", "not-utf8-in-the-environment"])
def test_a_branch_that_cannot_be_the_branch_tag_is_refused_not_rewritten(branch: str, expected: str) -> None:
    """Refused rather than sanitized: `obiam reap` rebuilds the stack from the Branch tag, so the tag
    must be the branch itself."""
    assert problems({BRANCH: branch}) == [expected]


@pytest.mark.parametrize("branch", ["pr-42", "feature/JIRA-123-login-page", "feature/\u00fcber-caf\u00e9",
                                    "release 2026.11", "a" * 256])
def test_a_branch_that_is_a_valid_tag_value_is_accepted(branch: str) -> None:
    assert ephemeral.variables({BRANCH: branch}) == (branch, None)


def test_the_tag_value_rule_is_aws_s() -> None:
    """EFS API Reference, "Tag" data type: Value pattern ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$, at most
    256 characters; Tagging AWS Resources, "Tag naming limits and requirements": aws: is reserved."""
    assert tag_value_problem("") is None
    assert tag_value_problem("\u00c9quipe 7 \u00b2 \u00a0 _.:/=+-@") is None  # L, N (No), Zs (NBSP), symbols
    assert tag_value_problem("x" * 256) is None
    assert tag_value_problem("x" * 257) == "257 characters"
    for refused in ("a,b", "a;b", "a'b", "a\tb", "a\u200bb", "a#b", "a*b"):
        assert tag_value_problem(refused) is not None, refused
    assert tag_value_problem("AWS:x") == "the aws: prefix, which AWS keeps for itself"


def test_a_branch_stack_named_like_an_environment_file_is_refused(tmp_path: Path) -> None:
    envs = tmp_path / "environments"
    envs.mkdir()
    shutil.copy(ROOT / "environments" / "ephemeral.yaml", envs / "ephemeral.yaml")
    shutil.copy(ROOT / "environments" / "ephemeral-base.yaml", envs / "ephemeral-base.yaml")
    taken = ephemeral.stack_name("pr-7")
    shutil.copy(ROOT / "environments" / "dev.yaml", envs / f"{taken}.yaml")
    assert {e.name for e in load_all(envs, tmp_path)} == {"ephemeral", taken}
    with pytest.raises(ConfigError) as caught:
        load_selection(envs, tmp_path / "cdktf.out", [], {BRANCH: "pr-7"})
    assert caught.value.problems == [
        f"{BRANCH} = 'pr-7': its stack name {taken} is also the stack of {envs}/{taken}.yaml; allowed: a "
        "branch whose stack name (obiam ephemeral name --branch) no environment file has"]
    assert not (tmp_path / "cdktf.out").exists()


def test_a_stack_name_is_made_for_any_non_blank_branch_even_one_with_surrogates() -> None:
    assert ephemeral.stack_name("x\udcff").startswith("eph-x-")
