"""One stack per environment, with pinned providers, remote state and default tags, synthesized deterministically."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, SecondCheckout, Synth
from obiam.environments import ConfigError, Environment, load_catalog
from obiam.naming import TOOLKIT_TAGS

pytestmark = pytest.mark.synth


def test_every_environment_has_its_own_stack(synth: Synth) -> None:
    manifest = json.loads((synth.outdir / "manifest.json").read_text())
    assert set(manifest["stacks"]) == set(synth.environments) | set(synth.bases)
    for name in ("prod", "staging", "dev", "ephemeral-base"):
        assert synth.stack(name)["//"]["metadata"]["stackName"] == name


def test_aws_provider_is_fully_qualified_and_pinned(synth: Synth) -> None:
    for name in synth.environments:
        terraform = synth.stack(name)["terraform"]
        assert terraform["required_providers"] == {
            "aws": {"source": "hashicorp/aws", "version": "6.25.0"},
            "random": {"source": "hashicorp/random", "version": "3.7.2"},
        }
        assert terraform["required_version"] == ">= 1.10.0"


def test_provider_tags_every_resource_with_the_standard_tags(synth: Synth) -> None:
    for name, environment in synth.environments.items():
        (provider,) = synth.stack(name)["provider"]["aws"]
        assert provider["region"] == environment.config.region
        tags = provider["default_tags"][0]["tags"]
        assert tags["Project"] == "wso2-ob-iam"
        assert tags["Environment"] == name
        assert tags["Owner"] == environment.config.tags.owner
        assert tags["CostCenter"] == environment.config.tags.cost_center
        assert tags["ManagedBy"] == "cdktf"


def test_no_resource_carries_more_toolkit_tags_than_the_config_leaves_room_for(synth: Synth) -> None:
    """Tagging AWS Resources, "Tag naming limits and requirements": 50 user tags per resource. The
    config allows 50 - TOOLKIT_TAGS extra tags; every resource's tags (its own merged with the
    provider's default tags) leave that room."""
    for name, environment in synth.environments.items():
        stack = synth.stack(name)
        defaults = set(stack["provider"]["aws"][0]["default_tags"][0]["tags"])
        extra = set(environment.config.tags.extra)
        for resource_type, resources in stack["resource"].items():
            for resource_name, resource in resources.items():
                for tags in _tag_maps(resource):
                    toolkit = (defaults | set(tags)) - extra
                    assert len(toolkit) <= TOOLKIT_TAGS, f"{name} {resource_type}.{resource_name}: {sorted(toolkit)}"


def _tag_maps(value: Any) -> list[dict[str, str]]:
    if isinstance(value, dict):
        found = [value["tags"]] if isinstance(value.get("tags"), dict) else []
        return found + [m for v in value.values() for m in _tag_maps(v)]
    if isinstance(value, list):
        return [m for v in value for m in _tag_maps(v)]
    return []


def test_prod_extra_tags_are_kept(prod: dict) -> None:
    assert prod["provider"]["aws"][0]["default_tags"][0]["tags"]["DataClassification"] == "confidential"


def test_every_environment_keeps_state_in_s3_with_its_own_key(synth: Synth) -> None:
    keys = set()
    for name, environment in synth.environments.items():
        backend = synth.stack(name)["terraform"]["backend"]
        assert list(backend) == ["s3"], "no local backend: it writes an absolute path"
        s3 = backend["s3"]
        assert s3["bucket"] == environment.config.state.bucket
        assert s3["encrypt"] is True
        assert s3["region"] == environment.config.state_region
        assert s3["key"].endswith(f"/{name}/terraform.tfstate")
        keys.add((s3["bucket"], s3["key"]))
        if environment.config.state.lock == "dynamodb":
            assert s3["dynamodb_table"] == environment.config.state.dynamodb_table
            assert "use_lockfile" not in s3
        else:
            assert s3["use_lockfile"] is True
            assert "dynamodb_table" not in s3
    assert len(keys) == len(synth.environments), "two environments would share one state file"


def test_dev_uses_a_dynamodb_lock_table(synth: Synth) -> None:
    assert synth.stack("dev")["terraform"]["backend"]["s3"]["dynamodb_table"] == "example-bank-tfstate-locks"


def test_ephemeral_stack_is_tagged_with_branch_and_expiry(cheapest: dict, synth: Synth) -> None:
    tags = cheapest["provider"]["aws"][0]["default_tags"][0]["tags"]
    assert tags["Branch"] == "feature/JIRA-123-login-page"
    assert tags["ExpiresAt"] == "2026-11-23T09:30:00Z"  # created 2026-11-20T09:30Z + 72 h from ephemeral.yaml
    assert tags["obiam:ephemeral"] == "true"
    assert tags["Environment"] == synth.ephemeral_name


ABSOLUTE_PATH = re.compile(r'"(/(tmp|work|home|root|Users|var|opt)/|[A-Z]:\\\\)')


def member_texts(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return [archive.read(name).decode() for name in archive.namelist()]


def test_no_absolute_path_in_any_output_file(synth: Synth) -> None:
    files = [p for p in synth.outdir.rglob("*") if p.is_file()]
    assert files
    for path in files:
        # A Lambda package is checked member by member (its bytes are compressed).
        texts = member_texts(path) if path.suffix == ".zip" else [path.read_text()]
        for text in texts:
            assert not ABSOLUTE_PATH.search(text), f"{path.relative_to(synth.outdir)} holds an absolute path"
            assert str(synth.outdir) not in text
            assert str(ROOT) not in text


def tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_second_checkout_at_another_path_synthesizes_identical_bytes(synth: Synth,
                                                                       second_checkout: SecondCheckout) -> None:
    _, stderr = second_checkout.process.communicate(timeout=300)
    assert second_checkout.process.returncode == 0, stderr
    # main.py ends the jsii runtime itself (release_jsii_runtime); nothing may complain at exit.
    assert stderr == ""
    # The session's synth also holds an ephemeral stack, so its manifest lists one more stack.
    ours = {k: v for k, v in tree(synth.outdir).items() if "/eph-" not in k and k != "manifest.json"}
    theirs = tree(second_checkout.path / "cdktf.out")
    assert theirs.pop("manifest.json")
    assert theirs == ours


def test_failed_synthesis_leaves_the_previous_output_untouched(synth: Synth, tmp_path: Path) -> None:
    from stacks.app import SynthError, synthesize

    outdir = tmp_path / "cdktf.out"
    synthesize([synth.environments["dev"]], outdir)
    before = tree(outdir)
    broken = Environment(name="dev", config=synth.environments["dev"].config, source="environments/dev.yaml")
    with pytest.raises(SynthError):
        synthesize([synth.environments["dev"], broken], outdir)  # two stacks with one id
    assert tree(outdir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdktf.out"], "a staging directory was left behind"


def test_ephemeral_template_is_not_synthesized_on_its_own() -> None:
    from stacks.app import select

    catalog = load_catalog(ROOT / "environments", ROOT)
    chosen = select(catalog, [], None, None)
    assert "ephemeral" not in {e.name for e in chosen}
    with pytest.raises(ConfigError):
        select(catalog, ["ephemeral"], None, None)



def test_an_apply_never_removes_the_keep_until_tag_obiam_keep_set(synth: Synth) -> None:
    """`obiam keep` tags a per-branch environment outside Terraform; without the provider's ignore_tags
    the next push's apply would strip it (terraform-provider-aws docs, "ignore_tags Configuration Block")."""
    for name in synth.environments:
        (provider,) = synth.stack(name)["provider"]["aws"]
        assert provider["ignore_tags"] == [{"keys": ["obiam:keep-until"]}]
