"""`obiam restore` and `obiam restore-test`: the database and the artifact file system of one environment,
restored from its backups into another, fresh environment (never over the source).

Where the restore reads from: in the source's own region, the database is restored to a point in time
from its automated/continuous backups (RDS RestoreDBInstanceToPointInTime) and the file system from the
newest EFS recovery point in the source's vault at or before that time; in the source's backup copy region
(region loss) both come from the newest recovery points in the copy vault (RDS
RestoreDBInstanceFromDBSnapshot on the copied snapshot, AWS Backup StartRestoreJob for EFS).

The restored resources get the target environment's names (DB identifier, EFS creation token), so
`obiam verify --env <target>` finds them once the target's stack is deployed around them.
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
    names = Names(source.name)
    vault = names.backup_vault
    backup_client = client(aws, "backup", region)
    backup_client.describe_backup_vault(BackupVaultName=vault)  # missing vault: one line, exit 2
    instance = None
    if region == source.config.region:
        instance = _point_in_time_source(aws, region, names.db_instance, point_in_time)
    snapshot = None
    if instance is None:
        snapshot = _newest_recovery_point(backup_client, vault, RDS_TYPE, point_in_time)["RecoveryPointArn"]
    file_system = _newest_recovery_point(backup_client, vault, EFS_TYPE, point_in_time)
    return Plan(source, target, region, vault, point_in_time, instance, snapshot, file_system)


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
                  "PerformanceMode": "generalPurpose"})
    return Started(target.db_instance, job["RestoreJobId"])


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
