"""CloudWatch log groups under Terraform: encrypted with the logs key, with the environment's retention.

Every log group of the environment is made here (`encrypted_log_group`), so every one follows one rule:
what the nodes ship, what AWS services would otherwise create themselves with no key and no expiry
(RDS log exports), and the WAF's, the directory's, the flow logs' and the directory-accounts function's.
Protection from `destroy` is the stack's StatefulProtection aspect (constructs/wso2_on_aws/protection.py)."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from constructs import Construct

from wso2_on_aws.security import Grantable


def encrypted_log_group(scope: Construct, id_: str, *, name: str, retention_days: int, kms_key_arn: str,
                        deletion_protection: bool) -> CloudwatchLogGroup:
    """One log group, in `scope` with construct id `id_` (which make its Terraform address: keep them)."""
    return CloudwatchLogGroup(
        scope, id_, name=name, retention_in_days=retention_days, kms_key_id=kms_key_arn,
        # Audit and access logs are evidence; production keeps them through a destroy.
        deletion_protection_enabled=deletion_protection)


@dataclass(frozen=True)
class EncryptedLogGroupsProps:
    group_names: tuple[str, ...]
    retention_days: int
    kms_key_arn: str
    prevent_destroy: bool


class EncryptedLogGroups(Construct):
    """Outputs: `arns` (one per group, e.g. for a role's write permission), `groups`. Grants: `grant_write`."""

    def __init__(self, scope: Construct, id_: str, props: EncryptedLogGroupsProps):
        super().__init__(scope, id_)
        self.arns: list[str] = []
        self.groups: list[CloudwatchLogGroup] = []
        for name in props.group_names:
            group = encrypted_log_group(self, name.rsplit("/", 1)[-1], name=name,
                                        retention_days=props.retention_days, kms_key_arn=props.kms_key_arn,
                                        deletion_protection=props.prevent_destroy)
            self.arns.append(group.arn)
            self.groups.append(group)

    def grant_write(self, role: Grantable) -> None:
        """Lets `role` write log events to these groups (the streams in them), and nothing else."""
        role.add_to_policy({"Sid": "ShipLogs", "Effect": "Allow",
                            "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                            "Resource": [f"{arn}:*" for arn in self.arns]})
