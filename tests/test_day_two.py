"""Day two on AWS (#15): what would apply cleanly today and break in the first weeks of production.

Each test is one AWS or provider rule, named after it, with its source. They read the session's
synthesized JSON or validate configs; no test here synthesizes on its own (about 1 s in all).
"""

from __future__ import annotations

from typing import Any

import pytest
from configs import with_values

from conftest import Synth
from obiam import directory_service
from obiam.environments import ConfigError, parse_environment

pytestmark = pytest.mark.synth


# --- account safety ------------------------------------------------------------------------------

def test_the_provider_refuses_every_account_but_the_environments_own(synth: Synth) -> None:
    """terraform-provider-aws `allowed_account_ids` (website/docs/index.html.markdown): the provider
    compares the account of the credentials it ends up with (after any assume_role) with the list
    and stops before any call. Each example environment names its own account, and no two accounts
    share a state bucket (S3 bucket names are global; a second account's bootstrap would fail)."""
    buckets: dict[str, str] = {}
    for name, environment in synth.environments.items():
        (provider,) = synth.stack(name)["provider"]["aws"]
        assert provider["allowed_account_ids"] == [environment.config.account.id]
        assert "forbidden_account_ids" not in provider
        bucket = environment.config.state.bucket
        assert buckets.setdefault(bucket, environment.config.account.id) == environment.config.account.id, (
            f"{name} keeps its state in {bucket}, another account's bucket")


# --- directory per tier --------------------------------------------------------------------------

def _endpoint_services(stack: dict[str, Any]) -> set[str]:
    return {endpoint["service_name"].rsplit(".", 1)[1]
            for endpoint in stack["resource"].get("aws_vpc_endpoint", {}).values()}


def _directory_type(stack: dict[str, Any]) -> str:
    (directory,) = stack["resource"]["aws_directory_service_directory"].values()
    return str(directory["type"])


def test_simple_ad_never_shares_a_vpc_with_the_endpoints_its_prerequisites_forbid(
        synth: Synth, variants: dict[str, dict[str, Any]]) -> None:
    """AWS Directory Service Administration Guide, "Simple AD prerequisites": the VPC must not have
    CloudWatch, Systems Manager or STS endpoints. Stacks with Simple AD leave those out (the nodes
    reach them through NAT); every other stack keeps them, so the nodes' AWS calls stay in the VPC."""
    stacks = {**{name: synth.stack(name) for name in synth.environments}, **variants}
    simple_ad = {name for name, stack in stacks.items() if _directory_type(stack) == "SimpleAD"}
    assert simple_ad == {"simple-ad"}
    for name, stack in stacks.items():
        services = _endpoint_services(stack)
        if name in simple_ad:
            assert not services & directory_service.SIMPLE_AD_FORBIDDEN_ENDPOINTS, name
            assert {"secretsmanager", "ec2"} <= services
        elif "aws_vpc" in stack["resource"]:
            assert {"ssm", "ssmmessages", "ec2messages", "logs"} <= services, name


@pytest.mark.parametrize(("changes", "expected"), [
    ({"tier": "development", "directory": {"type": "SimpleAD"},
      "data_protection": {"deletion_protection": False}},
     "directory.type = 'SimpleAD': AWS does not offer Simple AD in eu-west-2"),
    ({"directory": {"type": "SimpleAD"}},
     "directory.type = 'SimpleAD': production uses MicrosoftAD"),
], ids=["simple-ad-where-aws-has-none", "simple-ad-in-production"])
def test_the_directory_type_must_exist_in_the_region_and_suit_the_tier(changes: dict[str, Any], expected: str) -> None:
    """Directory Service "Region availability": Simple AD in us-east-1, us-west-2, eu-west-1,
    ap-southeast-1, ap-southeast-2 and ap-northeast-1 only (read 2026-11-25)."""
    with pytest.raises(ConfigError) as caught:
        parse_environment("env", with_values(changes), "environments/env.yaml")
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems
