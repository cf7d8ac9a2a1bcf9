"""`obiam rollout`: move the IAM nodes onto a launch template version, or leave them where they were.

Terraform writes new launch template versions (new user data, a new AMI, a new pack pin) but never
moves the group onto one (`ignore_changes = [launch_template]`, constructs/wso2_on_aws/node_group.py).
This command does, with an instance refresh whose *desired configuration* is the new version and
whose automatic rollback is on. AWS changes the group's own launch template only once the refresh
succeeds; a refresh that fails replaces the nodes started so far with the configuration the group
kept, so a bad version never becomes the group's (EC2 Auto Scaling API reference,
StartInstanceRefresh "DesiredConfiguration"; User Guide, "Undo changes with a rollback").

Rolling back a version that did roll out but misbehaves is a rollout of the earlier version:
`obiam rollout --env prod --version N`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from obiam.config import EnvironmentConfig
from obiam.naming import Names
from obiam.ops.aws import OpsError

# StartInstanceRefresh statuses after which nothing changes any more (Baking still may roll back).
FINAL = {"Successful", "Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"}
ACTIVE = {"Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking"}


@dataclass(frozen=True)
class RolloutResult:
    succeeded: bool
    lines: list[str]


@dataclass(frozen=True)
class GroupVersion:
    template_id: str
    version: str


def group_version(autoscaling: Any, names: Names) -> GroupVersion:
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[names.autoscaling_group])
    group = next(iter(groups["AutoScalingGroups"]), None)
    if group is None:
        raise OpsError(f"auto scaling group {names.autoscaling_group} not found: deploy the stack first")
    template = group.get("LaunchTemplate")
    if not template:
        raise OpsError(f"{names.autoscaling_group} has no launch template of its own; the toolkit's group always has")
    # No version in the answer means the group follows $Default (AWS's default when none is given).
    return GroupVersion(template["LaunchTemplateId"], str(template.get("Version", "$Default")))


def template_versions(ec2: Any, names: Names) -> tuple[str, int, int]:
    """The template's id, default and latest version numbers."""
    found = ec2.describe_launch_templates(LaunchTemplateNames=[names.launch_template])["LaunchTemplates"]
    if not found:
        raise OpsError(f"launch template {names.launch_template} not found: deploy the stack first")
    template = found[0]
    return template["LaunchTemplateId"], int(template["DefaultVersionNumber"]), int(template["LatestVersionNumber"])


def refresh_preferences(config: EnvironmentConfig) -> dict[str, Any]:
    minimum = config.nodes.instance_refresh_min_healthy_percentage
    return {
        # 100 keeps every node in service and starts new ones beside them (up to 150 %), so the
        # cluster never runs below its size during a rollout.
        "MinHealthyPercentage": minimum, "MaxHealthyPercentage": 150 if minimum == 100 else 100,
        "InstanceWarmup": config.nodes.health_check_grace_period,
        # A retried rollout leaves nodes that already run the version alone.
        "SkipMatching": True,
        "AutoRollback": True,
    }


def rollout(autoscaling: Any, ec2: Any, environment_name: str, config: EnvironmentConfig, *,
            version: int | None = None, wait: bool = True, poll_seconds: float = 30,
            timeout_seconds: float = 4 * 3600, sleep: Callable[[float], None] = time.sleep,
            log: Callable[[str], None] = print) -> RolloutResult:
    names = Names(environment_name)
    template_id, default, latest = template_versions(ec2, names)
    target = default if version is None else version
    if not 1 <= target <= latest:
        raise OpsError(f"--version {target}: {names.launch_template} has versions 1 to {latest}")
    current = group_version(autoscaling, names)
    if current.template_id != template_id:
        raise OpsError(f"{names.autoscaling_group} uses launch template {current.template_id}, not "
                       f"{names.launch_template} ({template_id}); fix that by hand before a rollout")
    running = autoscaling.describe_instance_refreshes(AutoScalingGroupName=names.autoscaling_group,
                                                      MaxRecords=1)["InstanceRefreshes"]
    if running and running[0]["Status"] in ACTIVE:
        raise OpsError(f"instance refresh {running[0]['InstanceRefreshId']} is {running[0]['Status']}; wait for "
                       "it, or cancel it (`aws autoscaling cancel-instance-refresh`), then run the rollout again")
    if current.version == str(target):
        return RolloutResult(True, [f"{names.autoscaling_group} already runs launch template version {target}; "
                                    "nothing to roll out"])
    refresh_id = autoscaling.start_instance_refresh(
        AutoScalingGroupName=names.autoscaling_group, Strategy="Rolling",
        DesiredConfiguration={"LaunchTemplate": {"LaunchTemplateId": template_id, "Version": str(target)}},
        Preferences=refresh_preferences(config))["InstanceRefreshId"]
    log(f"{names.autoscaling_group}: rolling from launch template version {current.version} to {target} "
        f"(instance refresh {refresh_id}, automatic rollback on)")
    if not wait:
        return RolloutResult(True, [f"started; follow it with `aws autoscaling describe-instance-refreshes "
                                    f"--auto-scaling-group-name {names.autoscaling_group}`"])
    waited, last = 0.0, ""
    while True:
        (refresh,) = autoscaling.describe_instance_refreshes(
            AutoScalingGroupName=names.autoscaling_group, InstanceRefreshIds=[refresh_id])["InstanceRefreshes"]
        status = refresh["Status"]
        progress = f"{status} {refresh.get('PercentageComplete', 0)}%"
        if progress != last:
            log(f"  {progress}" + (f": {refresh['StatusReason']}" if refresh.get("StatusReason") else ""))
            last = progress
        if status in FINAL:
            break
        if waited >= timeout_seconds:
            return RolloutResult(False, [f"instance refresh {refresh_id} still {status} after {waited:.0f} s; it "
                                         "goes on in AWS (with automatic rollback); check it again later"])
        sleep(poll_seconds)
        waited += poll_seconds
    now = group_version(autoscaling, names)
    reason = f" ({refresh['StatusReason']})" if refresh.get("StatusReason") else ""
    if status == "Successful":
        return RolloutResult(now.version == str(target), [
            f"{names.autoscaling_group} now runs launch template version {now.version}"])
    return RolloutResult(False, [
        f"the rollout to version {target} ended {status}{reason}; {names.autoscaling_group} runs launch template "
        f"version {now.version}" + ("" if status != "RollbackSuccessful"
                                    else f" again (AWS replaced the nodes it had started with version {target})")])
