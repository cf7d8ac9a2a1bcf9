"""CloudWatch log groups the nodes ship to: encrypted, with the environment's retention."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from constructs import Construct


@dataclass(frozen=True)
class NodeLogsProps:
    group_names: tuple[str, ...]
    retention_days: int
    kms_key_arn: str
    prevent_destroy: bool = True


class NodeLogs(Construct):
    """Outputs: `arns` (one per group), for the node role's write permission."""

    def __init__(self, scope: Construct, id_: str, props: NodeLogsProps):
        super().__init__(scope, id_)
        self.arns: list[str] = []
        for name in props.group_names:
            group = CloudwatchLogGroup(
                self, name.rsplit("/", 1)[-1], name=name, retention_in_days=props.retention_days,
                kms_key_id=props.kms_key_arn,
                # Audit and access logs are evidence; production keeps them through a destroy.
                deletion_protection_enabled=props.prevent_destroy,
                lifecycle=TerraformResourceLifecycle(prevent_destroy=props.prevent_destroy))
            self.arns.append(group.arn)
