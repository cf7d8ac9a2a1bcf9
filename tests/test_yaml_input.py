"""Whatever bytes an environment file holds, loading it ends quickly with the file's config or one
line per problem naming the file (and the field or line), never a traceback or a hang (issue 13,
items 2 and 4)."""

from __future__ import annotations

import copy
import os
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from configs import MINIMAL

from obiam import safe_yaml
from obiam.environments import ConfigError, load_all, load_environment
from obiam.safe_yaml import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES

BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
tier: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def problems_of(directory: Path, name: str, content: str | bytes) -> list[str]:
    path = directory / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(ConfigError) as caught:
        load_environment(path, directory)
    return caught.value.problems


def only_problem(directory: Path, content: str | bytes, name: str = "prod.yaml") -> str:
    found = problems_of(directory, name, content)
    assert len(found) == 1, found
    assert "\n" not in found[0]
    return found[0]


def valid_text(*, without: str | None = None) -> str:
    return yaml.safe_dump({k: v for k, v in copy.deepcopy(MINIMAL).items() if k != without})


PINNED_IMAGE = "ami: {id: ami-0e5df6fd7455a69b3}"


# --- item 2: no traceback, no hang ---------------------------------------------------------------

def test_an_alias_bomb_is_refused_at_its_anchor_in_bounded_time_and_memory(tmp_path: Path) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    problem = only_problem(tmp_path, BILLION_LAUGHS)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert problem == (f"prod.yaml: e: expands to more than {MAX_VALUES} values through aliases (&anchor / *alias); "
                       f"allowed: at most {MAX_VALUES}")
    assert elapsed < 2, f"took {elapsed:.1f} s"
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_an_alias_that_contains_itself_is_refused(tmp_path: Path) -> None:
    assert only_problem(tmp_path, "tier: &loop [1, *loop]\n").startswith(
        "prod.yaml: tier[1]: an alias (*name) refers to a value that contains it")


