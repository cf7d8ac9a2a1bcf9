"""Day two on AWS (#15): what would apply cleanly today and break in the first weeks of production.

Each test is one AWS or provider rule, named after it, with its source. They read the session's
synthesized JSON or validate configs; no test here synthesizes on its own (about 1 s in all).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
import yaml
from configs import with_values

from conftest import ROOT, Synth
from obiam import database_engines, directory_service
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
    stacks = {**{name: synth.stack(name) for name in synth.server_stacks}, **variants}
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


# --- the database's day two ----------------------------------------------------------------------

def _only(stack: dict[str, Any], resource_type: str) -> tuple[str, dict[str, Any]]:
    ((name, resource),) = stack["resource"][resource_type].items()
    return name, resource


def test_the_db_parameter_group_can_be_replaced_beside_the_old_one(synth: Synth) -> None:
    """RDS parameter group names are unique per account and Region; with create_before_destroy the
    replacement (a new family, e.g. mysql8.0 -> mysql8.4) exists beside the old group, so only a
    `name_prefix` can work (aws-apply-review finding 6; provider docs, aws_db_parameter_group)."""
    for name in synth.server_stacks:
        stack = synth.stack(name)
        group_name, group = _only(stack, "aws_db_parameter_group")
        assert "name" not in group and group["name_prefix"] == f"obiam-{name}-db-"
        assert group["lifecycle"]["create_before_destroy"] is True
        _, instance = _only(stack, "aws_db_instance")
        assert instance["parameter_group_name"] == f"${{aws_db_parameter_group.{group_name}.name}}"


def test_rds_log_exports_land_in_encrypted_expiring_groups_created_before_the_instance(
        synth: Synth, variants: dict[str, dict[str, Any]]) -> None:
    """RDS User Guide, "Publishing MySQL logs to Amazon CloudWatch Logs": RDS writes each export to
    /aws/rds/instance/<id>/<log>, and creates that group itself (no key, never expiring) unless it
    exists. MySQL's slow query log is published only with log_output = FILE."""
    stacks = {**{name: (synth.stack(name), config.observability.log_retention_days)
                 for name, config in synth.server_stacks.items()}, "postgres": (variants["postgres"], None)}
    for name, (stack, retention) in stacks.items():
        _, instance = _only(stack, "aws_db_instance")
        groups = {group["name"]: (key, group) for key, group in stack["resource"]["aws_cloudwatch_log_group"].items()}
        expected = [f"/aws/rds/instance/{instance['identifier']}/{log}"
                    for log in instance["enabled_cloudwatch_logs_exports"]]
        assert expected and all(group in groups for group in expected), name
        for group_name in expected:
            key, group = groups[group_name]
            assert group["kms_key_id"].startswith("${aws_kms_key.logs-key_"), name
            assert retention is None or group["retention_in_days"] == retention
            assert f"aws_cloudwatch_log_group.{key}" in instance["depends_on"]
    parameters = {p["name"]: p["value"] for p in _only(synth.stack("prod"), "aws_db_parameter_group")[1]["parameter"]}
    assert parameters["slow_query_log"] == "1" and parameters["log_output"] == "FILE"


def test_the_engine_lifecycle_is_stated_and_set_once_at_create(synth: Synth) -> None:
    """CreateDBInstance EngineLifecycleSupport (RDS API reference): MySQL and PostgreSQL, set at create
    or restore only; the provider would plan a change RDS ignores on every run (terraform-provider-aws
    #40870, #44552), hence ignore_changes."""
    for name, config in synth.server_stacks.items():
        _, instance = _only(synth.stack(name), "aws_db_instance")
        assert instance["engine_lifecycle_support"] == config.database.engine_lifecycle_support
        assert instance["engine_lifecycle_support"] == "open-source-rds-extended-support"
        assert "engine_lifecycle_support" in instance["lifecycle"]["ignore_changes"]


