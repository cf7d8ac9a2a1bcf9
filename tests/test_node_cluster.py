"""The compute and traffic half of WSO2's HA pattern: network, sticky ALB, node group, cluster, security groups.

Most tests run for prod and for the cheapest environment (the per-branch ephemeral one).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from conftest import Synth
from obiam import instance_types
from tfjson import as_list, only, policy_statements, ref, resources

pytestmark = pytest.mark.synth


def az_count(stack: dict[str, Any], synth: Synth) -> int:
    name = stack["//"]["metadata"]["stackName"]
    placed = synth.environments[name] if name in synth.environments else synth.bases[name]
    return placed.config.availability_zone_count


# What a branch environment reads of its base: the SSM parameter the base publishes.
PUBLISHED = "jsondecode(data.aws_ssm_parameter.branch-base.insecure_value)"


def subnet_refs(stack: dict[str, Any], tier: str, synth: Synth) -> list[str]:
    """The stack's own subnets of a tier, or, on a branch base, the base's (one per zone, in zone order)."""
    own = subnets(stack, tier)
    if own:
        return [ref("aws_subnet", n, "id") for n in own]
    environment = synth.environments[stack["//"]["metadata"]["stackName"]]
    assert environment.base is not None, "a stack without subnets stands on a branch base"
    return [f"${{element({PUBLISHED}.{tier}_subnet_ids, {i})}}"
            for i in range(environment.base.config.availability_zone_count)]


def subnets(stack: dict[str, Any], tier: str) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in resources(stack, "aws_subnet").items() if s["tags"]["obiam:tier"] == tier}


def security_group_name(stack: dict[str, Any], suffix: str) -> str:
    (name,) = [n for n, g in resources(stack, "aws_security_group").items() if g["name"].endswith(suffix)]
    return name


def sg_ref(stack: dict[str, Any], suffix: str) -> str:
    return ref("aws_security_group", security_group_name(stack, suffix), "id")


# --- network -----------------------------------------------------------------------------------

def test_prod_nodes_span_three_azs(prod: dict[str, Any]) -> None:
    asg = only(prod, "aws_autoscaling_group")
    assert len(subnets(prod, "app")) == 3
    assert sorted(asg["vpc_zone_identifier"]) == sorted(ref("aws_subnet", n, "id") for n in subnets(prod, "app"))


def test_nodes_span_at_least_two_azs(own_servers: dict[str, Any], synth: Synth) -> None:
    stack = own_servers
    asg = only(stack, "aws_autoscaling_group")
    zones = {subnets(stack, "app")[n.split(".")[1]]["availability_zone"] for n in asg["vpc_zone_identifier"]}
    assert len(zones) == az_count(stack, synth) >= 2


def test_each_tier_has_one_subnet_per_az_inside_the_vpc_without_overlap(servers_stack: dict[str, Any],
                                                                         synth: Synth) -> None:
    stack = servers_stack
    vpc = ipaddress.IPv4Network(only(stack, "aws_vpc")["cidr_block"])
    networks = []
    for tier in ("public", "app", "data"):
        tier_subnets = subnets(stack, tier)
        assert len(tier_subnets) == az_count(stack, synth)
        assert len({s["availability_zone"] for s in tier_subnets.values()}) == len(tier_subnets)
        networks += [ipaddress.IPv4Network(s["cidr_block"]) for s in tier_subnets.values()]
    assert all(n.subnet_of(vpc) for n in networks)
    assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1:])


def test_no_subnet_gives_instances_public_ips(stack: dict[str, Any]) -> None:
    assert all(s["map_public_ip_on_launch"] is False for s in resources(stack, "aws_subnet").values())


def test_prod_has_a_nat_gateway_in_every_az(prod: dict[str, Any]) -> None:
    nats = resources(prod, "aws_nat_gateway")
    assert len(nats) == 3
    assert {n["subnet_id"] for n in nats.values()} == {ref("aws_subnet", s, "id") for s in subnets(prod, "public")}


def test_app_subnets_leave_through_their_own_az_nat_in_prod(prod: dict[str, Any]) -> None:
    routes = {r["route_table_id"]: r for r in resources(prod, "aws_route").values() if "nat_gateway_id" in r}
    assert len({r["nat_gateway_id"] for r in routes.values()}) == 3


def test_per_branch_environments_share_their_bases_single_nat_gateway(cheapest: dict[str, Any],
                                                                       branch_base: dict[str, Any]) -> None:
    assert len(resources(branch_base, "aws_nat_gateway")) == 1
    assert not resources(cheapest, "aws_nat_gateway") and not resources(cheapest, "aws_vpc")


def test_branch_nodes_load_balancer_and_file_system_use_one_base_subnet_per_zone(cheapest: dict[str, Any],
                                                                                  synth: Synth) -> None:
    """A branch environment has no network of its own: its ALB, nodes and mount targets sit in the base's
    public, app and data subnets, one per zone, read from the base's state."""
    assert only(cheapest, "aws_lb")["subnets"] == subnet_refs(cheapest, "public", synth)
    assert only(cheapest, "aws_autoscaling_group")["vpc_zone_identifier"] == subnet_refs(cheapest, "app", synth)
    mounts = [m["subnet_id"] for m in resources(cheapest, "aws_efs_mount_target").values()]
    assert sorted(mounts) == sorted(subnet_refs(cheapest, "data", synth))
    assert len(mounts) >= 2


