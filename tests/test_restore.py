"""`obiam restore` and `obiam restore-test` against moto, with botocore's Stubber for AWS Backup calls moto lacks.

moto 5.2.5 implements RDS's RestoreDBInstanceToPointInTime, RestoreDBInstanceFromDBSnapshot and EFS, and of
AWS Backup only vaults, plans, tags, vault lock and report plans: ListRecoveryPointsByBackupVault,
StartRestoreJob and DescribeRestoreJob are not implemented (moto/backup/responses.py), so exactly those
three calls go through a Stubber and every other call through moto. The EFS file system an AWS Backup restore
job creates is therefore created in moto by the test, as the job would. Cost: about 1 s (no synthesis).
"""

# The moto fixtures (`mocked`, `shared_session`) are test_operations.py's, imported; test parameters named
# after them are those fixtures, not redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from test_operations import MOTO_ACCOUNT, REGION, deploy, environment, mocked, shared_session  # noqa: F401
from typer.testing import CliRunner

from obiam.cli import app
from obiam.environments import Environment
from obiam.naming import Names
from obiam.ops import aws, reap, restore
from obiam.ops.aws import OpsError

COPY_REGION = "eu-west-1"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
EFS_SOURCE = f"arn:aws:elasticfilesystem:{REGION}:{MOTO_ACCOUNT}:file-system/fs-0123456789abcdef0"


def source_env() -> Environment:
    return environment("prod", backup={"copy_region": COPY_REGION, "lock": "governance"})


def target_env(name: str = "dr", region: str = REGION, restored_key: str | None = None) -> Environment:
    zones = {"availability_zones": [f"{region}a", f"{region}b"]}
    certificate = f"arn:aws:acm:{region}:{MOTO_ACCOUNT}:certificate/0b7c2d6e-4a1f-4c3e-9d2b-5e6f7a8b9c0d"
    return environment(name, region=region, load_balancer={"certificate_arn": certificate},
                       backup={"copy_region": None}, database={"restored_kms_key_arn": restored_key}, **zones)


def recovery_point(resource_type: str, created: dt.datetime, arn: str, key: str | None = None) -> dict[str, Any]:
    point = {"RecoveryPointArn": arn, "ResourceType": resource_type, "Status": "COMPLETED", "CreationDate": created,
             "ResourceArn": EFS_SOURCE if resource_type == "EFS" else f"arn:aws:rds:{REGION}:{MOTO_ACCOUNT}:db:x"}
    if key is not None:
        point["EncryptionKeyArn"] = key
    return point


