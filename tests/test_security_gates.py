"""What a bank's security review runs: checkov with every skip justified, encryption, WAF, alarms."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import Examples, Synth
from obiam import checkov_gate
from tfjson import as_list, only, policy_statements, resources

pytestmark = pytest.mark.synth


def test_checkov_accepts_nothing_outside_the_reviewed_skip_file(synth: Synth) -> None:
    assert synth.checkov is not None, "the session synth starts checkov when this test is selected"
    tiers = {name: config.tier for name, config in
             {**{n: e.config for n, e in synth.environments.items()}, **synth.server_stacks}.items()}
    result = checkov_gate.collect(synth.checkov, tiers, checkov_gate.load_skips())
    assert result.passed > 500
    assert result.ok, "\n".join(checkov_gate.report_lines(result))
    # `make checkov` runs over `make synth`'s stacks, without a branch one: there too no skip may be stale
    # (a skip is judged where a stack of its tiers exists).
    default = {name: tier for name, tier in tiers.items() if name != synth.ephemeral_name}
    used = {id(skip) for finding, skip in result.accepted if finding.stack in default}
    stale = [skip for _, skip in result.accepted if id(skip) not in used
             and any(tier in skip.tiers and skip.covers(stack) for stack, tier in default.items())]
    assert not stale, [f"{skip.check} {skip.resources}" for skip in stale]


def test_checkov_accepts_the_examples_with_the_same_reviewed_skip_file(examples: Examples) -> None:
    """The shapes a user copies from environments/examples/ meet the same gate; a skip one example alone
    needs names that example (`stacks:`), so a copy under another name is checked afresh. Skips the
    examples do not use are not stale here: the repository's own run judges those."""
    assert examples.checkov is not None
    tiers = {name: environment.config.tier for name, environment in examples.environments.items()}
    result = checkov_gate.collect(examples.checkov, tiers, checkov_gate.load_skips())
    assert result.passed > 1000
    assert not result.failed and not result.parsing_errors, "\n".join(checkov_gate.report_lines(result))
    assert {skip.stacks for _, skip in result.accepted} >= {("postgres",), ("internal-alb",)}


def test_every_skip_names_its_scope_and_reason() -> None:
    skips = checkov_gate.load_skips()
    assert skips
    for skip in skips:
        assert skip.resources and len(skip.reason) >= 40


