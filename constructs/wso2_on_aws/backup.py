"""AWS Backup for the stateful tier: the database and the artifact file system.

One vault per environment under its own KMS key, a copy vault (and key) in a second region, a plan of
snapshots on a fixed interval with copies to that vault and, optionally, to another account's vault, a
second plan of continuous backup (point-in-time recovery) for the database, and Vault Lock on both vaults.

Why two plans: a selection belongs to a plan, not to a rule, and AWS Backup takes a snapshot instead of
a continuous backup of a resource that does not support continuous backup (EFS), so a continuous rule in
the snapshot plan would add a second, differently retained series of file-system snapshots.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.backup_plan import (
    BackupPlan,
    BackupPlanRule,
    BackupPlanRuleCopyAction,
    BackupPlanRuleCopyActionLifecycle,
    BackupPlanRuleLifecycle,
)
from cdktf_cdktf_provider_aws.backup_selection import BackupSelection
from cdktf_cdktf_provider_aws.backup_vault import BackupVault
from cdktf_cdktf_provider_aws.backup_vault_lock_configuration import BackupVaultLockConfiguration
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from constructs import Construct

from obiam.choices import VaultLockMode
from wso2_on_aws.account import AccountContext
from wso2_on_aws.encryption_key import EncryptionKey, EncryptionKeyProps

# AWS managed policies for AWS Backup's service role (AWS Backup Developer Guide, "Managed policies").
SERVICE_ROLE_POLICIES = ("AWSBackupServiceRolePolicyForBackup", "AWSBackupServiceRolePolicyForRestores")


@dataclass(frozen=True)
class VaultLockProps:
    mode: VaultLockMode
    min_retention_days: int
    # compliance only: days until the lock becomes immutable (>= 3, the 72-hour cooling-off period).
    changeable_for_days: int | None = None


@dataclass(frozen=True)
class BackupProps:
    name_prefix: str
    vault_name: str
    role_name: str
    # ARNs of what holds data that cannot be derived from the code: the database, the file system.
    resource_arns: list[str]
    database_arn: str
    interval_hours: int
    retention_days: int
    # Continuous backup (point-in-time recovery) of the database, kept this many days (1-35); None: off.
    continuous_retention_days: int | None
    copy_region: str | None
    copy_retention_days: int
    copy_account_vault_arn: str | None
    lock: VaultLockProps | None
    copy_lock: VaultLockProps | None
    prevent_destroy: bool = True


def schedule_expression(interval_hours: int) -> str:
    """AWS Backup's cron (UTC): daily at 01:00, or every `interval_hours` on the hour. 01:00 keeps the daily
    snapshot clear of the database's automated-backup window (02:00-03:00), during which RDS defers it."""
    if interval_hours == 24:
        return "cron(0 1 * * ? *)"
    return f"cron(0 */{interval_hours} * * ? *)"


class Backup(Construct):
    """Outputs: `vault_arn`, `copy_vault_arn` (None without copy_region), `role_arn`."""

    def __init__(self, scope: Construct, id_: str, account: AccountContext, props: BackupProps):
        super().__init__(scope, id_)
        role = IamRole(self, "role", name=props.role_name, assume_role_policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"},
                           "Action": "sts:AssumeRole"}]}))
        for policy in SERVICE_ROLE_POLICIES:
            IamRolePolicyAttachment(self, f"role-{policy}", role=role.name,
                                    policy_arn=f"arn:{account.partition}:iam::aws:policy/service-role/{policy}")
        self.role_arn = role.arn
        shared = (props.copy_account_vault_arn.split(":")[4],) if props.copy_account_vault_arn else ()
        vault = self._vault("vault", account, props, region=None, lock=props.lock, shared_with_accounts=shared,
                            role_arn=role.arn)
        self.vault_arn = vault.arn
        self.copy_vault_arn: str | None = None
        copies: list[str] = []
        if props.copy_region is not None:
            copy_vault = self._vault("copy-vault", account, props, region=props.copy_region,
                                     lock=props.copy_lock, shared_with_accounts=shared,
                                     role_arn=role.arn)
            self.copy_vault_arn = copy_vault.arn
            copies.append(copy_vault.arn)
        if props.copy_account_vault_arn is not None:
            copies.append(props.copy_account_vault_arn)

        snapshots = BackupPlan(self, "plan", name=f"{props.name_prefix}-snapshots", rule=[BackupPlanRule(
            rule_name="snapshots", target_vault_name=vault.name, schedule=schedule_expression(props.interval_hours),
            # Start within an hour and finish within a day, or the job fails and the alarm says so.
            start_window=60, completion_window=24 * 60,
            lifecycle=BackupPlanRuleLifecycle(delete_after=props.retention_days),
            copy_action=[BackupPlanRuleCopyAction(
                destination_vault_arn=arn,
                lifecycle=BackupPlanRuleCopyActionLifecycle(delete_after=props.copy_retention_days))
                for arn in copies] or None,
        )])
        BackupSelection(self, "selection", name=f"{props.name_prefix}-stateful", plan_id=snapshots.id,
                        iam_role_arn=role.arn, resources=props.resource_arns)
        if props.continuous_retention_days is not None:
            continuous = BackupPlan(self, "continuous-plan", name=f"{props.name_prefix}-continuous", rule=[
                BackupPlanRule(rule_name="continuous", target_vault_name=vault.name, enable_continuous_backup=True,
                               schedule=schedule_expression(24), start_window=60, completion_window=24 * 60,
                               lifecycle=BackupPlanRuleLifecycle(delete_after=props.continuous_retention_days))])
            BackupSelection(self, "continuous-selection", name=f"{props.name_prefix}-database",
                            plan_id=continuous.id, iam_role_arn=role.arn, resources=[props.database_arn])

    def _vault(self, id_: str, account: AccountContext, props: BackupProps, *, region: str | None,
               lock: VaultLockProps | None, shared_with_accounts: tuple[str, ...],
               role_arn: str) -> BackupVault:
        where = region or account.region
        key = EncryptionKey(self, f"{id_}-key", account, EncryptionKeyProps(
            alias=f"{props.vault_name}" if region is None else f"{props.vault_name}-copy",
            description=f"{props.name_prefix}: AWS Backup vault in {where}", region=region,
            service_role_arns=(role_arn,), shared_with_accounts=shared_with_accounts))
        vault = BackupVault(self, id_, name=props.vault_name, kms_key_arn=key.arn, region=region,
                            # A protected vault is never emptied by Terraform; an unprotected one is, so a
                            # destroy of a development environment can finish.
                            force_destroy=not props.prevent_destroy)
        if lock is not None:
            BackupVaultLockConfiguration(
                self, f"{id_}-lock", backup_vault_name=vault.name, region=region,
                min_retention_days=lock.min_retention_days,
                changeable_for_days=lock.changeable_for_days if lock.mode == "compliance" else None)
        return vault