@pytest.mark.parametrize(("database", "tier", "expected"), [
    ({"engine_lifecycle_support": None}, "production",
     "database.engine_lifecycle_support: mysql 8.0 left RDS standard support on 2026-07-31"),
    ({"engine_lifecycle_support": "open-source-rds-extended-support-disabled"}, "staging",
     "database.engine_lifecycle_support = 'open-source-rds-extended-support-disabled': mysql 8.0 left RDS standard "
     "support on 2026-07-31, so RDS refuses to create it"),
    ({"engine_lifecycle_support": None}, "staging",
     "database.engine_lifecycle_support: mysql 8.0 left RDS standard support on 2026-07-31, so a new instance is "
     "enrolled in paid RDS Extended Support without anyone deciding it"),
    ({"engine_version": "8.4"}, "production",
     "database.engine_version = '8.4': production runs the mysql major WSO2 tested OB 3.0.0 on (8.0"),
    ({"engine": "oracle-se2"}, "staging",
     "database.engine_lifecycle_support = 'open-source-rds-extended-support': applies to RDS for MySQL and "
     "PostgreSQL only"),
], ids=["production-undecided", "disabled-past-support", "silent-extended-support", "untested-major-in-production",
        "not-an-rds-extended-support-engine"])
def test_an_engine_past_standard_support_is_a_decision(database: dict[str, Any], tier: str, expected: str) -> None:
    """RDS User Guide, "Creating a DB instance ... with RDS Extended Support": past the end of standard
    support, creating with Extended Support disabled fails, and the API default enrolls (and bills)
    silently. The majors WSO2 tested OB 3.0 on: docs-open-banking 3.0.0 prerequisites.md, "Tested DBMSs"."""
    data = with_values(tier=tier, database=database)
    if tier != "production":
        data["data_protection"] = {"deletion_protection": False}
    with pytest.raises(ConfigError) as caught:
        parse_environment("env", data, "environments/env.yaml")
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_production_states_the_lifecycle_even_before_standard_support_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database_engines, "today", lambda: date(2026, 1, 1))
    with pytest.raises(ConfigError, match=r"database\.engine_lifecycle_support: production states what RDS does "
                                          r"when mysql 8\.0 leaves standard support"):
        parse_environment("env", with_values(database={"engine_lifecycle_support": None}), "environments/env.yaml")


def test_a_major_that_leaves_standard_support_later_becomes_a_decision_then(monkeypatch: pytest.MonkeyPatch) -> None:
    data = with_values(tier="staging", database={"engine_version": "8.4", "engine_lifecycle_support": None})
    parse_environment("env", data, "environments/env.yaml")
    monkeypatch.setattr(database_engines, "today", lambda: date(2029, 8, 1))
    with pytest.raises(ConfigError, match=r"mysql 8\.4 left RDS standard support on 2029-07-31"):
        parse_environment("env", data, "environments/env.yaml")


# --- nodes: rollouts that roll back, and no boot before its permissions --------------------------

def _address(stack: dict[str, Any], resource_type: str, name_start: str = "") -> list[str]:
    return [f"{resource_type}.{name}" for name in stack["resource"].get(resource_type, {})
            if name.startswith(name_start)]


def test_terraform_never_moves_the_group_onto_a_launch_template_version(synth: Synth) -> None:
    """hashicorp/terraform-provider-aws#34189 (open): the provider switches the group to the new version,
    then starts the refresh with that version as its desired configuration, so its auto_rollback "rolls
    back" to the failing version. The group's version is therefore `obiam rollout`'s (ignore_changes),
    and the provider starts no refresh of its own (no instance_refresh block). The version is a number,
    never $Latest/$Default, which rollback needs ("Undo changes with a rollback")."""
    for name in synth.environments:
        _, group = _only(synth.stack(name), "aws_autoscaling_group")
        assert "instance_refresh" not in group
        assert "launch_template" in group["lifecycle"]["ignore_changes"]
        assert group["launch_template"]["version"].endswith(".latest_version}")
        _, template = _only(synth.stack(name), "aws_launch_template")
        assert template["update_default_version"] is True


def test_no_node_boots_before_its_permissions_mount_targets_and_file_system_policy_exist(synth: Synth) -> None:
    """The boot script reads the runtime parameter and secrets under the node role's inline policy and
    mounts EFS through a mount target in its AZ under the file system policy; references alone do not
    order those before the group (aws-apply-review R4)."""
    for name in synth.environments:
        stack = synth.stack(name)
        _, group = _only(stack, "aws_autoscaling_group")
        needed = [*_address(stack, "aws_iam_role_policy", "nodes_permissions_"),
                  *_address(stack, "aws_iam_instance_profile", "nodes_profile_"),
                  *_address(stack, "aws_efs_mount_target"), *_address(stack, "aws_efs_file_system_policy")]
        assert len(needed) >= 5 and set(needed) <= set(group["depends_on"]), name


