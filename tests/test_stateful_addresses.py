"""Stateful resources keep their Terraform addresses: a moved address is a replaced resource.

Terraform identifies a resource by its address (`<type>.<name>`); a refactor that changes the
name cdktf derives from the construct path plans a destroy and a create, and for a database, a
file system, a key, a secret or a directory that is data lost (Terraform, "Refactoring" and
"moved block"). tests/fixtures/stateful_addresses.json is the snapshot of every stateful
resource's address (obiam/review/stateful.py's list) in every stack the suite synthesizes: the
repository's environments and branch base, the per-branch one and environments/examples/. Any
move fails here; a deliberate one updates the snapshot (`OBIAM_UPDATE_ADDRESSES=1`, which
rewrites the file and still fails, so the change is reviewed in the diff) and adds a `moved`
block or `move_to`.

Cost: reads the session's synthesized JSON (`synth`, `variants`); ~0.1 s of its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from conftest import Synth
from obiam.review.stateful import is_stateful

pytestmark = pytest.mark.synth

SNAPSHOT = Path(__file__).parent / "fixtures" / "stateful_addresses.json"


def stateful_addresses(stack: dict[str, Any]) -> list[str]:
    return sorted(f"{resource_type}.{name}" for resource_type, by_name in stack.get("resource", {}).items()
                  if is_stateful(resource_type) for name in by_name)


@pytest.fixture(scope="module")
def current(synth: Synth, variants: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    stacks = {**{name: synth.stack(name) for name in [*synth.environments, *synth.bases]}, **variants}
    return {name: stateful_addresses(stack) for name, stack in sorted(stacks.items())}


def test_no_stateful_resource_moves_in_any_environment(current: dict[str, list[str]]) -> None:
    if os.environ.get("OBIAM_UPDATE_ADDRESSES"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
        pytest.fail(f"{SNAPSHOT} rewritten: review its diff (every removed line is a resource Terraform destroys)")
    expected = json.loads(SNAPSHOT.read_text())
    assert sorted(current) == sorted(expected), "the environments synthesized are not the snapshot's"
    for name, addresses in expected.items():
        gone = sorted(set(addresses) - set(current[name]))
        added = sorted(set(current[name]) - set(addresses))
        assert not gone and not added, (
            f"{name}: stateful addresses moved; destroyed: {gone}, created: {added}")


def test_the_snapshot_covers_every_stateful_kind_the_toolkit_builds(current: dict[str, list[str]]) -> None:
    # The database, its file system, keys, secrets, the directory and log groups are in the snapshot
    # of production, so the guard above is about the data that matters, not an empty list.
    kinds = {address.split(".")[0] for address in current["prod"]}
    assert {"aws_db_instance", "aws_efs_file_system", "aws_kms_key", "aws_secretsmanager_secret",
            "aws_directory_service_directory", "aws_cloudwatch_log_group", "aws_backup_vault"} <= kinds