def test_data_subnets_have_no_route_out_of_the_vpc(servers_stack: dict[str, Any]) -> None:
    stack = servers_stack
    data_tables = {a["route_table_id"] for a in resources(stack, "aws_route_table_association").values()
                   if a["subnet_id"].split(".")[1] in subnets(stack, "data")}
    assert len(data_tables) == 1
    assert not [r for r in resources(stack, "aws_route").values() if r["route_table_id"] in data_tables]


def test_prod_vpc_has_flow_logs_to_encrypted_cloudwatch(prod: dict[str, Any]) -> None:
    flow = only(prod, "aws_flow_log")
    assert flow["traffic_type"] == "ALL"
    (group_name,) = [n for n, g in resources(prod, "aws_cloudwatch_log_group").items() if "flow-logs" in g["name"]]
    assert flow["log_destination"] == ref("aws_cloudwatch_log_group", group_name, "arn")
    assert resources(prod, "aws_cloudwatch_log_group")[group_name]["kms_key_id"].startswith("${aws_kms_key.")


def test_vpc_endpoints_for_s3_ssm_secrets_manager_and_logs(servers_stack: dict[str, Any]) -> None:
    stack = servers_stack
    endpoints = {e["service_name"].rsplit(".", 1)[-1]: e for e in resources(stack, "aws_vpc_endpoint").values()}
    assert {"s3", "ssm", "secretsmanager", "logs"} <= set(endpoints)
    assert endpoints["s3"]["vpc_endpoint_type"] == "Gateway"
    for service in ("ssm", "secretsmanager", "logs"):
        assert endpoints[service]["vpc_endpoint_type"] == "Interface"
        assert endpoints[service]["private_dns_enabled"] is True


def test_default_security_group_allows_nothing(servers_stack: dict[str, Any]) -> None:
    stack = servers_stack
    default = only(stack, "aws_default_security_group")
    assert default["ingress"] == [] and default["egress"] == []


def test_existing_vpc_is_used_as_given(variants: dict[str, dict[str, Any]]) -> None:
    stack = variants["existing-vpc"]
    assert not resources(stack, "aws_vpc") and not resources(stack, "aws_subnet")
    assert only(stack, "aws_autoscaling_group")["vpc_zone_identifier"] == [
        "subnet-0b000000000000001", "subnet-0b000000000000002"]
    assert only(stack, "aws_lb")["subnets"] == ["subnet-0a000000000000001", "subnet-0a000000000000002"]
    mounts = sorted(m["subnet_id"] for m in resources(stack, "aws_efs_mount_target").values())
    assert mounts == ["subnet-0c000000000000001", "subnet-0c000000000000002"]