def test_access_logging_is_switched_on_only_after_the_bucket_lets_elb_write(synth: Synth) -> None:
    """ELB checks it can write when access logs are enabled ("Access Denied for bucket"); the bucket policy,
    public access block and ownership controls exist first (aws-apply-review R5)."""
    stack = synth.stack("prod")
    _, alb = _only(stack, "aws_lb")
    needed = [*_address(stack, "aws_s3_bucket_policy", "alb-logs_"),
              *_address(stack, "aws_s3_bucket_public_access_block", "alb-logs_"),
              *_address(stack, "aws_s3_bucket_ownership_controls", "alb-logs_")]
    assert len(needed) == 3 and sorted(alb["depends_on"]) == sorted(needed)


# --- service roles and resource policies as AWS documents them -----------------------------------

def _policy_of(stack: dict[str, Any], resource_type: str, name_start: str, field: str) -> dict[str, Any]:
    (found,) = [r for n, r in stack["resource"][resource_type].items() if n.startswith(name_start)]
    return dict(json.loads(found[field]))


def test_directory_log_forwarding_uses_the_statement_aws_documents(synth: Synth) -> None:
    """Directory Service Admin Guide, "Enable log forwarding": ds.amazonaws.com may CreateLogStream and
    PutLogEvents on the group, with no condition; an aws:SourceAccount condition Directory Service is not
    documented to send could drop the security logs silently (aws-apply-review R2)."""
    policy = _policy_of(synth.stack("prod"), "aws_cloudwatch_log_resource_policy", "directory_", "policy_document")
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "ds.amazonaws.com"}
    assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert "Condition" not in statement and statement["Resource"].endswith(":*")


def test_the_flow_log_role_has_the_documented_permissions_and_confused_deputy_conditions(synth: Synth) -> None:
    """Amazon VPC User Guide, "IAM role for publishing flow logs to CloudWatch Logs": DescribeLogGroups
    besides the stream writes, and a trust policy limited by aws:SourceAccount and aws:SourceArn
    (aws-apply-review R3)."""
    stack = synth.stack("prod")
    trust = _policy_of(stack, "aws_iam_role", "network_flow-logs-role_", "assume_role_policy")["Statement"][0]
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"].startswith("${data.aws_caller_identity.")
    assert ":vpc-flow-log/*" in trust["Condition"]["ArnLike"]["aws:SourceArn"]
    actions = {action for statement in _policy_of(stack, "aws_iam_role_policy", "network_flow-logs-write_",
                                                  "policy")["Statement"]
               for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}
    assert actions == {"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:DescribeLogGroups"}


def test_every_workflow_that_deploys_rolls_the_nodes_before_it_verifies() -> None:
    """Since Terraform no longer moves the group, a deploy without `obiam rollout` would leave the nodes
    on the old launch template version; `obiam verify` would then fail its rollout check."""
    workflows = ROOT / ".github" / "workflows"
    for name, deploy_marker in (("deploy-stack.yml", "terraform -chdir=\"$dir\" apply"),
                                ("ephemeral.yml", "npx cdktf deploy")):
        steps = [step.get("run", "") for job in yaml.safe_load((workflows / name).read_text())["jobs"].values()
                 for step in job.get("steps", [])]
        deploy = next(i for i, run in enumerate(steps) if deploy_marker in run)
        rollout = next(i for i, run in enumerate(steps) if "obiam rollout" in run)
        verify = [i for i, run in enumerate(steps) if "obiam verify" in run]
        assert deploy < rollout and all(rollout < i for i in verify), name


def test_the_waf_can_run_on_trial_below_production_and_blocks_in_production(
        synth: Synth, variants: dict[str, dict[str, Any]]) -> None:
    """AWS WAF Developer Guide, "Testing and tuning your AWS WAF protections": run new rules in count
    mode first and read what they would block. OAuth/FAPI traffic (JWT request objects, client
    assertions) is what the SQLi and XSS body rules may misread (aws-apply-review R10)."""
    def actions(stack: dict[str, Any]) -> list[str]:
        _, acl = _only(stack, "aws_wafv2_web_acl")
        return [next(iter(rule.get("override_action") or rule["action"])) for rule in acl["rule"]]
    assert set(actions(synth.stack("prod"))) == {"none", "block"}
    assert set(actions(variants["postgres"])) == {"count"}
    data = with_values(load_balancer={"waf_mode": "count"})
    with pytest.raises(ConfigError, match="production blocks; find false positives with count in staging first"):
        parse_environment("prod", data, "environments/prod.yaml")
