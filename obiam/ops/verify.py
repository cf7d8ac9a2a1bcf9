"""`obiam verify`: after a deploy, does the live account hold the WSO2 HA invariants?

Resources are found by the names and tags the stack sets (obiam.naming), never by ids.
"""

from __future__ import annotations

from typing import Any

import boto3

from obiam.environments import BranchBase, Environment
from obiam.naming import Names, published_parameter
from obiam.ops.aws import OpsError, client, lookup
from obiam.ops.output import Check
from obiam.ops.rollout import group_version, template_versions


def verify(aws: boto3.session.Session, environment: Environment, region: str) -> list[Check]:
    names = Names(environment.name)
    # A branch on a base uses the base's database server and directory: those are the ones to check.
    servers = environment.name if environment.base is None else environment.base.name
    node_checks, node_zones = _nodes(aws, region, names, environment.config.nodes.min_size)
    return [
        *node_checks,
        _rollout(aws, region, names, environment),
        *_load_balancing(aws, region, names),
        _database(aws, region, Names(servers)),
        _artifact_file_system(aws, region, names, node_zones),
        _directory(aws, region, environment.config.directory.name, servers),
    ]


def verify_base(aws: boto3.session.Session, base: BranchBase, region: str) -> list[Check]:
    """A branch base: its database server and directory, and what it publishes for the branches."""
    names = Names(base.name)
    return [_database(aws, region, names), _directory(aws, region, base.config.directory.name, base.name),
            _published(aws, region, base)]


def _published(aws: boto3.session.Session, region: str, base: BranchBase) -> Check:
    name = published_parameter(base.name)
    parameter = lookup(lambda: client(aws, "ssm", region).get_parameter(Name=name)["Parameter"],
                       missing={"ParameterNotFound"})
    if parameter is None:
        return Check("branch outputs", False, f"{name} not found: branches cannot stand on {base.name}")
    function = Names(base.name).branch_databases_function
    found = lookup(lambda: client(aws, "lambda", region).get_function(FunctionName=function)["Configuration"],
                   missing={"ResourceNotFoundException"})
    state = found.get("State", "Active") if found else "missing"
    return Check("branch outputs", state == "Active", f"{name} published; {function} {state}")


def _nodes(aws: boto3.session.Session, region: str, names: Names, min_size: int) -> tuple[list[Check], set[str]]:
    autoscaling = client(aws, "autoscaling", region)
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[names.autoscaling_group])
    group = next(iter(groups["AutoScalingGroups"]), None)
    if group is None:
        return [Check("nodes", False, f"auto scaling group {names.autoscaling_group} not found")], set()
    in_service = [i for i in group["Instances"] if i["LifecycleState"] == "InService"]
    zones = {i["AvailabilityZone"] for i in in_service}
    minimum = max(group["MinSize"], min_size)
    return [
        Check("nodes in service", len(in_service) >= minimum, f"{len(in_service)} InService, minimum {minimum}"),
        Check("nodes across AZs", len(zones) >= 2, f"{len(zones)} AZ(s): {', '.join(sorted(zones)) or 'none'}"),
    ], zones


def _rollout(aws: boto3.session.Session, region: str, names: Names, environment: Environment) -> Check:
    """The group runs the launch template version the last deploy wrote (its default version), by number:
    a deploy writes versions, `obiam rollout` moves the group onto them."""
    try:
        current = group_version(client(aws, "autoscaling", region), names)
        _, default, _ = template_versions(client(aws, "ec2", region), names)
    except OpsError as missing:
        return Check("nodes on the deployed version", False, str(missing))
    if not current.version.isdigit():
        return Check("nodes on the deployed version", False,
                     f"the group follows {current.version}; rollbacks need a numbered version (redeploy the stack)")
    target = f"--branch {environment.branch}" if environment.branch else f"--env {names.environment}"
    rollout_hint = "" if current.version == str(default) else f": run `obiam rollout {target}`"
    return Check("nodes on the deployed version", current.version == str(default),
                 f"group on launch template version {current.version}, deployed version {default}{rollout_hint}")