# --- load balancer -----------------------------------------------------------------------------

def test_alb_is_internet_facing_in_the_public_subnets(stack: dict[str, Any], synth: Synth) -> None:
    alb = only(stack, "aws_lb")
    assert alb["load_balancer_type"] == "application" and alb["internal"] is False
    assert sorted(alb["subnets"]) == sorted(subnet_refs(stack, "public", synth))


def test_internal_alb_sits_in_the_app_subnets(variants: dict[str, dict[str, Any]]) -> None:
    stack = variants["internal-alb"]
    alb = only(stack, "aws_lb")
    assert alb["internal"] is True
    assert sorted(alb["subnets"]) == sorted(ref("aws_subnet", n, "id") for n in subnets(stack, "app"))


def listeners(stack: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {listener["port"]: listener for listener in resources(stack, "aws_lb_listener").values()}


def test_https_listener_uses_the_certificate_and_a_tls12_forward_secret_policy(stack: dict[str, Any],
                                                                               synth: Synth) -> None:
    https = listeners(stack)[443]
    name = stack["//"]["metadata"]["stackName"]
    assert https["protocol"] == "HTTPS"
    assert https["certificate_arn"] == synth.environments[name].config.load_balancer.certificate_arn
    assert https["ssl_policy"] in ("ELBSecurityPolicy-TLS13-1-2-Res-2021-06", "ELBSecurityPolicy-FS-1-2-Res-2020-10")


def test_http_only_redirects_to_https(stack: dict[str, Any]) -> None:
    http = listeners(stack)[80]
    (action,) = http["default_action"]
    assert action["type"] == "redirect"
    assert action["redirect"] == {"protocol": "HTTPS", "port": "443", "status_code": "HTTP_301"}


def test_alb_drops_invalid_header_fields(stack: dict[str, Any]) -> None:
    assert only(stack, "aws_lb")["drop_invalid_header_fields"] is True


def test_prod_alb_has_deletion_protection_and_the_cheapest_has_none(prod: dict[str, Any],
                                                                    cheapest: dict[str, Any]) -> None:
    assert only(prod, "aws_lb")["enable_deletion_protection"] is True
    assert only(cheapest, "aws_lb")["enable_deletion_protection"] is False


def test_prod_alb_logs_to_a_private_tls_only_bucket(prod: dict[str, Any]) -> None:
    logs = only(prod, "aws_lb")["access_logs"]
    bucket_name = next(iter(resources(prod, "aws_s3_bucket")))
    assert logs["enabled"] is True and logs["bucket"] == ref("aws_s3_bucket", bucket_name, "bucket")
    block = only(prod, "aws_s3_bucket_public_access_block")
    assert all(block[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                                           "restrict_public_buckets"))
    deny = [s for s in policy_statements(prod, "aws_s3_bucket_policy") if s["Effect"] == "Deny"]
    assert deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    encryption = only(prod, "aws_s3_bucket_server_side_encryption_configuration")
    assert encryption["rule"][0]["apply_server_side_encryption_by_default"]["sse_algorithm"] == "AES256"


def test_prod_target_group_is_sticky(prod: dict[str, Any]) -> None:
    stickiness = only(prod, "aws_lb_target_group")["stickiness"]
    assert stickiness["enabled"] is True
    # WSO2's load-balancer examples stick on the application's session cookie.
    assert stickiness["type"] == "app_cookie" and stickiness["cookie_name"] == "JSESSIONID"
    assert stickiness["cookie_duration"] == 86400


def test_every_environment_target_group_is_sticky(synth: Synth) -> None:
    for name in synth.environments:
        assert only(synth.stack(name), "aws_lb_target_group")["stickiness"]["enabled"] is True, name


def test_target_group_speaks_https_to_the_servlet_port_with_offset(stack: dict[str, Any]) -> None:
    group = only(stack, "aws_lb_target_group")
    assert group["protocol"] == "HTTPS"
    assert group["port"] == 9443 + 3  # OB IAM packs ship with [server] offset = 3
    assert group["target_type"] == "instance"
    assert int(group["deregistration_delay"]) > 0


def test_load_balancer_checks_liveness_not_every_dependency(stack: dict[str, Any]) -> None:
    """carbon-health-check 1.2.5 (IS 5.11): with [carbon_health_check] enabled the health API tests
    every datasource and the primary user store, so one RDS fail-over would fail every node at once
    and the ASG (ELB health checks) would replace the whole fleet. The deep check feeds an alarm."""
    check = only(stack, "aws_lb_target_group")["health_check"]
    assert check["path"] == "/carbon/admin/login.jsp"
    alarms = {a["metric_name"]: a for a in resources(stack, "aws_cloudwatch_metric_alarm").values()
              if "metric_name" in a}
    deep = alarms["DeepHealth"]
    assert (deep["namespace"], deep["statistic"], deep["threshold"]) == ("OBIAM/Nodes", "Minimum", 1)
    assert deep["treat_missing_data"] == "breaching"
    assert check["protocol"] == "HTTPS" and check["matcher"] == "200"
    assert 10 <= check["interval"] <= 60 and check["timeout"] < check["interval"]
    assert 2 <= check["healthy_threshold"] <= 5 and 2 <= check["unhealthy_threshold"] <= 5


def test_health_check_api_is_hidden_from_internet_clients(stack: dict[str, Any]) -> None:
    rule = only(stack, "aws_lb_listener_rule")
    https_name = next(n for n, listener in resources(stack, "aws_lb_listener").items() if listener["port"] == 443)
    assert rule["listener_arn"] == ref("aws_lb_listener", https_name, "arn")
    assert rule["condition"][0]["path_pattern"]["values"] == ["/api/health-check/*"]
    (action,) = rule["action"]
    assert action["type"] == "fixed-response" and action["fixed_response"]["status_code"] in ("403", "404")


def test_no_listener_forwards_a_client_certificate_wso2_cannot_read(synth: Synth) -> None:
    """financial-open-banking 3.0.0 TokenFilter URL-decodes the certificate header (java.net.URLDecoder:
    '+' becomes ' ') and CertificateUtils.removeIllegalBase64Characters deletes spaces; the ALB's
    X-Amzn-Mtls-Clientcert leaves '+' unencoded (ELB User Guide, "Mutual authentication with TLS")."""
    for name in synth.environments:
        assert "mutual_authentication" not in listeners(synth.stack(name))[443], name


# --- node group --------------------------------------------------------------------------------

def test_nodes_have_at_least_4_gib_of_memory(synth: Synth) -> None:
    for name in synth.environments:
        instance_type = only(synth.stack(name), "aws_launch_template")["instance_type"]
        assert instance_types.MEMORY_MIB[instance_type] >= 4096, (name, instance_type)


def test_root_volume_is_encrypted_gp3_of_at_least_10_gib(stack: dict[str, Any]) -> None:
    (device,) = only(stack, "aws_launch_template")["block_device_mappings"]
    ebs = device["ebs"]
    assert ebs["volume_type"] == "gp3" and ebs["volume_size"] >= 10
    assert ebs["encrypted"] == "true" and ebs["kms_key_id"].startswith("${aws_kms_key.")


def test_imdsv2_is_required(stack: dict[str, Any]) -> None:
    options = only(stack, "aws_launch_template")["metadata_options"]
    assert options["http_tokens"] == "required" and options["http_put_response_hop_limit"] == 1


def test_nodes_have_no_public_ip(stack: dict[str, Any]) -> None:
    (interface,) = only(stack, "aws_launch_template")["network_interfaces"]
    assert interface["associate_public_ip_address"] == "false"


def test_nodes_run_with_an_instance_profile(stack: dict[str, Any]) -> None:
    profile_name = next(iter(resources(stack, "aws_iam_instance_profile")))
    assert only(stack, "aws_launch_template")["iam_instance_profile"]["arn"] == ref(
        "aws_iam_instance_profile", profile_name, "arn")


def test_the_node_image_is_the_pinned_one(stack: dict[str, Any], synth: Synth) -> None:
    """A new Amazon Linux image must not roll the fleet on the next unrelated apply (aws-apply-review
    finding 5): the image is the config's pinned id, never looked up at plan time."""
    ami = synth.environments[stack["//"]["metadata"]["stackName"]].config.nodes.ami
    assert ami is not None and ami.id is not None
    assert only(stack, "aws_launch_template")["image_id"] == ami.id
    # The only parameter a stack may read is its branch base's outputs, never an image id.
    assert set(stack.get("data", {}).get("aws_ssm_parameter", {})) <= {"branch-base"}


def test_a_floating_image_is_resolved_from_the_configured_ssm_parameter(variants: dict[str, dict[str, Any]]) -> None:
    stack = variants["internal-alb"]  # nodes.ami.floating: true
    parameter = stack["data"]["aws_ssm_parameter"]["ami"]
    assert parameter["name"] == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    assert only(stack, "aws_launch_template")["image_id"] == "${data.aws_ssm_parameter.ami.insecure_value}"


def test_group_size_follows_the_config(stack: dict[str, Any], synth: Synth) -> None:
    nodes = synth.environments[stack["//"]["metadata"]["stackName"]].config.nodes
    asg = only(stack, "aws_autoscaling_group")
    assert (asg["min_size"], asg["desired_capacity"], asg["max_size"]) == (
        nodes.min_size, nodes.desired_capacity, nodes.max_size)


def test_prod_runs_at_least_two_nodes(synth: Synth) -> None:
    for name, environment in synth.environments.items():
        if environment.config.tier == "production":
            assert only(synth.stack(name), "aws_autoscaling_group")["min_size"] >= 2


def test_nodes_are_replaced_when_the_load_balancer_finds_them_unhealthy(stack: dict[str, Any]) -> None:
    asg = only(stack, "aws_autoscaling_group")
    assert asg["health_check_type"] == "ELB"
    assert asg["health_check_grace_period"] >= 600  # WSO2 takes minutes to start
    group = next(iter(resources(stack, "aws_lb_target_group")))
    assert asg["target_group_arns"] == [ref("aws_lb_target_group", group, "arn")]


def test_launch_template_changes_wait_for_a_rollout_that_keeps_capacity(prod: dict[str, Any], synth: Synth) -> None:
    """Terraform writes launch template versions; `obiam rollout` moves the group (tests/test_rollout.py),
    keeping every node in service while new ones start beside them."""
    from obiam.ops.rollout import refresh_preferences

    group = only(prod, "aws_autoscaling_group")
    assert "instance_refresh" not in group
    assert "launch_template" in group["lifecycle"]["ignore_changes"]
    preferences = refresh_preferences(synth.environments["prod"].config)
    assert preferences["MinHealthyPercentage"] == 100 and preferences["MaxHealthyPercentage"] > 100


def test_group_scales_with_target_tracking_and_reports_metrics(stack: dict[str, Any]) -> None:
    policy = only(stack, "aws_autoscaling_policy")
    assert policy["policy_type"] == "TargetTrackingScaling"
    assert policy["target_tracking_configuration"]["predefined_metric_specification"][
        "predefined_metric_type"] == "ASGAverageCPUUtilization"
    asg = only(stack, "aws_autoscaling_group")
    assert "GroupInServiceInstances" in asg["enabled_metrics"] and asg["metrics_granularity"] == "1Minute"
    assert asg["lifecycle"]["ignore_changes"] == ["desired_capacity", "launch_template"]


def test_launch_template_enables_detailed_monitoring(stack: dict[str, Any]) -> None:
    assert only(stack, "aws_launch_template")["monitoring"] == {"enabled": True}


# --- clustering --------------------------------------------------------------------------------

def test_every_instance_carries_the_discovery_tag(stack: dict[str, Any]) -> None:
    name = stack["//"]["metadata"]["stackName"]
    for spec in only(stack, "aws_launch_template")["tag_specifications"]:
        if spec["resource_type"] == "instance":
            assert spec["tags"]["obiam:cluster"] == f"obiam-{name}"
            # Default tags do not reach ASG instances; the launch template must carry them.
            assert spec["tags"]["Environment"] == name


def test_node_role_may_call_only_the_two_ec2_read_actions(stack: dict[str, Any]) -> None:
    actions = {a for s in policy_statements(stack, "aws_iam_role_policy") if s["Effect"] == "Allow"
               for a in as_list(s["Action"])}
    assert {a for a in actions if a.startswith("ec2:")} == {"ec2:DescribeInstances", "ec2:DescribeAvailabilityZones"}
    assert not [a for a in actions if a.endswith(":*") or a == "*"]


def test_cluster_port_is_open_between_nodes_only(stack: dict[str, Any]) -> None:
    nodes = sg_ref(stack, "-nodes")
    for kind in ("aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule"):
        rules = [r for r in resources(stack, kind).values() if r["from_port"] == 5701]
        assert len(rules) == 1
        assert rules[0]["security_group_id"] == nodes and rules[0]["referenced_security_group_id"] == nodes
        assert "cidr_ipv4" not in rules[0]


# --- security groups ---------------------------------------------------------------------------

def test_only_alb_is_open_to_the_internet(stack: dict[str, Any]) -> None:
    alb = sg_ref(stack, "-alb")
    open_rules = [r for r in resources(stack, "aws_vpc_security_group_ingress_rule").values()
                  if r.get("cidr_ipv4") == "0.0.0.0/0"]
    assert open_rules
    assert {r["security_group_id"] for r in open_rules} == {alb}
    assert {(r["from_port"], r["to_port"]) for r in open_rules} == {(443, 443), (80, 80)}


def test_alb_reaches_the_nodes_only_on_the_https_servlet_port(stack: dict[str, Any]) -> None:
    alb, nodes = sg_ref(stack, "-alb"), sg_ref(stack, "-nodes")
    egress = [r for r in resources(stack, "aws_vpc_security_group_egress_rule").values()
              if r["security_group_id"] == alb]
    assert [(r["referenced_security_group_id"], r["from_port"], r["to_port"]) for r in egress] == [
        (nodes, 9446, 9446)]
    into_nodes = [r for r in resources(stack, "aws_vpc_security_group_ingress_rule").values()
                  if r["security_group_id"] == nodes and r.get("referenced_security_group_id") != nodes]
    assert [(r["referenced_security_group_id"], r["from_port"]) for r in into_nodes] == [(alb, 9446)]


def test_node_egress_is_scoped_to_what_the_nodes_need(stack: dict[str, Any]) -> None:
    nodes = sg_ref(stack, "-nodes")
    egress = {(r.get("cidr_ipv4") or r["referenced_security_group_id"], r["from_port"])
              for r in resources(stack, "aws_vpc_security_group_egress_rule").values()
              if r["security_group_id"] == nodes}
    if resources(stack, "aws_directory_service_directory"):
        directory_name = next(iter(resources(stack, "aws_directory_service_directory")))
        directory_sg = ref("aws_directory_service_directory", directory_name, "security_group_id")
        db_sg = sg_ref(stack, "-db")
    else:  # a branch environment reaches its base's servers
        directory_sg = f"${{{PUBLISHED}.directory_security_group_id}}"
        db_sg = f"${{{PUBLISHED}.db_security_group_id}}"
    assert egress == {
        ("0.0.0.0/0", 443),
        (nodes, 5701),
        (sg_ref(stack, "-artifacts-nfs"), 2049),
        (db_sg, 3306),
        (directory_sg, 389),
    }
