"""Property-based tests: generated environment configs are either rejected with ConfigError, or
synthesize into a deployment that keeps the mission's invariants.

Examples are derandomized (the same every run) so CI never flakes on a new example;
HYPOTHESIS_PROFILE=explore runs more, random ones locally.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from configs import with_values
from hypothesis import given, settings
from hypothesis import strategies as st

from obiam import instance_types
from obiam.environments import ConfigError, parse_environment
from tfjson import only, resources

# The profile (ci, explore, long) is chosen by HYPOTHESIS_PROFILE in tests/conftest.py.

SMALL_AND_UNKNOWN = ["t3.micro", "t3.small", "c5.xlarge9", "x9.huge"]


# --- any config: ConfigError or a valid environment, never another exception -------------------

anything = st.one_of(st.none(), st.booleans(), st.integers(-5, 100_000), st.floats(allow_nan=False),
                     st.text(max_size=12), st.lists(st.text(max_size=8), max_size=3))
perturbations = st.fixed_dictionaries({}, optional={
    "tier": st.one_of(st.sampled_from(["production", "staging", "development", "ephemeral"]), anything),
    "availability_zone_count": st.one_of(st.integers(0, 8), anything),
    "nodes": st.fixed_dictionaries({}, optional={
        "instance_type": st.one_of(st.sampled_from(sorted(instance_types.MEMORY_MIB) + SMALL_AND_UNKNOWN), anything),
        "min_size": st.integers(-1, 9), "desired_capacity": st.integers(-1, 9), "max_size": st.integers(-1, 9),
        "root_volume_size": st.one_of(st.integers(0, 64), anything),
        "jvm_heap_mib": st.one_of(st.sampled_from([512, 2048, 3072, 6144, 14336]), anything),
        "jdk": st.one_of(st.sampled_from(["11", "17", "8", "1.8.0_151", "11.0.25", "21", "99"]), anything),
    }),
    "database": st.fixed_dictionaries({}, optional={
        "engine": st.one_of(st.sampled_from(["mysql", "postgres", "oracle-ee", "db2"]), anything),
        "engine_version": anything, "allocated_storage": st.integers(0, 70000),
    }),
    "network": st.fixed_dictionaries({}, optional={
        "vpc_cidr": st.one_of(st.sampled_from(["10.40.0.0/16", "10.0.0.0/24", "8.8.0.0/16", "10.0.0.1/16"]),
                              anything),
        "nat_gateways": st.one_of(st.sampled_from(["per_az", "single"]), anything),
    }),
    "directory": st.fixed_dictionaries({}, optional={
        "type": st.one_of(st.sampled_from(["MicrosoftAD", "SimpleAD"]), anything),
        "edition": anything, "size": anything, "ldaps": anything,
    }),
    "unknown_key": anything,
})


@settings(max_examples=300)
@given(changes=perturbations)
def test_any_config_is_accepted_or_rejected_with_config_error(changes: dict[str, Any]) -> None:
    try:
        environment = parse_environment("generated", with_values(changes), "generated.yaml")
    except ConfigError as error:
        assert error.problems and all(p.startswith("generated.yaml: ") for p in error.problems)
        return
    assert environment.config.nodes.memory_mib >= 4096


# --- valid by construction: accepted, synthesized, and the invariants hold ---------------------

@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    tier = draw(st.sampled_from(["production", "staging", "development", "ephemeral"]))
    production = tier == "production"
    instance_type = draw(st.sampled_from(instance_types.allowed_types()))
    memory = instance_types.MEMORY_MIB[instance_type]
    heap = draw(st.integers(2048, memory - 2048).map(lambda mib: mib - mib % 256))
    minimum = draw(st.integers(2 if production else 1, 4))
    maximum = draw(st.integers(minimum, 6))
    protect = production or (tier != "ephemeral" and draw(st.booleans()))
    engine = draw(st.sampled_from(["mysql", "mysql", "postgres", "sqlserver-se", "oracle-se2"]))
    directory = draw(st.sampled_from([{"type": "MicrosoftAD", "edition": "Standard"},
                                      {"type": "MicrosoftAD", "edition": "Enterprise"},
                                      *([] if production else [{"type": "SimpleAD", "size": "Small"}])]))
    # Simple AD exists in a few Regions only (obiam/directory_service.py), eu-west-2 not among them.
    region = "eu-west-1" if directory["type"] == "SimpleAD" else "eu-west-2"
    lower = {} if production else {
        "waf": draw(st.booleans()), "access_logs": draw(st.booleans()),
    }
    config: dict[str, Any] = {
        "tier": tier,
        "region": region,
        "availability_zone_count": draw(st.integers(2, 4)),
        "network": {"vpc_cidr": draw(st.sampled_from(["10.40.0.0/16", "172.20.0.0/18", "192.168.8.0/22"])),
                    "nat_gateways": draw(st.sampled_from(["per_az", "single"])),
                    "flow_logs": True if production else draw(st.booleans())},
        "nodes": {"instance_type": instance_type, "jvm_heap_mib": heap, "min_size": minimum,
                  "desired_capacity": draw(st.integers(minimum, maximum)), "max_size": maximum,
                  "root_volume_size": draw(st.integers(10, 100)),
                  "jdk": draw(st.sampled_from(["11", "11.0.25"]))},
        "load_balancer": {"internal": draw(st.booleans()),
                          "certificate_arn": f"arn:aws:acm:{region}:111111111111:certificate/"
                                             "0b7c2d6e-4a1f-4c3e-9d2b-5e6f7a8b9c0d",
                          **lower},
        "database": {"engine": engine, "jdbc_driver_s3_uri": "s3://example-bank-wso2/driver.jar",
                     "engine_lifecycle_support": "open-source-rds-extended-support"
                     if engine in ("mysql", "postgres") else None},
        "directory": directory,
        "data_protection": {"deletion_protection": protect, "prevent_destroy": protect, "final_snapshot": protect},
    }
    if tier == "ephemeral":
        config["ephemeral"] = {"ttl_hours": draw(st.integers(1, 336))}
        config["backup"] = {"enabled": False}  # one destroy removes a per-branch environment
    elif not production:
        config["backup"] = {"enabled": draw(st.booleans())}
    if not production:
        config["observability"] = {"log_retention_days": draw(st.sampled_from([7, 30, 365]))}
        config["database"].update(performance_insights=draw(st.booleans()),
                                  monitoring_interval=draw(st.sampled_from([0, 60])))
    return with_values(config)


def zone_of(stack: dict[str, Any], subnet_ref: str) -> str:
    return resources(stack, "aws_subnet")[subnet_ref.split(".")[1]]["availability_zone"]


def assert_mission_invariants(stack: dict[str, Any]) -> None:
    asg = only(stack, "aws_autoscaling_group")
    node_zones = {zone_of(stack, s) for s in asg["vpc_zone_identifier"]}
    assert len(node_zones) >= 2, "nodes span fewer than two AZs"
    assert instance_types.MEMORY_MIB[only(stack, "aws_launch_template")["instance_type"]] >= 4096
    mount_zones = {zone_of(stack, m["subnet_id"]) for m in resources(stack, "aws_efs_mount_target").values()}
    assert node_zones <= mount_zones, "a node AZ has no EFS mount target"
    assert only(stack, "aws_db_instance")["multi_az"] is True
    vpc = ipaddress.IPv4Network(only(stack, "aws_vpc")["cidr_block"])
    alb_sg = only(stack, "aws_lb")["security_groups"][0]
    for rule in resources(stack, "aws_vpc_security_group_ingress_rule").values():
        cidr = rule.get("cidr_ipv4")
        if cidr is not None and not ipaddress.IPv4Network(cidr).subnet_of(vpc):
            assert rule["security_group_id"] == alb_sg, f"{rule['security_group_id']} is reachable from {cidr}"
    assert only(stack, "aws_launch_template")["network_interfaces"][0]["associate_public_ip_address"] == "false"


@settings(max_examples=10)
@given(data=valid_configs())
def test_valid_configs_synthesize_and_keep_the_mission_invariants(data: dict[str, Any], synth: Any,
                                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    from stacks.app import synthesize

    environment = parse_environment("generated", data, "generated.yaml")  # must not raise: valid by construction
    outdir = tmp_path_factory.mktemp("generated") / "cdktf.out"
    synthesize([environment], outdir)
    assert_mission_invariants(json.loads(Path(outdir / "stacks" / "generated" / "cdk.tf.json").read_text()))


def test_the_invariant_check_catches_a_broken_stack(prod: dict[str, Any]) -> None:
    broken = copy.deepcopy(prod)
    only(broken, "aws_db_instance")["multi_az"] = False
    with pytest.raises(AssertionError):
        assert_mission_invariants(broken)