def _load_balancing(aws: boto3.session.Session, region: str, names: Names) -> list[Check]:
    elb = client(aws, "elbv2", region)
    groups = lookup(lambda: elb.describe_target_groups(Names=[names.target_group])["TargetGroups"],
                    missing={"TargetGroupNotFound"}) or []
    if not groups:
        missing = f"target group {names.target_group} not found"
        return [Check("targets healthy", False, missing), Check("sticky sessions", False, missing)]
    arn = groups[0]["TargetGroupArn"]
    health = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    unhealthy = [f"{t['Target']['Id']}={t['TargetHealth']['State']}" for t in health
                 if t["TargetHealth"]["State"] != "healthy"]
    attributes = {a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]}
    sticky = attributes.get("stickiness.enabled") == "true"
    return [
        Check("targets healthy", bool(health) and not unhealthy,
              f"{len(health) - len(unhealthy)}/{len(health)} healthy" + (f"; {', '.join(unhealthy)}" if unhealthy
                                                                          else "")),
        # WSO2's HA guide: the load balancer must keep a client on one node.
        Check("sticky sessions", sticky,
              f"stickiness {attributes.get('stickiness.type', '-')}" if sticky else "stickiness is off"),
    ]


def _database(aws: boto3.session.Session, region: str, names: Names) -> Check:
    rds = client(aws, "rds", region)
    instances = lookup(lambda: rds.describe_db_instances(DBInstanceIdentifier=names.db_instance)["DBInstances"],
                       missing={"DBInstanceNotFound", "DBInstanceNotFoundFault"}) or []
    if not instances:
        return Check("database", False, f"DB instance {names.db_instance} not found")
    db = instances[0]
    return Check("database", db.get("MultiAZ") is True and db.get("DBInstanceStatus") == "available",
                 f"{db.get('Engine')} {db.get('DBInstanceStatus')}, "
                 f"{'Multi-AZ' if db.get('MultiAZ') else 'single-AZ'}")


def _artifact_file_system(aws: boto3.session.Session, region: str, names: Names, node_zones: set[str]) -> Check:
    efs = client(aws, "efs", region)
    systems = efs.describe_file_systems(CreationToken=names.artifact_file_system)["FileSystems"]
    if not systems:
        return Check("artifact file system", False, f"EFS {names.artifact_file_system} not found")
    fs = systems[0]
    targets = efs.describe_mount_targets(FileSystemId=fs["FileSystemId"])["MountTargets"]
    zones = {t.get("AvailabilityZoneName") for t in targets if t.get("LifeCycleState", "available") == "available"}
    # A node in an AZ without a mount target cannot mount the shared artifacts at all.
    uncovered = sorted(node_zones - zones)
    return Check("artifact file system", fs.get("Encrypted") is True and not uncovered and bool(zones),
                 f"{'encrypted' if fs.get('Encrypted') else 'NOT encrypted'}, mount targets in "
                 f"{', '.join(sorted(z for z in zones if z)) or 'no AZ'}"
                 + (f"; nodes in {', '.join(uncovered)} have none" if uncovered else ""))


def _directory(aws: boto3.session.Session, region: str, domain: str, owner: str) -> Check:
    """The directory of the stack named `owner`: domain names can repeat (per-branch environments
    without a base all use the template's), so it is the one whose Environment tag names the owner."""
    ds = client(aws, "ds", region)
    candidates = [d for d in ds.describe_directories()["DirectoryDescriptions"] if d.get("Name") == domain]
    directories = [d for d in candidates if _tags(ds, d["DirectoryId"]).get("Environment") == owner]
    if not directories:
        others = f" ({len(candidates)} of that name belong to other environments)" if candidates else ""
        return Check("directory", False, f"directory {domain} of {owner} not found{others}")
    directory = directories[0]
    addresses = directory.get("DnsIpAddrs", [])
    return Check("directory", directory.get("Stage") == "Active" and len(addresses) >= 2,
                 f"{directory['DirectoryId']}: {directory.get('Type')} {directory.get('Stage')}, "
                 f"DNS {', '.join(addresses) or 'none'}")


def _tags(ds: Any, directory_id: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for page in ds.get_paginator("list_tags_for_resource").paginate(ResourceId=directory_id):
        tags.update({tag["Key"]: tag["Value"] for tag in page.get("Tags", [])})
    return tags
