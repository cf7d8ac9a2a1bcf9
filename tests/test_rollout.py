"""`obiam rollout`: a failed rollout ends on the version the group had; a good one moves it on.

EC2 Auto Scaling's instance refresh cannot run here and moto 5.2.5 does not implement it
(start/describe/cancel/rollback_instance_refresh raise NotImplementedError), so the Auto Scaling
client is botocore's Stubber, which checks every request and answer against the published
service model. The behaviour the stubbed answers play back is AWS's documented one (cited per
test). The launch templates are moto's. About 3 s (moto's EC2 per test).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from configs import with_values

from obiam.environments import parse_environment
from obiam.naming import Names
from obiam.ops.aws import OpsError
from obiam.ops.rollout import rollout

REGION = "eu-west-2"
ENVIRONMENT = parse_environment("prod", with_values(), "environments/prod.yaml")
NAMES = Names("prod")


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """moto's EC2 with the stack's launch template at versions 1 and 2, 2 the default (a deploy wrote it)."""
    from moto import mock_aws

    for variable, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}.items():
        monkeypatch.setenv(variable, value)
    with mock_aws():
        client = boto3.client("ec2", region_name=REGION)
        template = client.create_launch_template(LaunchTemplateName=NAMES.launch_template, LaunchTemplateData={
            "ImageId": "ami-0123456789abcdef0", "InstanceType": "m6i.large"})["LaunchTemplate"]["LaunchTemplateId"]
        client.create_launch_template_version(LaunchTemplateId=template, SourceVersion="1",
                                              LaunchTemplateData={"ImageId": "ami-0fedcba9876543210"})
        client.modify_launch_template(LaunchTemplateId=template, DefaultVersion="2")
        yield client, template


def group(template: str, version: str) -> dict[str, Any]:
    return {"AutoScalingGroups": [{
        "AutoScalingGroupName": NAMES.autoscaling_group, "MinSize": 3, "MaxSize": 6, "DesiredCapacity": 3,
        "DefaultCooldown": 300, "AvailabilityZones": ["eu-west-2a", "eu-west-2b", "eu-west-2c"],
        "HealthCheckType": "ELB", "CreatedTime": dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        "LaunchTemplate": {"LaunchTemplateId": template, "LaunchTemplateName": NAMES.launch_template,
                           "Version": version}}]}


def refresh(status: str, percentage: int = 0, reason: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"InstanceRefreshId": "refresh-1", "AutoScalingGroupName": NAMES.autoscaling_group,
                             "Status": status, "PercentageComplete": percentage}
    if reason:
        found["StatusReason"] = reason
    return {"InstanceRefreshes": [found]}


def autoscaling_stub(template: str, *, statuses: list[dict[str, Any]], before: str = "1", after: str = "1",
                     earlier: dict[str, Any] | None = None, target: str = "2") -> tuple[Any, Stubber]:
    client = boto3.client("autoscaling", region_name=REGION)
    stub = Stubber(client)
    by_name = {"AutoScalingGroupNames": [NAMES.autoscaling_group]}
    stub.add_response("describe_auto_scaling_groups", group(template, before), by_name)
    stub.add_response("describe_instance_refreshes", earlier or {"InstanceRefreshes": []},
                      {"AutoScalingGroupName": NAMES.autoscaling_group, "MaxRecords": 1})
    if statuses:
        stub.add_response("start_instance_refresh", {"InstanceRefreshId": "refresh-1"}, {
            "AutoScalingGroupName": NAMES.autoscaling_group, "Strategy": "Rolling",
            "DesiredConfiguration": {"LaunchTemplate": {"LaunchTemplateId": template, "Version": target}},
            "Preferences": {"MinHealthyPercentage": 100, "MaxHealthyPercentage": 150, "InstanceWarmup": 900,
                            "SkipMatching": True, "AutoRollback": True}})
        for status in statuses:
            stub.add_response("describe_instance_refreshes", status, {
                "AutoScalingGroupName": NAMES.autoscaling_group, "InstanceRefreshIds": ["refresh-1"]})
        stub.add_response("describe_auto_scaling_groups", group(template, after), by_name)
    stub.activate()
    return client, stub


def run(autoscaling: Any, ec2_client: Any, **options: Any) -> Any:
    return rollout(autoscaling, ec2_client, "prod", ENVIRONMENT.config, sleep=lambda _: None, log=lambda _: None,
                   **options)


def test_a_rollout_moves_the_group_onto_the_deployed_version_only_when_the_refresh_succeeds(ec2: Any) -> None:
    """StartInstanceRefresh, DesiredConfiguration (EC2 Auto Scaling API reference): "Once the instance
    refresh succeeds, Amazon EC2 Auto Scaling updates the settings of the Auto Scaling group to reflect
    the new desired configuration." The request names version 2 by number with AutoRollback on."""
    client, template = ec2
    autoscaling, stub = autoscaling_stub(template, statuses=[refresh("InProgress", 30), refresh("Successful", 100)],
                                         after="2")
    result = run(autoscaling, client)
    stub.assert_no_pending_responses()
    assert result.succeeded and result.lines == [f"{NAMES.autoscaling_group} now runs launch template version 2"]


def test_a_failed_rollout_ends_on_the_version_the_group_had(ec2: Any) -> None:
    """EC2 Auto Scaling User Guide, "Undo changes with a rollback": a rollback "replaces the instances
    that have been deployed so far" with "the configuration that you last saved on the Auto Scaling
    group before starting the instance refresh": version 1, which the group never left."""
    client, template = ec2
    autoscaling, stub = autoscaling_stub(template, statuses=[
        refresh("InProgress", 33), refresh("RollbackInProgress", 33, "Instances failed to pass health checks"),
        refresh("RollbackSuccessful", 100, "Instances failed to pass health checks")], after="1")
    result = run(autoscaling, client)
    stub.assert_no_pending_responses()
    assert not result.succeeded
    assert result.lines == [
        "the rollout to version 2 ended RollbackSuccessful (Instances failed to pass health checks); "
        f"{NAMES.autoscaling_group} runs launch template version 1 again (AWS replaced the nodes it had started "
        "with version 2)"]


def test_rolling_back_a_rolled_out_version_is_a_rollout_of_the_earlier_one(ec2: Any) -> None:
    client, template = ec2
    autoscaling, stub = autoscaling_stub(template, before="2", target="1", after="1",
                                         statuses=[refresh("Successful", 100)])
    assert run(autoscaling, client, version=1).succeeded
    stub.assert_no_pending_responses()


def test_a_group_already_on_the_version_is_left_alone(ec2: Any) -> None:
    client, template = ec2
    autoscaling, stub = autoscaling_stub(template, before="2", statuses=[])
    result = run(autoscaling, client)
    stub.assert_no_pending_responses()  # no start_instance_refresh
    assert result.succeeded and "already runs launch template version 2" in result.lines[0]


def test_a_refresh_already_running_is_never_interrupted(ec2: Any) -> None:
    """Only one instance refresh runs per group; starting another would fail (or, as the provider does,
    cancel the running one)."""
    client, template = ec2
    autoscaling, _ = autoscaling_stub(template, statuses=[], earlier=refresh("RollbackInProgress", 50))
    with pytest.raises(OpsError, match="instance refresh refresh-1 is RollbackInProgress; wait for it"):
        run(autoscaling, client)


def test_a_version_the_template_does_not_have_is_refused(ec2: Any) -> None:
    client, _ = ec2
    with pytest.raises(OpsError, match=f"--version 7: {NAMES.launch_template} has versions 1 to 2"):
        run(boto3.client("autoscaling", region_name=REGION), client, version=7)
