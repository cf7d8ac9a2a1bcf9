"""Constructs own their wiring: connections, grants, protection and log groups, each in one place.

Requirement tests over every synthesized environment, and unit tests of the constructs' own branches
in a bare cdktf `Testing` app (no environment, no config). The aspect is CDKTF's `Aspects`
(hashicorp/terraform-cdk v0.21.0 packages/cdktf/lib/aspect.ts); `prevent_destroy` is Terraform's
lifecycle meta-argument; CloudWatch Logs' `deletion_protection_enabled` is the provider's
(terraform-provider-aws v6.25 website/docs/r/cloudwatch_log_group.html.markdown).

Cost: reads the session's synthesized JSON (`synth`, `variants`); the unit tests build tiny stacks in
the already-loaded provider, ~0.3 s together.
"""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest

from conftest import ROOT, Synth, variant_environment
from obiam.database_engines import ENGINES
from tfjson import resources

pytestmark = pytest.mark.synth

STACK_SOURCE = ROOT / "stacks" / "ob_iam_stack.py"
# Ports the constructs serve (NFS, LDAP/LDAPS, the engines, HTTPS and WSO2's servlet port).
PORTS = {2049, 389, 636, 3306, 5432, 1433, 1521, 443, 9443, 9446, 5701}


@pytest.fixture(scope="module")
def every_stack(synth: Synth, variants: dict[str, dict[str, Any]]) -> dict[str, tuple[dict[str, Any], bool]]:
    """Each synthesized stack with its environment's data_protection.prevent_destroy."""
    environments = {**synth.environments, **{n: variant_environment(n, synth.environments) for n in variants}}
    stacks = {**{n: synth.stack(n) for n in synth.environments}, **variants}
    return {n: (stack, environments[n].config.data_protection.prevent_destroy) for n, stack in stacks.items()}


def test_every_protected_stateful_resource_follows_the_environments_prevent_destroy(
        every_stack: dict[str, tuple[dict[str, Any], bool]]) -> None:
    from wso2_on_aws.protection import protected_type

    for name, (stack, prevent_destroy) in every_stack.items():
        for resource_type, by_name in stack["resource"].items():
            if not protected_type(resource_type):
                continue
            for resource_name, resource in by_name.items():
                assert resource.get("lifecycle", {}).get("prevent_destroy") is prevent_destroy, (
                    f"{name}: {resource_type}.{resource_name}")


def test_every_log_group_is_encrypted_kept_and_protected_alike(
        every_stack: dict[str, tuple[dict[str, Any], bool]]) -> None:
    # The four groups built by hand had drifted apart from the nodes' on deletion protection (issue 17).
    for name, (stack, prevent_destroy) in every_stack.items():
        groups = resources(stack, "aws_cloudwatch_log_group")
        assert groups
        for group_name, group in groups.items():
            assert group["kms_key_id"].startswith("${aws_kms_key.logs-key"), f"{name}: {group_name}"
            assert group["retention_in_days"] >= 1, f"{name}: {group_name}"
            assert group["deletion_protection_enabled"] is prevent_destroy, f"{name}: {group_name}"


def test_the_stack_names_no_port_and_writes_no_iam_statement() -> None:
    tree = ast.parse(STACK_SOURCE.read_text())
    constants = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)]
    assert [c for c in constants if isinstance(c, int) and not isinstance(c, bool) and c in PORTS] == []
    assert {"Sid", "Effect", "Action", "Statement", "Principal"} & {c for c in constants if isinstance(c, str)} == set()


# --- the constructs on their own -------------------------------------------------------------------

def _bare_stack() -> Any:
    from cdktf import TerraformStack, Testing

    return TerraformStack(Testing.app(), "unit")


def _synth(stack: Any) -> dict[str, Any]:
    from cdktf import Testing

    return dict(json.loads(Testing.synth(stack)))


def test_a_new_stateful_resource_is_protected_without_its_construct_asking() -> None:
    from cdktf import Aspects, TerraformResourceLifecycle
    from cdktf_cdktf_provider_aws.dynamodb_table import DynamodbTable
    from cdktf_cdktf_provider_aws.sqs_queue import SqsQueue
    from cdktf_cdktf_provider_aws.vpc import Vpc

    import wso2_on_aws  # noqa: F401  (the provider package set-up)
    from wso2_on_aws.protection import StatefulProtection

    stack = _bare_stack()
    DynamodbTable(stack, "table", name="t", hash_key="id", attribute=[{"name": "id", "type": "S"}],
                  lifecycle=TerraformResourceLifecycle(ignore_changes=["read_capacity"]))
    SqsQueue(stack, "queue", name="q")
    Vpc(stack, "vpc", cidr_block="10.0.0.0/16")
    Aspects.of(stack).add(StatefulProtection(prevent_destroy=True))
    synthesized = _synth(stack)["resource"]
    assert synthesized["aws_dynamodb_table"]["table"]["lifecycle"] == {
        "ignore_changes": ["read_capacity"], "prevent_destroy": True}
    assert synthesized["aws_sqs_queue"]["queue"]["lifecycle"] == {"prevent_destroy": True}
    assert "lifecycle" not in synthesized["aws_vpc"]["vpc"], "a VPC holds no data: nothing to protect"


