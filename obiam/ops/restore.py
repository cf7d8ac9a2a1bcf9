"""`obiam restore` and `obiam restore-test`: the database and the artifact file system of one environment,
restored from its backups into another, fresh environment (never over the source).

Where the restore reads from: in the source's own region, the database is restored to a point in time
from its automated/continuous backups (RDS RestoreDBInstanceToPointInTime) and the file system from the
newest EFS recovery point in the source's vault at or before that time; in the source's backup copy region
(region loss) both come from the newest recovery points in the copy vault (RDS
RestoreDBInstanceFromDBSnapshot on the copied snapshot, AWS Backup StartRestoreJob for EFS).

The restored resources get the target environment's names (DB identifier, EFS creation token); the file
system is restored under the target's data key (alias obiam-<target>-data), so its stack can adopt it
(`terraform import`; a file system under another key would be replaced). The database keeps its
snapshot's key (RDS restores take no KmsKeyId): see the README, Restore. The source's node secret (WSO2's
[encryption] key, the keystore password, the consent portal's client secret) is copied into the
target's: the restored database and keystores are unreadable under any other. Both the key and the
secret must therefore exist before the restore (Restore, step 1).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from obiam.environments import Environment
from obiam.naming import Names
from obiam.ops.aws import OpsError, client, lookup

RDS_TYPE, EFS_TYPE = "RDS", "EFS"
NOT_FOUND = {"DBInstanceNotFound", "DBInstanceNotFoundFault"}


@dataclass(frozen=True)
class Plan:
    """What a restore will do, decided before anything is started."""

    source: Environment
    target: Environment
    region: str
    vault_name: str
    point_in_time: dt.datetime | None
    # The database: from the source instance's point-in-time backups, or from a snapshot recovery point.
    database_source_instance: str | None
    database_snapshot_arn: str | None
    file_system_recovery_point: dict[str, Any]
    target_key_arn: str

    def describe(self) -> list[str]:
        when = self.point_in_time.isoformat() if self.point_in_time else "the latest restorable time"
        database = (f"point-in-time restore of {self.database_source_instance} to {when}"
                    if self.database_source_instance else f"snapshot {self.database_snapshot_arn}")
        rp = self.file_system_recovery_point
        return [f"database {Names(self.target.name).db_instance}: {database}",
                f"file system {Names(self.target.name).artifact_file_system}: recovery point "
                f"{rp['RecoveryPointArn']} of {rp['CreationDate'].isoformat()} from vault {self.vault_name} "
                f"({self.region})"]


def plan_restore(aws: boto3.session.Session, source: Environment, target: Environment,
                 point_in_time: dt.datetime | None) -> Plan:
    """Checks everything a restore needs and chooses the recovery points; starts nothing."""
    if source.name == target.name:
        raise OpsError(f"--to-env {target.name} is the source environment: a restore never goes over the "
                       "environment it restores; allowed: another environment's name (its environments/<name>.yaml)")
    backup = source.config.backup
    if not backup.enabled:
        raise OpsError(f"{source.source}: backup.enabled is false, so {source.name} has no AWS Backup vault to "
                       "restore from")
    region = target.config.region
    if region not in (source.config.region, backup.copy_region):
        allowed = " or ".join(r for r in (source.config.region, backup.copy_region) if r)
        raise OpsError(f"{target.source}: region {region} holds no backups of {source.name}; allowed: {allowed} "
                       f"(the source's region or its backup.copy_region)")
    if point_in_time is not None and point_in_time > dt.datetime.now(dt.UTC):
        raise OpsError(f"--point-in-time {point_in_time.isoformat()} is in the future")
    _refuse_existing(aws, target, region)
    target_key = _prepared_target(aws, source, target, region)
    names = Names(source.name)
    vault = names.backup_vault
    backup_client = client(aws, "backup", region)
    backup_client.describe_backup_vault(BackupVaultName=vault)  # missing vault: one line, exit 2
    instance = None
    if region == source.config.region:
        instance = _point_in_time_source(aws, region, names.db_instance, point_in_time)
    snapshot, snapshot_key = None, None
    if instance is None:
        point = _newest_recovery_point(backup_client, vault, RDS_TYPE, point_in_time)
        snapshot, snapshot_key = point["RecoveryPointArn"], point.get("EncryptionKeyArn")
    file_system = _newest_recovery_point(backup_client, vault, EFS_TYPE, point_in_time)
    _target_names_the_database_key(aws, region, target, instance, snapshot_key)
    return Plan(source, target, region, vault, point_in_time, instance, snapshot, file_system, target_key)


def _target_names_the_database_key(aws: boto3.session.Session, region: str, target: Environment,
                                   instance: str | None, snapshot_key: str | None) -> None:
    """RDS restores keep the key of their source (the instance's, or the recovery point's EncryptionKeyArn),
    and a DB instance under another key than its stack names is replaced: so the target file must name
    that key (database.restored_kms_key_arn) before anything starts."""
    key = snapshot_key
    if instance is not None:
        key = client(aws, "rds", region).describe_db_instances(
            DBInstanceIdentifier=instance)["DBInstances"][0].get("KmsKeyId")
    if key and target.config.database.restored_kms_key_arn != key:
        raise OpsError(f"{target.source}: the restored database will keep the key {key} (RDS restores keep their "
                       f"source's), so its stack must name it: set database.restored_kms_key_arn: {key}")


def adoption_commands(target: str, stack: dict[str, Any], database_identifier: str,
                      file_system_id: str) -> list[list[str]]:
    """The `terraform import` commands that put the restored database and file system into the target's
    state, so its deploy builds around them instead of creating new ones (or failing on the names)."""
    directory = f"-chdir=cdktf.out/stacks/{target}"
    (database,) = stack["resource"]["aws_db_instance"]
    (file_system,) = stack["resource"]["aws_efs_file_system"]
    return [["terraform", directory, "init", "-input=false"],
            ["terraform", directory, "import", "-input=false", f"aws_db_instance.{database}", database_identifier],
            ["terraform", directory, "import", "-input=false", f"aws_efs_file_system.{file_system}",
             file_system_id]]


def restored_file_system_id(aws: boto3.session.Session, plan: Plan) -> str:
    found = client(aws, "efs", plan.region).describe_file_systems(
        CreationToken=Names(plan.target.name).artifact_file_system)["FileSystems"]
    if not found:
        raise OpsError(f"the restored file system {Names(plan.target.name).artifact_file_system} is not there")
    return str(found[0]["FileSystemId"])


def _prepared_target(aws: boto3.session.Session, source: Environment, target: Environment, region: str) -> str:
    """The target's data key ARN, once its key, its node secret and the source's node secret are there."""
    names = Names(target.name)
    alias = f"alias/{names.prefix}-data"
    key = lookup(lambda: client(aws, "kms", region).describe_key(KeyId=alias)["KeyMetadata"],
                 missing={"NotFoundException"})
    secrets = client(aws, "secretsmanager", region)
    missing = [what for what, found in (
        (f"its data key ({alias})", key is not None),
        (f"its node secret ({names.node_secret})", _secret_exists(secrets, names.node_secret)),
    ) if not found]
    if missing:
        raise OpsError(f"{target.name} is not prepared for a restore in {region}: {' and '.join(missing)} must exist "
                       "first, so the restored file system is encrypted with the key its stack names and WSO2 "
                       "finds its encryption key (README, Restore, step 1)")
    source_secret = Names(source.name).node_secret
    if not _secret_exists(secrets, source_secret):
        raise OpsError(f"{source_secret} is not in {region}: without the source's WSO2 encryption key the restored "
                       "data cannot be read (the node secret is replicated to backup.copy_region)")
    assert key is not None
    return str(key["Arn"])


def _secret_exists(secrets: Any, name: str) -> bool:
    return lookup(lambda: secrets.describe_secret(SecretId=name), missing={"ResourceNotFoundException"}) is not None


def _refuse_existing(aws: boto3.session.Session, target: Environment, region: str) -> None:
    names = Names(target.name)
    rds = client(aws, "rds", region)
    found = lookup(lambda: rds.describe_db_instances(DBInstanceIdentifier=names.db_instance)["DBInstances"],
                   missing=NOT_FOUND)
    if found:
        raise OpsError(f"DB instance {names.db_instance} already exists in {region}: a restore goes into a fresh "
                       f"environment only; destroy {target.name} first or choose another --to-env")
    efs = client(aws, "efs", region)
    if efs.describe_file_systems(CreationToken=names.artifact_file_system)["FileSystems"]:
        raise OpsError(f"file system {names.artifact_file_system} already exists in {region}: a restore goes into a "
                       f"fresh environment only; destroy {target.name} first or choose another --to-env")


def _point_in_time_source(aws: boto3.session.Session, region: str, identifier: str,
                          point_in_time: dt.datetime | None) -> str | None:
    """The source instance, when its point-in-time window covers the requested time."""
    rds = client(aws, "rds", region)
    found = lookup(lambda: rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"],
                   missing=NOT_FOUND)
    if not found:
        return None  # deleted with the region's data? then the snapshots in the vault are what is left
    latest = found[0].get("LatestRestorableTime")
    if point_in_time is not None and latest is not None and point_in_time > latest:
        raise OpsError(f"--point-in-time {point_in_time.isoformat()} is after {identifier}'s latest restorable time "
                       f"{latest.isoformat()} (RDS uploads transaction logs every 5 minutes)")
    return identifier


def _newest_recovery_point(backup_client: Any, vault: str, resource_type: str,
                           point_in_time: dt.datetime | None) -> dict[str, Any]:
    """The newest completed recovery point of a type at or before `point_in_time` (the vault is the
    environment's own, so every recovery point of a type in it is of that environment's one resource)."""
    arguments: dict[str, Any] = {"BackupVaultName": vault, "ByResourceType": resource_type}
    if point_in_time is not None:
        arguments["ByCreatedBefore"] = point_in_time
    points: list[dict[str, Any]] = []
    while True:
        page = backup_client.list_recovery_points_by_backup_vault(**arguments)
        points.extend(p for p in page.get("RecoveryPoints", []) if p.get("Status") == "COMPLETED"
                      and (point_in_time is None or p["CreationDate"] <= point_in_time))
        if not page.get("NextToken"):
            break
        arguments["NextToken"] = page["NextToken"]
    if not points:
        when = f" at or before {point_in_time.isoformat()}" if point_in_time else ""
        raise OpsError(f"vault {vault} holds no completed {resource_type} recovery point{when}")
    return max(points, key=lambda p: p["CreationDate"])


@dataclass(frozen=True)
class Started:
    database_identifier: str
    restore_job_id: str


def start_restore(aws: boto3.session.Session, plan: Plan, *, db_subnet_group: str | None) -> Started:
    target = Names(plan.target.name)
    rds = client(aws, "rds", plan.region)
    placement: dict[str, Any] = {"MultiAZ": True, "PubliclyAccessible": False, "CopyTagsToSnapshot": True,
                                 "DeletionProtection": False}
    if db_subnet_group:
        placement["DBSubnetGroupName"] = db_subnet_group
    # RDS restores keep the key of what they restore (the restore APIs take no KmsKeyId): the source's data
    # key in its region, the copy vault's key in the copy region. The target's stack adopts that key
    # (README, Restore, step 3); the file system below can be restored under the target's own.
    if plan.database_source_instance is not None:
        when = ({"RestoreTime": plan.point_in_time} if plan.point_in_time is not None
                else {"UseLatestRestorableTime": True})
        rds.restore_db_instance_to_point_in_time(SourceDBInstanceIdentifier=plan.database_source_instance,
                                                 TargetDBInstanceIdentifier=target.db_instance, **when, **placement)
    else:
        rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier=target.db_instance,
                                                 DBSnapshotIdentifier=plan.database_snapshot_arn, **placement)
    point = plan.file_system_recovery_point
    source_arn = point.get("ResourceArn", "")
    account = source_arn.split(":")[4] if source_arn.count(":") >= 5 else ""
    partition = source_arn.split(":")[1] if source_arn else "aws"
    job = client(aws, "backup", plan.region).start_restore_job(
        RecoveryPointArn=point["RecoveryPointArn"], ResourceType=EFS_TYPE,
        IamRoleArn=f"arn:{partition}:iam::{account}:role/{Names(plan.source.name).backup_role}",
        IdempotencyToken=str(uuid.uuid4()),
        # EFS restore metadata (AWS Backup Developer Guide, "Restoring an Amazon EFS file system"): a new file
        # system, encrypted, under the target's creation token so the target's tools find it by name.
        Metadata={"file-system-id": source_arn.rsplit("/", 1)[-1], "newFileSystem": "true",
                  "CreationToken": target.artifact_file_system, "Encrypted": "true",
                  "KmsKeyId": plan.target_key_arn, "PerformanceMode": "generalPurpose"})
    copy_node_secret(aws, plan)
    return Started(target.db_instance, job["RestoreJobId"])


def copy_node_secret(aws: boto3.session.Session, plan: Plan) -> None:
    """The source's node secret value into the target's (which its stack never overwrites: ignore_changes)."""
    secrets = client(aws, "secretsmanager", plan.region)
    value = secrets.get_secret_value(SecretId=Names(plan.source.name).node_secret)["SecretString"]
    secrets.put_secret_value(SecretId=Names(plan.target.name).node_secret, SecretString=value)


def wait_for_restore(aws: boto3.session.Session, plan: Plan, started: Started, *, timeout_seconds: float,
                     poll_seconds: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Waits until the database is available and the file-system restore job completed; the problems, if any."""
    rds, backup_client = client(aws, "rds", plan.region), client(aws, "backup", plan.region)
    deadline = time.monotonic() + timeout_seconds
    while True:
        db = rds.describe_db_instances(DBInstanceIdentifier=started.database_identifier)["DBInstances"][0]
        job = backup_client.describe_restore_job(RestoreJobId=started.restore_job_id)
        problems = []
        if job["Status"] in ("ABORTED", "FAILED"):
            problems.append(f"file-system restore job {started.restore_job_id} {job['Status']}: "
                            f"{job.get('StatusMessage', '')}")
        if db.get("DBInstanceStatus") in ("failed", "incompatible-restore", "incompatible-parameters"):
            problems.append(f"database {started.database_identifier} is {db['DBInstanceStatus']}")
        if problems:
            return problems
        if db.get("DBInstanceStatus") == "available" and job["Status"] == "COMPLETED":
            return []
        if time.monotonic() >= deadline:
            return [f"not restored within {timeout_seconds:.0f} s: database {db.get('DBInstanceStatus')}, "
                    f"file-system restore job {job['Status']}"]
        sleep(poll_seconds)