class BackupStub:
    """The AWS Backup client, stubbed for the calls moto lacks; moto answers DescribeBackupVault."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, session: Any, region: str = REGION):
        real_client = aws.client
        self.client = real_client(session, "backup", region)
        self.stubber = Stubber(self.client)
        # A Stubber answers every call of its client; DescribeBackupVault, which moto implements, goes to moto.
        monkeypatch.setattr(self.client, "describe_backup_vault",
                            real_client(session, "backup", region).describe_backup_vault)
        monkeypatch.setattr(restore, "client", lambda s, service, r=None: self.client if service == "backup"
                            else real_client(s, service, r))
        self.stubber.activate()

    def recovery_points(self, resource_type: str, points: list[dict[str, Any]], before: dt.datetime | None = None,
                        vault: str = "obiam-prod-backups") -> None:
        expected: dict[str, Any] = {"BackupVaultName": vault, "ByResourceType": resource_type}
        if before is not None:
            expected["ByCreatedBefore"] = before
        self.stubber.add_response("list_recovery_points_by_backup_vault", {"RecoveryPoints": points}, expected)

    def restore_job(self, recovery_point_arn: str, target: str = "dr") -> None:
        self.stubber.add_response("start_restore_job", {"RestoreJobId": "job-1"}, {
            "RecoveryPointArn": recovery_point_arn, "ResourceType": "EFS",
            "IamRoleArn": f"arn:aws:iam::{MOTO_ACCOUNT}:role/obiam-prod-backup", "IdempotencyToken": ANY,
            "Metadata": {"file-system-id": "fs-0123456789abcdef0", "newFileSystem": "true",
                         "CreationToken": f"obiam-{target}-artifacts", "Encrypted": "true",
                         "KmsKeyId": ANY, "PerformanceMode": "generalPurpose"}})


def source_database(session: Any, region: str = REGION) -> str:
    """prod's database, encrypted with prod's data key (whose ARN it returns: a restore keeps it)."""
    key = session.client("kms", region_name=region).create_key(Description="obiam-prod: data")["KeyMetadata"]["Arn"]
    session.client("rds", region_name=region).create_db_instance(
        DBInstanceIdentifier="obiam-prod-db", Engine="mysql", DBInstanceClass="db.m6i.large", MultiAZ=True,
        AllocatedStorage=20, MasterUsername="obiam_admin", MasterUserPassword="not-a-real-password-1",
        BackupRetentionPeriod=35, StorageEncrypted=True, KmsKeyId=key)
    return str(key)


def source_vault(session: Any, region: str = REGION) -> None:
    session.client("backup", region_name=region).create_backup_vault(BackupVaultName="obiam-prod-backups")
    prepare_target(session, region)


SOURCE_NODE_SECRET = '{"encryption_key": "source-key", "keystore_password": "source-ks"}'


def prepare_target(session: Any, region: str = REGION, target: str = "dr") -> str:
    """Restore, step 1: the target's data key and node secret exist (the stack's -target apply made them),
    and the source's node secret is in the region (its own, or the replica in the copy region)."""
    kms = session.client("kms", region_name=region)
    key = kms.create_key(Description=f"obiam-{target}: data")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=f"alias/obiam-{target}-data", TargetKeyId=key)
    secrets = session.client("secretsmanager", region_name=region)
    secrets.create_secret(Name=f"obiam/{target}/wso2-node", SecretString='{"encryption_key": "fresh-target-key"}')
    secrets.create_secret(Name="obiam/prod/wso2-node", SecretString=SOURCE_NODE_SECRET)
    return str(key)


def test_restore_never_goes_over_its_source(mocked: Any) -> None:
    with pytest.raises(OpsError, match="is the source environment: a restore never goes over"):
        restore.plan_restore(mocked, source_env(), source_env(), None)


def test_restore_refuses_a_target_whose_database_exists(mocked: Any) -> None:
    mocked.client("rds").create_db_instance(
        DBInstanceIdentifier="obiam-dr-db", Engine="mysql", DBInstanceClass="db.m6i.large", AllocatedStorage=20,
        MasterUsername="obiam_admin", MasterUserPassword="not-a-real-password-1")
    with pytest.raises(OpsError, match="DB instance obiam-dr-db already exists in eu-west-2: a restore goes into a "
                                       "fresh environment only"):
        restore.plan_restore(mocked, source_env(), target_env(), None)


def test_restore_refuses_a_target_whose_file_system_exists(mocked: Any) -> None:
    mocked.client("efs").create_file_system(CreationToken="obiam-dr-artifacts")
    with pytest.raises(OpsError, match="file system obiam-dr-artifacts already exists"):
        restore.plan_restore(mocked, source_env(), target_env(), None)


def test_restore_refuses_a_region_without_backups_of_the_source(mocked: Any) -> None:
    with pytest.raises(OpsError, match="region us-east-1 holds no backups of prod; allowed: eu-west-2 or eu-west-1"):
        restore.plan_restore(mocked, source_env(), target_env(region="us-east-1"), None)


