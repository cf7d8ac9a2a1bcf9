"""A private, versioned, TLS-only S3 bucket that the load balancer writes its access logs to."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_aws.data_aws_elb_service_account import DataAwsElbServiceAccount
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleExpiration,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
)
from cdktf_cdktf_provider_aws.s3_bucket_ownership_controls import (
    S3BucketOwnershipControls,
    S3BucketOwnershipControlsRule,
)
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktf_cdktf_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import (
    S3BucketVersioningA,
    S3BucketVersioningVersioningConfiguration,
)
from constructs import Construct

from wso2_on_aws.account import AccountContext

LOG_PREFIX = "alb"


@dataclass(frozen=True)
class AccessLogBucketProps:
    bucket_name: str
    retention_days: int
    # Lets `destroy` remove a bucket that still holds logs (ephemeral environments only).
    force_destroy: bool = False


class AccessLogBucket(Construct):
    def __init__(self, scope: Construct, id_: str, account: AccountContext, props: AccessLogBucketProps):
        super().__init__(scope, id_)
        bucket = S3Bucket(self, "bucket", bucket=props.bucket_name, force_destroy=props.force_destroy)
        # One jsii round trip per attribute, however many resources use it.
        bucket_id, bucket_arn = bucket.id, bucket.arn
        self.bucket = bucket
        self.name = bucket.bucket
        self.prefix = LOG_PREFIX
        public_access = S3BucketPublicAccessBlock(
            self, "public-access", bucket=bucket_id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True)
        ownership = S3BucketOwnershipControls(
            self, "ownership", bucket=bucket_id,
            rule=S3BucketOwnershipControlsRule(object_ownership="BucketOwnerEnforced"))
        S3BucketVersioningA(self, "versioning", bucket=bucket_id,
                            versioning_configuration=S3BucketVersioningVersioningConfiguration(status="Enabled"))
        # ALB log delivery supports only SSE-S3: a KMS-encrypted bucket silently receives no logs.
        S3BucketServerSideEncryptionConfigurationA(
            self, "encryption", bucket=bucket_id,
            rule=[S3BucketServerSideEncryptionConfigurationRuleA(
                apply_server_side_encryption_by_default=(
                    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                        sse_algorithm="AES256")))])
        S3BucketLifecycleConfiguration(
            self, "retention", bucket=bucket_id,
            rule=[S3BucketLifecycleConfigurationRule(
                id="expire-access-logs", status="Enabled",
                filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                expiration=[S3BucketLifecycleConfigurationRuleExpiration(days=props.retention_days)],
                noncurrent_version_expiration=[S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(
                    noncurrent_days=30)],
                abort_incomplete_multipart_upload=[
                    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(days_after_initiation=7)],
            )])
        elb_account = DataAwsElbServiceAccount(self, "elb-account")
        log_objects = f"{bucket_arn}/{LOG_PREFIX}/AWSLogs/{account.account_id}/*"
        policy = S3BucketPolicy(self, "policy", bucket=bucket_id, policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                 "Resource": [bucket_arn, f"{bucket_arn}/*"],
                 "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
                # Regions before August 2022 deliver as the regional ELB account, later ones as the
                # log-delivery service principal; allowing both keeps the bucket region-agnostic.
                {"Sid": "ElbAccountWrites", "Effect": "Allow", "Principal": {"AWS": elb_account.arn},
                 "Action": "s3:PutObject", "Resource": log_objects},
                {"Sid": "ElbLogDeliveryWrites", "Effect": "Allow",
                 "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
                 "Action": "s3:PutObject", "Resource": log_objects},
            ],
        }))
        # What must exist before a load balancer is pointed here: ELB checks write access when access
        # logging is switched on ("Access Denied for bucket" otherwise).
        self.ready: list[ITerraformDependable] = [policy, public_access, ownership]
