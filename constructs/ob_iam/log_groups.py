"""CloudWatch log groups under Terraform: encrypted with the logs key, with the environment's retention.

Used for what the nodes ship and for groups AWS services would otherwise create themselves with no
key and no expiry (RDS log exports), so every log of the environment follows one rule."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from constructs import Construct

from ob_iam.security import Grantable


@dataclass(frozen=True)
class EncryptedLogGroupsProps:
    group_names: tuple[str, ...]
    retention_days: int
    kms_key_arn: str
    prevent_destroy: bool = True


class EncryptedLogGroups(Construct):
    """Outputs: `arns` (one per group, e.g. for a role's write permission), `groups`."""

    def __init__(self, scope: Construct, id_: str, props: EncryptedLogGroupsProps):
        super().__init__(scope, id_)
        self.arns: list[str] = []
        self.groups: list[CloudwatchLogGroup] = []
        for name in props.group_names:
            group = CloudwatchLogGroup(
                self, name.rsplit("/", 1)[-1], name=name, retention_in_days=props.retention_days,
                kms_key_id=props.kms_key_arn,
                # Audit and access logs are evidence; production keeps them through a destroy.
                deletion_protection_enabled=props.prevent_destroy,
                lifecycle=TerraformResourceLifecycle(prevent_destroy=props.prevent_destroy))
            self.arns.append(group.arn)
            self.groups.append(group)

    def grant_write(self, role: Grantable) -> None:
        """Lets `role` write log events to these groups (the streams in them), and nothing else."""
        role.add_to_policy({"Sid": "ShipLogs", "Effect": "Allow",
                            "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                            "Resource": [f"{arn}:*" for arn in self.arns]})
