"""`obiam bootstrap-state`: the S3 bucket (and DynamoDB lock table) that hold Terraform state.

Idempotent: every setting is read first and written only when it differs, so a
second run changes nothing and says so.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import ClientError

from obiam.config import RemoteStateConfig
from obiam.ops.aws import OpsError, client, error_code, lookup

TLS_ONLY_SID = "DenyInsecureTransport"


def _tls_only_statement(bucket: str) -> dict[str, Any]:
    return {"Sid": TLS_ONLY_SID, "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def ensure_state_backend(aws: boto3.session.Session, state: RemoteStateConfig, region: str) -> list[str]:
    """Brings the state bucket (and lock table) to the toolkit's settings; returns what it changed."""
    s3 = client(aws, "s3", region)
    bucket = state.bucket
    changes: list[str] = []
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        code = error_code(error)
        if code in ("403", "AccessDenied"):
            raise OpsError(f"state bucket {bucket} exists but this account cannot use it (403): S3 bucket names "
                           "are global; choose another state.bucket") from None
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
        arguments: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**arguments)
        changes.append(f"created bucket {bucket} in {region}")

    # State history is how a bad apply is undone.
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        changes.append("turned on versioning")

    rule: dict[str, Any] = {"SSEAlgorithm": "aws:kms"}
    if state.kms_key_id:
        rule["KMSMasterKeyID"] = state.kms_key_id
    wanted = {"ApplyServerSideEncryptionByDefault": rule, "BucketKeyEnabled": True}
    current = lookup(lambda: s3.get_bucket_encryption(Bucket=bucket),
                     missing={"ServerSideEncryptionConfigurationNotFoundError"})
    rules: list[dict[str, Any]] = (current or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    if not rules or rules[0].get("ApplyServerSideEncryptionByDefault") != rule or not rules[0].get("BucketKeyEnabled"):
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [wanted]})
        changes.append("set default encryption to SSE-KMS" + (f" ({state.kms_key_id})" if state.kms_key_id else ""))

    block = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
             "RestrictPublicBuckets": True}
    current_block = lookup(lambda: s3.get_public_access_block(Bucket=bucket),
                           missing={"NoSuchPublicAccessBlockConfiguration"})
    if (current_block or {}).get("PublicAccessBlockConfiguration") != block:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
        changes.append("blocked all public access")

    policy_text = lookup(lambda: s3.get_bucket_policy(Bucket=bucket)["Policy"], missing={"NoSuchBucketPolicy"})
    policy: dict[str, Any] = json.loads(policy_text) if policy_text else {"Version": "2012-10-17", "Statement": []}
    statements = [s for s in policy.get("Statement", []) if s.get("Sid") != TLS_ONLY_SID]
    if _tls_only_statement(bucket) not in policy.get("Statement", []):
        # Other statements the bank added stay; only ours is (re)written.
        policy["Statement"] = [*statements, _tls_only_statement(bucket)]
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        changes.append("allowed TLS connections only (bucket policy)")

    if state.lock == "dynamodb" and state.dynamodb_table:
        changes += _ensure_lock_table(aws, state.dynamodb_table, region)
    return changes


def _ensure_lock_table(aws: boto3.session.Session, table: str, region: str) -> list[str]:
    dynamodb = client(aws, "dynamodb", region)
    changes = []
    if lookup(lambda: dynamodb.describe_table(TableName=table), missing={"ResourceNotFoundException"}) is None:
        # Terraform's S3 backend locks on a string hash key named LockID.
        dynamodb.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            SSESpecification={"Enabled": True})
        dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
        changes.append(f"created lock table {table}")
    backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    if backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus") != "ENABLED":
        dynamodb.update_continuous_backups(TableName=table,
                                           PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
        changes.append("turned on point-in-time recovery for the lock table")
    return changes