def test_in_region_restore_is_point_in_time_for_the_database_and_newest_recovery_point_for_efs(
        mocked: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    key = source_database(mocked)
    source_vault(mocked)
    stub = BackupStub(monkeypatch, mocked)
    moment = NOW - dt.timedelta(minutes=1)
    older, newer = NOW - dt.timedelta(hours=8), NOW - dt.timedelta(hours=4)
    stub.recovery_points("EFS", [recovery_point("EFS", older, "rp-old"), recovery_point("EFS", newer, "rp-new"),
                                 {**recovery_point("EFS", moment, "rp-running"), "Status": "CREATING"}], before=moment)
    stub.restore_job("rp-new")
    plan = restore.plan_restore(mocked, source_env(), target_env(restored_key=key), moment)
    assert plan.database_source_instance == "obiam-prod-db" and plan.database_snapshot_arn is None
    assert plan.file_system_recovery_point["RecoveryPointArn"] == "rp-new"
    started = restore.start_restore(mocked, plan, db_subnet_group=None)
    stub.stubber.assert_no_pending_responses()
    (db,) = mocked.client("rds").describe_db_instances(DBInstanceIdentifier="obiam-dr-db")["DBInstances"]
    # moto omits PubliclyAccessible when it is false.
    assert db["MultiAZ"] is True and not db.get("PubliclyAccessible")
    assert started.restore_job_id == "job-1"
    # The file system goes under the target's data key; WSO2's encryption key in the target is the source's.
    assert plan.target_key_arn == mocked.client("kms").describe_key(KeyId="alias/obiam-dr-data")["KeyMetadata"]["Arn"]
    assert mocked.client("secretsmanager").get_secret_value(SecretId="obiam/dr/wso2-node")[
        "SecretString"] == SOURCE_NODE_SECRET


def test_restore_refuses_a_target_that_does_not_name_the_key_the_restored_database_keeps(
        mocked: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """RestoreDBInstanceToPointInTime and RestoreDBInstanceFromDBSnapshot take no KmsKeyId (RDS API
    reference): the restored instance keeps its source's key, and aws_db_instance.kms_key_id forces a
    new instance, so the target's stack must name that key to adopt it."""
    key = source_database(mocked)
    source_vault(mocked)
    stub = BackupStub(monkeypatch, mocked)
    stub.recovery_points("EFS", [recovery_point("EFS", NOW - dt.timedelta(hours=1), "rp-1")])
    with pytest.raises(OpsError, match=f"set database.restored_kms_key_arn: {key}"):
        restore.plan_restore(mocked, source_env(), target_env(), None)


def test_restore_refuses_a_target_without_its_data_key_and_node_secret(mocked: Any) -> None:
    """A file system restored under another key would make the target's stack replace it (kms_key_id forces
    a new one), and WSO2 cannot read the data under another encryption key."""
    source_database(mocked)
    mocked.client("backup").create_backup_vault(BackupVaultName="obiam-prod-backups")
    with pytest.raises(OpsError, match=r"dr is not prepared for a restore in eu-west-2: its data key "
                                       r"\(alias/obiam-dr-data\) and its node secret \(obiam/dr/wso2-node\) must "
                                       r"exist first"):
        restore.plan_restore(mocked, source_env(), target_env(), None)


def test_a_point_in_time_before_every_recovery_point_is_refused(mocked: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    source_database(mocked)
    source_vault(mocked)
    stub = BackupStub(monkeypatch, mocked)
    moment = NOW - dt.timedelta(days=400)
    stub.recovery_points("EFS", [], before=moment)
    with pytest.raises(OpsError, match="vault obiam-prod-backups holds no completed EFS recovery point at or before"):
        restore.plan_restore(mocked, source_env(), target_env(), moment)


def test_region_loss_restore_uses_the_copies_in_the_copy_region(mocked: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the copy region only the copied snapshots exist; RDS restores a snapshot by its ARN."""
    rds = mocked.client("rds", region_name=COPY_REGION)
    key = source_database(mocked, COPY_REGION)  # moto snapshots an instance; the copy vault's snapshot stands in
    snapshot = rds.create_db_snapshot(DBInstanceIdentifier="obiam-prod-db",
                                      DBSnapshotIdentifier="awsbackup-copy-1")["DBSnapshot"]
    rds.delete_db_instance(DBInstanceIdentifier="obiam-prod-db", SkipFinalSnapshot=True)
    source_vault(mocked, COPY_REGION)
    stub = BackupStub(monkeypatch, mocked, COPY_REGION)
    when = NOW - dt.timedelta(hours=2)
    stub.recovery_points("RDS", [recovery_point("RDS", when, snapshot["DBSnapshotArn"], key)])
    stub.recovery_points("EFS", [recovery_point("EFS", when, "rp-copy")])
    stub.restore_job("rp-copy")
    plan = restore.plan_restore(mocked, source_env(), target_env(region=COPY_REGION, restored_key=key), None)
    assert plan.database_source_instance is None and plan.database_snapshot_arn == snapshot["DBSnapshotArn"]
    restore.start_restore(mocked, plan, db_subnet_group=None)
    assert rds.describe_db_instances(DBInstanceIdentifier="obiam-dr-db")["DBInstances"][0]["MultiAZ"] is True


def test_restore_test_restores_adopts_deploys_and_verifies_the_target(mocked: Any, monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Any) -> None:
    key = source_database(mocked)
    source_vault(mocked)
    stub = BackupStub(monkeypatch, mocked)
    stub.recovery_points("EFS", [recovery_point("EFS", NOW - dt.timedelta(hours=1), "rp-1")])
    stub.restore_job("rp-1")
    stub.stubber.add_response("describe_restore_job", {"RestoreJobId": "job-1", "Status": "COMPLETED"},
                              {"RestoreJobId": "job-1"})
    directory = tmp_path / "environments"
    directory.mkdir()
    import json

    for env in (source_env(), target_env(restored_key=key)):
        (directory / f"{env.name}.yaml").write_text(json.dumps(env.config.model_dump(exclude_none=True)))
    # The runbook's first step: the target's network and DB subnet group, deployed before the restore.
    ec2 = mocked.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.50.{i}.0/24", AvailabilityZone=f"{REGION}{z}")[
        "Subnet"]["SubnetId"] for i, z in enumerate("ab")]
    mocked.client("rds").create_db_subnet_group(DBSubnetGroupName="obiam-dr-db", SubnetIds=subnets,
                                                DBSubnetGroupDescription="data subnets")
    ran: list[list[str]] = []
    restored_fs: list[str] = []

    def commands(command: list[str], variables: dict[str, str]) -> int:
        ran.append(command)
        if command == ["npx", "cdktf", "synth"]:
            # The restore job reported COMPLETED: the file system it made (moto cannot run the job), and the
            # target's synthesized stack with the two stateful addresses the imports need.
            restored_fs.append(mocked.client("efs").create_file_system(
                CreationToken="obiam-dr-artifacts", Encrypted=True)["FileSystemId"])
            stack_dir = tmp_path / "cdktf.out" / "stacks" / "dr"
            stack_dir.mkdir(parents=True)
            (stack_dir / "cdk.tf.json").write_text(json.dumps({"resource": {
                "aws_db_instance": {"database_instance_D7FC2283": {}},
                "aws_efs_file_system": {"artifacts_fs_0D4E8C0B": {}}}}))
        if command[:3] == ["npx", "cdktf", "deploy"]:
            deploy(mocked, target_env(restored_key=key), restored=True)  # what `cdktf deploy dr` builds around
        return 0

    monkeypatch.setattr(reap, "run_command", commands)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["restore-test", "--env", "prod", "--to-env", "dr",
                                      "--environments-dir", str(directory)])
    assert ran == [["npx", "cdktf", "synth"],
                   ["terraform", "-chdir=cdktf.out/stacks/dr", "init", "-input=false"],
                   ["terraform", "-chdir=cdktf.out/stacks/dr", "import", "-input=false",
                    "aws_db_instance.database_instance_D7FC2283", "obiam-dr-db"],
                   ["terraform", "-chdir=cdktf.out/stacks/dr", "import", "-input=false",
                    "aws_efs_file_system.artifacts_fs_0D4E8C0B", restored_fs[0]],
                   ["npx", "cdktf", "deploy", "dr", "--auto-approve"]], result.output
    assert "FAIL" not in result.output and result.exit_code == 0, result.output
    assert "PASS  database: mysql available, Multi-AZ" in result.output
    assert "PASS  recovery time:" in result.output
    assert Names("dr").db_instance in result.output


def test_restore_cli_refuses_a_time_without_a_zone(tmp_path: Any) -> None:
    result = CliRunner().invoke(app, ["restore", "--env", "prod", "--to-env", "dr", "--point-in-time",
                                      "2026-03-01T09:30:00", "--environments-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "give the zone" in result.output and "Traceback" not in result.output