def fake_checkov(report: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", f"print({json.dumps(json.dumps(report))}); raise SystemExit(1)"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def failed(check_id: str, resource: str, stack: str = "prod") -> dict[str, str]:
    return {"check_id": check_id, "check_name": "a check", "resource": resource, "file_path": f"/{stack}.tf.json"}


SKIP = checkov_gate.Skip("CKV_AWS_145", ("alb-logs_bucket_*",), ("development",), "x" * 40)


def test_gate_fails_on_a_finding_the_skip_file_does_not_cover() -> None:
    report = {"summary": {"passed": 3}, "results": {"failed_checks": [
        failed("CKV_AWS_145", "aws_s3_bucket.alb-logs_bucket_1", stack="dev"),
        failed("CKV_AWS_145", "aws_s3_bucket.alb-logs_bucket_1", stack="prod")]}}
    result = checkov_gate.collect(fake_checkov(report), {"dev": "development", "prod": "production"}, [SKIP])
    assert [(f.stack, f.check_id) for f in result.failed] == [("prod", "CKV_AWS_145")]
    assert [f.stack for f, _ in result.accepted] == ["dev"]
    assert not result.ok


def test_gate_fails_on_a_stale_skip() -> None:
    report = {"summary": {"passed": 3}, "results": {"failed_checks": []}}
    result = checkov_gate.collect(fake_checkov(report), {"dev": "development"}, [SKIP])
    assert result.unused == [SKIP] and not result.ok


def test_skip_file_without_a_reason_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "skips.yaml"
    path.write_text("skips:\n  - check: CKV_AWS_18\n    resources: ['x']\n    reason: because\n")
    with pytest.raises(checkov_gate.GateError, match="says why"):
        checkov_gate.load_skips(path)


def test_checkov_is_fed_json_it_can_parse(prod: dict[str, Any]) -> None:
    assert "required_version" in prod["terraform"]
    assert "required_version" not in checkov_gate.sanitized(prod)["terraform"]
    assert checkov_gate.sanitized(prod)["resource"] == prod["resource"]


# --- encryption --------------------------------------------------------------------------------

def kms_ref(value: str) -> bool:
    return value.startswith("${aws_kms_key.") and value.endswith(".arn}")


def test_stateful_data_is_encrypted_with_customer_managed_keys(stack: dict[str, Any]) -> None:
    assert kms_ref(only(stack, "aws_efs_file_system")["kms_key_id"])
    # A branch environment's database is its base's (tests/test_stateful_tier.py checks the base's key).
    assert all(kms_ref(db["kms_key_id"]) for db in resources(stack, "aws_db_instance").values())
    assert all(kms_ref(secret["kms_key_id"]) for secret in resources(stack, "aws_secretsmanager_secret").values())
    assert kms_ref(only(stack, "aws_ssm_parameter")["key_id"])
    assert kms_ref(only(stack, "aws_sns_topic")["kms_master_key_id"])
    (device,) = only(stack, "aws_launch_template")["block_device_mappings"]
    assert kms_ref(device["ebs"]["kms_key_id"])
    for group in resources(stack, "aws_cloudwatch_log_group").values():
        assert kms_ref(group["kms_key_id"]), group["name"]


def test_every_key_rotates_and_no_key_policy_allows_anyone(stack: dict[str, Any]) -> None:
    for key in resources(stack, "aws_kms_key").values():
        assert key["enable_key_rotation"] is True
    for statement in policy_statements(stack, "aws_kms_key"):
        assert statement["Principal"] not in ("*", {"AWS": "*"}), statement


def test_ebs_key_is_usable_only_by_the_environments_own_autoscaling_role(stack: dict[str, Any]) -> None:
    role = next(iter(resources(stack, "aws_iam_service_linked_role")))
    ebs_key = {"resource": {"aws_kms_key": {n: k for n, k in resources(stack, "aws_kms_key").items()
                                            if k["description"].endswith(": node root volumes")}}}
    uses = [s for s in policy_statements(ebs_key, "aws_kms_key") if s.get("Sid") == "ServiceRolesUse"]
    assert [s["Principal"] for s in uses] == [{"AWS": ["${aws_iam_service_linked_role." + role + ".arn}"]}]
    assert only(stack, "aws_autoscaling_group")["service_linked_role_arn"] == (
        "${aws_iam_service_linked_role." + role + ".arn}")


def test_log_groups_keep_the_configured_retention(stack: dict[str, Any], synth: Synth) -> None:
    retention = synth.environments[stack["//"]["metadata"]["stackName"]].config.observability.log_retention_days
    assert {g["retention_in_days"] for g in resources(stack, "aws_cloudwatch_log_group").values()} == {retention}


# --- WAF ---------------------------------------------------------------------------------------

def managed_groups(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    acl = only(stack, "aws_wafv2_web_acl")
    return {r["statement"]["managed_rule_group_statement"]["name"]: r["statement"]["managed_rule_group_statement"]
            for r in acl["rule"] if "managed_rule_group_statement" in r["statement"]}


def test_prod_alb_is_protected_by_aws_managed_rules_and_a_rate_limit(prod: dict[str, Any]) -> None:
    acl_name = next(iter(resources(prod, "aws_wafv2_web_acl")))
    association = only(prod, "aws_wafv2_web_acl_association")
    assert association["web_acl_arn"] == "${aws_wafv2_web_acl." + acl_name + ".arn}"
    assert association["resource_arn"].startswith("${aws_lb.")
    assert {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
            "AWSManagedRulesAmazonIpReputationList", "AWSManagedRulesAnonymousIpList"} <= set(managed_groups(prod))
    (rate,) = [r for r in only(prod, "aws_wafv2_web_acl")["rule"] if "rate_based_statement" in r["statement"]]
    assert rate["statement"]["rate_based_statement"]["limit"] == 2000 and "block" in rate["action"]


def test_waf_lets_cloud_hosted_third_party_providers_and_saml_posts_through(prod: dict[str, Any]) -> None:
    groups = managed_groups(prod)
    counted = {o["name"] for g in groups.values() for o in g.get("rule_action_override", [])
               if "count" in o["action_to_use"]}
    assert counted == {"HostingProviderIPList", "SizeRestrictions_BODY"}


def test_waf_logs_redact_credentials(prod: dict[str, Any]) -> None:
    logging = only(prod, "aws_wafv2_web_acl_logging_configuration")
    assert {f["single_header"]["name"] for f in logging["redacted_fields"]} == {"authorization", "cookie"}
    (destination,) = logging["log_destination_configs"]
    (group,) = [g for n, g in resources(prod, "aws_cloudwatch_log_group").items() if n in destination]
    assert group["name"].startswith("aws-waf-logs-")


def test_waf_is_optional_below_production(synth: Synth) -> None:
    assert not resources(synth.stack("dev"), "aws_wafv2_web_acl")
    assert resources(synth.stack("staging"), "aws_wafv2_web_acl")


# --- alarms ------------------------------------------------------------------------------------

EXPECTED_ALARMS = ("healthy-hosts", "5xx-rate", "response-time-p99", "node-cpu", "node-memory", "deep-health",
                   "db-cpu", "db-free-storage", "efs-io-limit",
                   # AD expires passwords after 42 days: WSO2's directory accounts are renewed daily.
                   "directory-accounts-failed", "directory-accounts-not-run")


def alarms_of(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    prefix = "obiam-" + stack["//"]["metadata"]["stackName"] + "-"
    found = {a["alarm_name"].removeprefix(prefix): a for a in resources(stack, "aws_cloudwatch_metric_alarm").values()}
    topic = "${aws_sns_topic." + next(iter(resources(stack, "aws_sns_topic"))) + ".arn}"
    for alarm in found.values():
        assert alarm["alarm_actions"] == [topic] and alarm["ok_actions"] == [topic]
    return found


def test_alarms_cover_the_ways_the_login_service_fails(stack: dict[str, Any]) -> None:
    database = {"db-cpu", "db-free-storage"}
    # A branch environment's database server is its base's: the base watches it, once for every branch.
    expected = set(EXPECTED_ALARMS) - (database if not resources(stack, "aws_db_instance") else set())
    assert set(alarms_of(stack)) == expected


def test_the_branch_base_watches_the_database_server_every_branch_shares(branch_base: dict[str, Any]) -> None:
    """And its directory admin's daily renewal, as every environment's (AD expires passwords after 42 days)."""
    assert set(alarms_of(branch_base)) == {"db-cpu", "db-free-storage", "directory-accounts-failed",
                                           "directory-accounts-not-run"}


def test_healthy_host_alarm_fires_below_the_group_minimum(stack: dict[str, Any]) -> None:
    (alarm,) = [a for a in resources(stack, "aws_cloudwatch_metric_alarm").values()
                if a.get("metric_name") == "HealthyHostCount"]
    assert alarm["comparison_operator"] == "LessThanThreshold"
    assert alarm["threshold"] == only(stack, "aws_autoscaling_group")["min_size"]
    assert alarm["treat_missing_data"] == "breaching"


def test_5xx_alarm_is_a_rate_not_a_count(stack: dict[str, Any]) -> None:
    (alarm,) = [a for a in resources(stack, "aws_cloudwatch_metric_alarm").values() if "metric_query" in a]
    (expression,) = [q for q in alarm["metric_query"] if q.get("return_data")]
    assert "/" in expression["expression"] and alarm["threshold"] == 5


def test_prod_alarms_reach_the_on_call_email(prod: dict[str, Any]) -> None:
    subscription = only(prod, "aws_sns_topic_subscription")
    assert (subscription["protocol"], subscription["endpoint"]) == ("email", "iam-oncall@bank.example.com")


def test_node_role_may_publish_metrics_only_to_its_namespace(stack: dict[str, Any]) -> None:
    (statement,) = [s for s in policy_statements(stack, "aws_iam_role_policy")
                    if "cloudwatch:PutMetricData" in as_list(s["Action"])]
    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "OBIAM/Nodes"}}