@pytest.mark.parametrize("text", ["tier: " + "[" * 100_000, "tier: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)],
                         ids=["unclosed-100000", "closed-one-too-deep"])
def test_deep_nesting_is_refused(tmp_path: Path, text: str) -> None:
    problem = only_problem(tmp_path, text)
    assert problem.startswith("prod.yaml: ") and f"nested deeper than {MAX_DEPTH} levels" in problem, problem


@pytest.mark.parametrize(("number", "shown"), [("9" * 5000, "'99999999999999999999..."),
                                               ("0x" + "f" * 5000, "'0xffffffffffffffffff...")],
                         ids=["decimal-5000-digits", "hex-5000-digits"])
def test_a_huge_integer_names_its_field_and_is_cut_short(tmp_path: Path, number: str, shown: str) -> None:
    problem = only_problem(tmp_path, valid_text(without="nodes") + f"nodes: {{{PINNED_IMAGE}, min_size: {number}}}\n")
    assert problem.startswith(f"prod.yaml: nodes.min_size = {shown} ({len(number)} characters): allowed: numbers of "
                              "at most 32 characters"), problem


def test_a_large_integer_within_the_limit_is_reported_by_the_model(tmp_path: Path) -> None:
    found = problems_of(tmp_path, "prod.yaml", valid_text(without="nodes")
                        + f"nodes: {{{PINNED_IMAGE}, min_size: 99999999999999999999999999999}}\n")
    assert found == ["prod.yaml: nodes.min_size = 99999999999999999999999999999: Input should be less than or equal "
                     "to 50"]


@pytest.mark.parametrize(("text", "expected"), [
    ("? [a, b]\n: 1\n", "prod.yaml: (top level): line 1, column 3: a list used as a key; allowed: keys that are "
                        "names (text)"),
    ("tags: {? {owner: x}: 1}\n", "prod.yaml: tags: line 1, column 10: a mapping used as a key; allowed: keys that "
                                  "are names (text)"),
    ("tags:\n  extra:\n    8.0: x\n", "prod.yaml: tags.extra: line 3, column 5: key '8.0' is read by YAML as a "
                                      "number; allowed: keys that are names (text): quote it, e.g. \"8.0\""),
    ("~: 1\n", "prod.yaml: (top level): line 1, column 1: key '~' is read by YAML as null; allowed: keys that are "
               "names (text): quote it"),
], ids=["list-key", "mapping-key", "number-key", "null-key"])
def test_keys_must_be_text(tmp_path: Path, text: str, expected: str) -> None:
    assert only_problem(tmp_path, text).startswith(expected)


def test_a_value_in_a_message_is_cut_short_without_printing_it_whole(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, valid_text() + "tier: " + "x" * 200_000 + "\n")
    assert problem.startswith("prod.yaml: tier = 'xxxxxxxxxx")
    assert len(problem) < 300


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, "# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    assert problem == "prod.yaml: is larger than 256 KiB; allowed: at most 256 KiB (an environment file is a few KiB)"


def test_a_control_character_names_its_line(tmp_path: Path) -> None:
    assert only_problem(tmp_path, "tier: production\nregion: eu\x07west-2\n") == (
        "prod.yaml: not valid YAML: line 2, column 11: character #x0007 is not allowed; allowed: printable "
        "characters, tabs and line breaks")


def test_more_than_one_document_is_one_problem(tmp_path: Path) -> None:
    assert only_problem(tmp_path, "tier: production\n---\ntier: staging\n").startswith(
        "prod.yaml: not valid YAML: line 2, column 1: expected a single document in the stream")


def test_a_python_tag_is_refused(tmp_path: Path) -> None:
    assert only_problem(tmp_path, "tier: !!python/object/apply:os.system [true]\n").startswith(
        "prod.yaml: not valid YAML: line 1, column 7: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'")


def test_a_list_of_thousands_of_wrong_values_is_reported_by_its_first_problems(tmp_path: Path) -> None:
    found = problems_of(tmp_path, "prod.yaml", valid_text() + "availability_zones: [" + "1, " * 5000 + "1]\n")
    assert len(found) == 25, "24 problems and a count of the rest"
    assert found[-1] == "prod.yaml: ... and 4977 more problems"


# --- encodings: UTF-8 only; a byte order mark is accepted --------------------------------------

def test_a_file_that_is_not_utf8_names_the_line_and_byte(tmp_path: Path) -> None:
    latin1 = (valid_text() + "# owner: M\u00fcller\n").encode("latin-1")
    line = latin1.count(b"\n")
    assert only_problem(tmp_path, latin1) == (
        f"prod.yaml: is not UTF-8: line {line}, byte 11 is 0xfc; allowed: UTF-8 text, with or without a byte order "
        "mark: save the file as UTF-8")


def test_utf16_is_refused_by_its_byte_order_mark(tmp_path: Path) -> None:
    assert only_problem(tmp_path, valid_text().encode("utf-16")).startswith(
        "prod.yaml: is UTF-16 or UTF-32 (its byte order mark says so); allowed: UTF-8 text")


def test_utf8_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Decision (issue 13): accepted. YAML 1.2 section 5.2 allows a byte order mark at the start of a
    stream, and Windows editors write one; the mark is not part of the first key."""
    path = tmp_path / "prod.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + valid_text().encode())
    assert load_environment(path, tmp_path).config.tier == "production"


# --- the environments directory: every YAML-looking entry is read or reported ------------------

def test_links_directories_fifos_and_other_suffixes_are_reported_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "prod.yaml").write_text(valid_text())
    (tmp_path / "dangling.yaml").symlink_to("gone.yaml")
    (tmp_path / "loop.yaml").symlink_to("loop.yaml")
    (tmp_path / "folder.yaml").mkdir()
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "staging.yml").write_text(valid_text())
    (tmp_path / "dev.YAML").write_text(valid_text())
    (tmp_path / "notes.txt").write_text("not an environment")
    with pytest.raises(ConfigError) as caught:
        load_all(tmp_path, tmp_path)
    assert caught.value.problems == [
        "dangling.yaml: is a symbolic link to 'gone.yaml', which does not exist; allowed: a regular file (or a "
        "symbolic link to one)",
        "dev.YAML: not read: environment files are named <environment>.yaml (make synth and obiam --env read only "
        "those); rename it to 'dev.yaml'",
        "fifo.yaml: is a FIFO, socket or device, not a file; allowed: a regular file (or a symbolic link to one)",
        "folder.yaml: is a directory, not a file; allowed: a regular file (or a symbolic link to one)",
        "loop.yaml: is a symbolic link loop; allowed: a regular file (or a symbolic link to one)",
        "staging.yml: not read: environment files are named <environment>.yaml (make synth and obiam --env read "
        "only those); rename it to 'staging.yaml'",
    ]


def test_a_link_to_a_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "base.yaml").write_text(valid_text())
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "prod.yaml").symlink_to("../shared/base.yaml")
    assert [e.name for e in load_all(tmp_path / "envs", tmp_path)] == ["prod"]


@pytest.mark.parametrize("kind", ["missing", "file", "loop"])
def test_an_environments_directory_that_is_not_one_is_reported(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "envs"
    if kind == "file":
        target.write_text("")
    elif kind == "loop":
        target.symlink_to("envs")
    with pytest.raises(ConfigError) as caught:
        load_all(target, tmp_path)
    expected = {"missing": "envs: no such directory; allowed: a directory of environment files",
                "file": "envs: is a file; allowed: a directory of environment files",
                "loop": "envs: is a symbolic link loop; allowed: a directory of environment files"}[kind]
    assert caught.value.problems == [expected]


# --- item 4: merge keys work, duplicates are still refused -------------------------------------

MERGED = """\
product: &product
  pack_s3_uri: s3://example-bank-wso2/wso2-obiam-3.0.0.zip
  pack_sha256: 3f0c8ad5a0d8e1b2c4f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192
  api_manager: {hostname: apim.bank.example.com}
database: {jdbc_driver_s3_uri: "s3://bank-wso2/cj.jar", engine_lifecycle_support: open-source-rds-extended-support}
load_balancer:
  hostname: iam.bank.example.com
  certificate_arn: arn:aws:acm:eu-west-2:111111111111:certificate/0b7c2d6e-4a1f-4c3e-9d2b-5e6f7a8b9c0d
tags: &tags {owner: identity-platform, cost_center: CC-1}
state: {bucket: example-bank-tfstate}
account: {id: "111111111111"}
backup: {copy_region: eu-west-1}
nodes: {ami: {id: ami-0e5df6fd7455a69b3}}
"""


def test_a_merge_key_brings_in_an_anchored_mapping_and_the_mapping_may_override_it() -> None:
    """YAML merge key type (yaml.org/type/merge.html): keys of the mapping itself win over merged ones."""
    assert safe_yaml.load("base: &base {owner: a, cost_center: CC-1}\nderived: {<<: *base, cost_center: CC-2}\n") == {
        "base": {"owner": "a", "cost_center": "CC-1"}, "derived": {"owner": "a", "cost_center": "CC-2"}}


def test_an_environment_file_may_use_a_merge_key(tmp_path: Path) -> None:
    path = tmp_path / "prod.yaml"
    path.write_text(MERGED.replace("tags: &tags {owner: identity-platform, cost_center: CC-1}",
                                   "tags:\n  <<: {owner: identity-platform, cost_center: CC-1}\n  cost_center: CC-2"))
    tags = load_environment(path, tmp_path).config.tags
    assert (tags.owner, tags.cost_center) == ("identity-platform", "CC-2")


def test_merging_a_list_of_mappings_keeps_the_first_one_s_keys(tmp_path: Path) -> None:
    """YAML merge key type (yaml.org/type/merge.html): "Keys in mapping nodes earlier in the sequence
    override keys specified in later mapping nodes" (PyYAML 6.0.4 alone lets the later one win)."""
    path = tmp_path / "prod.yaml"
    path.write_text(MERGED.replace("tags: &tags {owner: identity-platform, cost_center: CC-1}",
                                   "tags:\n  <<: [{cost_center: CC-7}, {owner: identity-platform, cost_center: CC-1}]"))
    assert load_environment(path, tmp_path).config.tags.cost_center == "CC-7"


@pytest.mark.parametrize(("text", "expected"), [
    ("tags:\n  owner: a\n  owner: b\n", "prod.yaml: not valid YAML: line 11, column 3: duplicate key 'owner' in tags"),
    ("tags:\n  <<: {owner: a}\n  <<: {cost_center: b}\n",
     "prod.yaml: not valid YAML: line 11, column 3: duplicate key '<<' in tags"),
], ids=["spelled-twice", "two-merge-keys"])
def test_duplicate_keys_are_still_refused_with_merge_keys_in_use(tmp_path: Path, text: str, expected: str) -> None:
    assert only_problem(tmp_path, MERGED.replace("tags: &tags {owner: identity-platform, cost_center: CC-1}\n", text)
                        ) == expected
