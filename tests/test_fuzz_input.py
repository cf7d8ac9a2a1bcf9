"""Fuzzing the synth entry point (issue 13, item 5): arbitrary bytes, arbitrary YAML trees, broken
YAML text, valid files with random edits, and any OBIAM_EPHEMERAL_* values either load or give one
paragraph (the header and one line per problem, each naming its file or variable), never another
exception, and the output directory is never touched.

In process, the fuzz runs `stacks.app.load_selection` (everything `main.py` does before it builds a
stack: variables, output-directory check, every environment file, selection) and formats errors
with `config_error_report`, what `main` prints before it exits 2. Building stacks is left out: it
loads the AWS provider (seconds per example) and is covered by tests/test_properties.py. A few real
`main.py` runs check the exit code and stderr of representative cases end to end.

Cost (profile ci: derandomized, 100 examples per fuzz test), measured with `pytest --durations` on
the 2-core machine: 2.6 s for the whole module alone, 6-8 s inside `make test`, where the boot
rehearsal shares the cores. HYPOTHESIS_PROFILE=long runs 5,000 random examples per fuzz test
(about 1.5 minutes).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from configs import MINIMAL, with_values
from hypothesis import given
from hypothesis import strategies as st

from conftest import ROOT
from obiam import ephemeral
from obiam.environments import ConfigError, Environment
from stacks.app import OUTPUT_MARKER, config_error_report, load_selection

MAX_LINE = 1000


class Workspace:
    """An environments directory and an output directory an earlier synth wrote, reused by examples."""

    def __init__(self, base: Path):
        self.environments = base / "environments"
        self.outdir = base / "cdktf.out"
        self.environments.mkdir()
        (self.outdir / "stacks" / "prod").mkdir(parents=True)
        (self.outdir / OUTPUT_MARKER).write_text("earlier synth\n")
        (self.outdir / "stacks" / "prod" / "cdk.tf.json").write_text('{"earlier": true}\n')
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, bytes]:
        return {p.relative_to(self.outdir).as_posix(): p.read_bytes() if p.is_file() else b"<dir>"
                for p in sorted(self.outdir.rglob("*"))}

    def write_only(self, name: str, content: bytes) -> None:
        for entry in self.environments.iterdir():
            entry.unlink()
        (self.environments / name).write_bytes(content)

    def run(self, names: list[str] | None = None, environ: dict[str, str] | None = None) -> list[Environment] | str:
        """What main.py would do up to building stacks: the environments, or the report it prints (exit 2)."""
        try:
            result: list[Environment] | str = load_selection(self.environments, self.outdir, names or [],
                                                             environ or {})
        except ConfigError as error:
            result = config_error_report(error)
            assert_one_paragraph(result, error, (str(self.environments), ephemeral.BRANCH_VARIABLE,
                                                 ephemeral.CREATED_AT_VARIABLE, "unknown environment "))
        assert self.snapshot() == self.before, "the output directory changed"
        return result


def assert_one_paragraph(report: str, error: ConfigError, sources: tuple[str, ...]) -> None:
    """The header, then one non-blank line per problem, each starting with what it is about."""
    lines = report.split("\n")
    assert lines[0] == f"Configuration error ({len(error.problems)} problem(s)); nothing was synthesized:"
    assert len(lines) == len(error.problems) + 1 >= 2, "one line per problem"
    for line in lines[1:]:
        assert line.strip() and line == line.strip(), f"blank or padded line: {line!r}"
        assert len(line) <= MAX_LINE, f"line of {len(line)} characters"
        assert line.startswith(sources), f"names neither a file nor a variable: {line!r}"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    yield Workspace(tmp_path_factory.mktemp("fuzz"))


# --- strategies ----------------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
                    st.sampled_from(["production", "8.0", "s3://b/k.zip", "10.40.0.0/16", "m6i.large", "off"]))
TOP_LEVEL_KEYS = ["tier", "region", "availability_zone_count", "availability_zones", "network", "product", "nodes",
                  "load_balancer", "database", "directory", "tags", "state", "data_protection", "observability",
                  "ephemeral"]
keys = st.one_of(st.sampled_from([*TOP_LEVEL_KEYS, "vpc_cidr", "existing_vpc", "engine_version", "owner", "<<"]),
                 st.text(max_size=12))


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=5),
                     # the same object n times: yaml.safe_dump writes it once with an anchor, then aliases
                     st.builds(lambda value, n: [value] * n, children, st.integers(2, 12)))


trees = st.recursive(scalars, _extend, max_leaves=40)
# YAML text from its grammar's pieces: anchors, aliases, merges, flow and block collections, tags,
# directives, documents, comments, a byte order mark, and plain words.
PIECES = ["<<: ", "*a", "&a ", "*b", "&b ", "[", "]", "{", "}", ": ", ":", "- ", "\n", "  ", "? ", "!!str ",
          "!!python/object ", "!x ", "---\n", "...\n", "%YAML 1.1\n", "\t", "# c", "~", "0x1f", "1:2:3",
          "2001-01-01", ".inf", "\ufeff", "'", '"', "|\n", ">\n", ",", "tier", "nodes", "9" * 40, "\\", "\x00", "\x85"]
grammar_soup = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)


def _edit(text: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for position, length, replacement in edits:
        at = position % (len(text) + 1)
        text = text[:at] + replacement + text[at + length:]
    return text


PROD_BYTES = (ROOT / "environments" / "prod.yaml").read_bytes()
edited_prod = st.lists(st.tuples(st.integers(0, len(PROD_BYTES)), st.integers(0, 8), st.binary(max_size=6)),
                       min_size=1, max_size=4).map(lambda edits: _edit(PROD_BYTES, edits))


# --- in process ----------------------------------------------------------------------------------

@given(content=st.binary(max_size=600))
def test_arbitrary_bytes(workspace: Workspace, content: bytes) -> None:
    workspace.write_only("prod.yaml", content)
    workspace.run()


@given(tree=trees)
def test_arbitrary_yaml_trees(workspace: Workspace, tree: Any) -> None:
    workspace.write_only("prod.yaml", yaml.safe_dump(tree, allow_unicode=True).encode())
    workspace.run()


@given(sections=st.dictionaries(st.sampled_from(TOP_LEVEL_KEYS), trees, max_size=3))
def test_arbitrary_yaml_trees_inside_a_valid_file(workspace: Workspace, sections: dict[str, Any]) -> None:
    workspace.write_only("prod.yaml", yaml.safe_dump(with_values(sections), allow_unicode=True).encode())
    workspace.run()


@given(text=grammar_soup)
def test_broken_yaml_text(workspace: Workspace, text: str) -> None:
    workspace.write_only("prod.yaml", text.encode("utf-8", "surrogatepass"))
    workspace.run()


@given(content=edited_prod)
def test_a_valid_file_with_random_edits(workspace: Workspace, content: bytes) -> None:
    workspace.write_only("prod.yaml", content)
    workspace.run()


@given(branch=st.text(max_size=300), created=st.one_of(st.text(max_size=40), st.integers().map(str)),
       names=st.lists(st.text(max_size=12), max_size=2))
def test_arbitrary_ephemeral_variables_and_names(workspace: Workspace, branch: str, created: str,
                                                 names: list[str]) -> None:
    workspace.write_only("ephemeral.yaml", (ROOT / "environments" / "ephemeral.yaml").read_bytes())
    workspace.run(names, {ephemeral.BRANCH_VARIABLE: branch, ephemeral.CREATED_AT_VARIABLE: created})


def test_the_fuzz_fails_on_a_second_paragraph_or_an_unnamed_line() -> None:
    """The paragraph check above can fail: a blank line or a line naming nothing is caught."""
    for problems in (["environments/prod.yaml: a", ""], ["a problem that names no file"]):
        error = ConfigError(problems)
        with pytest.raises(AssertionError):
            assert_one_paragraph(config_error_report(error), error, ("environments/",))


def test_the_valid_file_and_the_template_load(workspace: Workspace) -> None:
    """The fuzz starts from files that load, so its examples are one edit away from valid ones."""
    workspace.write_only("prod.yaml", yaml.safe_dump(MINIMAL).encode())
    assert [e.name for e in workspace.run()] == ["prod"]  # type: ignore[union-attr]
    workspace.write_only("prod.yaml", PROD_BYTES)
    assert [e.name for e in workspace.run()] == ["prod"]  # type: ignore[union-attr]


# --- main.py end to end --------------------------------------------------------------------------

BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True))
CASES: dict[str, tuple[dict[str, bytes], dict[str, str]]] = {
    "alias-bomb": ({"prod.yaml": BILLION_LAUGHS.encode()}, {}),
    "random-bytes": ({"prod.yaml": random.Random(13).randbytes(400)}, {}),  # noqa: S311 - test data, not a secret
    "branch-and-time": ({"ephemeral.yaml": (ROOT / "environments" / "ephemeral.yaml").read_bytes()},
                        {ephemeral.BRANCH_VARIABLE: "fix/#1", ephemeral.CREATED_AT_VARIABLE: "9" * 5000}),
    "links": ({}, {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_main_exits_2_with_one_paragraph_and_leaves_the_output_alone(tmp_path: Path, case: str) -> None:
    files, variables = CASES[case]
    workspace = Workspace(tmp_path)
    for name, content in files.items():
        (workspace.environments / name).write_bytes(content)
    if case == "links":
        (workspace.environments / "prod.yaml").symlink_to("prod.yaml")
        (workspace.environments / "dev.yaml").symlink_to("missing.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBIAM_EPHEMERAL")} | variables
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "--environments-dir", str(workspace.environments),
                             "--outdir", str(workspace.outdir)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, check=False, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.rstrip("\n").split("\n")
    assert lines[0].startswith("Configuration error (") and all(line.strip() for line in lines), result.stderr
    assert len(lines) == 1 + int(lines[0].split("(")[1].split(" ")[0])
    assert workspace.snapshot() == workspace.before
