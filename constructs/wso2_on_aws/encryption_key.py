"""A customer-managed KMS key with rotation, an alias and a scoped key policy."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from constructs import Construct

from wso2_on_aws.account import AccountContext
from wso2_on_aws.security import Grantable


@dataclass(frozen=True)
class EncryptionKeyProps:
    alias: str
    description: str
    # Lets CloudWatch Logs in this region encrypt log groups of this account with the key.
    allow_cloudwatch_logs: bool = False
    # AWS services that encrypt for this account with the key, e.g. cloudwatch.amazonaws.com
    # publishing alarms to an encrypted SNS topic.
    allow_services: tuple[str, ...] = field(default_factory=tuple)
    # Service-linked roles (e.g. the ASG's) that use the key on the account's behalf.
    service_role_arns: tuple[str, ...] = field(default_factory=tuple)
    deletion_window_in_days: int = 30
    # Another region than the stack's (provider 6 per-resource `region`), e.g. a backup copy vault's key.
    region: str | None = None
    # Other accounts that may use the key through AWS services: AWS Backup copies a snapshot of a resource
    # it does not fully manage (RDS) to another account only when that account may use the source key
    # (AWS Backup Developer Guide, "Creating backup copies across AWS accounts").
    shared_with_accounts: tuple[str, ...] = field(default_factory=tuple)


class EncryptionKey(Construct):
    """KMS key whose administration stays with the account and whose use is granted explicitly."""

    def __init__(self, scope: Construct, id_: str, account: AccountContext, props: EncryptionKeyProps):
        super().__init__(scope, id_)
        statements: list[dict[str, object]] = [{
            # Without this the key can become unmanageable; IAM policies then decide who uses it.
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{account.partition}:iam::{account.account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }]
        if props.allow_cloudwatch_logs:
            statements.append({
                "Sid": "CloudWatchLogsEncrypt",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{account.region}.amazonaws.com"},
                "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                "Resource": "*",
                "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                          f"arn:{account.partition}:logs:{account.region}:{account.account_id}:*"}},
            })
        if props.allow_services:
            statements.append({
                "Sid": "ServicesEncryptForThisAccount",
                "Effect": "Allow",
                "Principal": {"Service": list(props.allow_services)},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account.account_id}},
            })
        if props.service_role_arns:
            statements.append({
                "Sid": "ServiceRolesUse",
                "Effect": "Allow",
                "Principal": {"AWS": list(props.service_role_arns)},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                           "kms:DescribeKey"],
                "Resource": "*",
            })
            statements.append({
                "Sid": "ServiceRolesGrantForResources",
                "Effect": "Allow",
                "Principal": {"AWS": list(props.service_role_arns)},
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            })
        if props.shared_with_accounts:
            statements.append({
                "Sid": "OtherAccountsUseThroughServices",
                "Effect": "Allow",
                "Principal": {"AWS": [f"arn:{account.partition}:iam::{other}:root"
                                      for other in props.shared_with_accounts]},
                "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant", "kms:GenerateDataKey*",
                           "kms:ReEncrypt*"],
                "Resource": "*",
            })
        self.key = KmsKey(
            self, "key", region=props.region,
            description=props.description,
            enable_key_rotation=True,
            deletion_window_in_days=props.deletion_window_in_days,
            policy=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
        KmsAlias(self, "alias", name=f"alias/{props.alias}", target_key_id=self.key.key_id, region=props.region)
        self.arn = self.key.arn
        self.key_id = self.key.key_id
        self._region = props.region or account.region

    def grant_decrypt_via(self, role: Grantable, services: tuple[str, ...], sid: str) -> None:
        """Lets `role` decrypt with this key only when one of `services` (e.g. Secrets Manager, SSM) asks on its
        behalf; the key policy's AccountAdministers statement lets IAM policies decide, so this is both sides."""
        role.add_to_policy({"Sid": sid, "Effect": "Allow", "Action": "kms:Decrypt", "Resource": self.arn,
                            "Condition": {"StringEquals": {"kms:ViaService": [
                                f"{service}.{self._region}.amazonaws.com" for service in services]}}})