def test_grants_with_one_sid_widen_one_statement_and_refuse_to_merge_different_ones() -> None:
    from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy

    import wso2_on_aws  # noqa: F401
    from wso2_on_aws.security import Grantable, secrets_read

    stack = _bare_stack()
    policy = IamRolePolicy(stack, "policy", role="r", policy="{}")
    role = Grantable(policy, "arn:aws:iam::111111111111:role/r", "r", own=[{"Sid": "Own"}], last=[{"Sid": "Last"}])
    role.add_to_policy(secrets_read(["arn:a"]))
    role.add_to_policy({"Sid": "Other", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:o"})
    role.add_to_policy(secrets_read(["arn:b", "arn:c"]))
    statements = json.loads(_synth(stack)["resource"]["aws_iam_role_policy"]["policy"]["policy"])["Statement"]
    assert [s["Sid"] for s in statements] == ["Own", "Credentials", "Other", "Last"]
    assert statements[1]["Resource"] == ["arn:a", "arn:b", "arn:c"]
    with pytest.raises(ValueError, match="Credentials"):
        role.add_to_policy({**secrets_read(["arn:d"]), "Effect": "Deny"})


def test_a_connection_to_a_group_that_serves_no_port_names_the_port() -> None:
    import wso2_on_aws  # noqa: F401
    from wso2_on_aws.security import Connections, Port

    stack = _bare_stack()
    alb = Connections(stack, "alb", "sg-alb")
    nodes = Connections(stack, "nodes", "sg-nodes", Port(9446, "HTTPS"))
    directory = Connections(stack, "directory", "sg-dir", Port(389, "LDAP"), managed_by_aws=True)
    with pytest.raises(ValueError, match="alb serves no default port"):
        alb.allow_from(nodes)
    nodes.allow_from(alb)
    directory.allow_from(nodes)
    synthesized = _synth(stack)["resource"]
    assert set(synthesized["aws_vpc_security_group_egress_rule"]) == {"alb-to-nodes-egress",
                                                                      "nodes-to-directory-egress"}
    # AWS's directory group already admits the VPC: no ingress rule is written on it.
    assert set(synthesized["aws_vpc_security_group_ingress_rule"]) == {"alb-to-nodes-ingress"}
    assert synthesized["aws_vpc_security_group_ingress_rule"]["alb-to-nodes-ingress"]["from_port"] == 9446


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
def test_the_database_takes_every_rds_fact_from_its_engine(engine_name: str) -> None:
    """Every engine the config accepts, also the ones no environment of the suite synthesizes (RDS User Guide:
    parameter group families, "Publishing database logs to Amazon CloudWatch Logs" per engine, license models:
    SQL Server license-included, Oracle SE2 license-included, EE bring-your-own-license)."""
    import wso2_on_aws  # noqa: F401
    from wso2_on_aws.account import AccountContext
    from wso2_on_aws.database import Database, DatabaseProps
    from wso2_on_aws.security import Connections

    engine = ENGINES[engine_name]
    version = engine.versions[-1]
    stack = _bare_stack()
    database = Database(stack, "database", AccountContext("111111111111", "aws", "eu-west-2"), DatabaseProps(
        identifier="unit-db", vpc_id="vpc-1", subnet_ids=["subnet-1", "subnet-2"], engine=engine,
        engine_version=version, instance_class="db.m6i.large", allocated_storage=100, max_allocated_storage=200,
        backup_retention_period=7, kms_key_arn="arn:key", performance_insights=True, monitoring_interval=0,
        logs_kms_key_arn="arn:logs", log_retention_days=30, prevent_destroy=True))
    database.connections.allow_from(Connections(stack, "nodes", "sg-nodes"))
    synthesized = _synth(stack)["resource"]
    (instance,) = synthesized["aws_db_instance"].values()
    (parameters,) = synthesized["aws_db_parameter_group"].values()
    assert instance["engine"] == engine_name and instance["engine_version"] == version
    assert parameters["family"] == engine.family(version)
    assert instance.get("license_model") == engine.license_model
    assert instance["enabled_cloudwatch_logs_exports"] == list(engine.log_exports)
    # RDS writes each export to /aws/rds/instance/<id>/<log>: those groups exist first, encrypted.
    assert sorted(g["name"] for g in synthesized["aws_cloudwatch_log_group"].values()) == sorted(
        f"/aws/rds/instance/unit-db/{log}" for log in engine.log_exports)
    assert synthesized["aws_vpc_security_group_ingress_rule"]["nodes-to-db-ingress"]["from_port"] == engine.port
