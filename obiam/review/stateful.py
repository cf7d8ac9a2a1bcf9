"""Resource types whose deletion or replacement loses data or identity, and what forces it.

A replaced database is an empty database; a replaced KMS key cannot decrypt what the
old one encrypted; a replaced directory forgets every user. Reviews must not miss these.
"""

from __future__ import annotations

STATEFUL_TYPES = frozenset({
    "aws_db_instance",
    "aws_rds_cluster",
    "aws_rds_cluster_instance",
    "aws_efs_file_system",
    "aws_directory_service_directory",
    "aws_s3_bucket",
    "aws_kms_key",
    "aws_secretsmanager_secret",
    "aws_dynamodb_table",
    "aws_cloudwatch_log_group",
    "aws_ebs_volume",
    "random_password",
})

# Arguments that make the AWS provider replace (not update) the resource: used offline,
# where there is no plan to say so. From the provider's schema (ForceNew).
FORCES_REPLACEMENT: dict[str, frozenset[str]] = {
    "aws_db_instance": frozenset({"identifier", "engine", "username", "storage_encrypted", "kms_key_id",
                                  "db_name", "character_set_name", "availability_zone", "timezone"}),
    "aws_efs_file_system": frozenset({"creation_token", "encrypted", "kms_key_id", "performance_mode",
                                      "availability_zone_name"}),
    "aws_directory_service_directory": frozenset({"name", "password", "short_name", "size", "type", "edition",
                                                  "vpc_settings", "connect_settings"}),
    "aws_kms_key": frozenset({"customer_master_key_spec", "key_usage", "multi_region", "custom_key_store_id"}),
    "aws_s3_bucket": frozenset({"bucket", "bucket_prefix", "object_lock_enabled"}),
    "aws_secretsmanager_secret": frozenset({"name", "name_prefix"}),
    "aws_dynamodb_table": frozenset({"name"}),
    "aws_cloudwatch_log_group": frozenset({"name", "name_prefix"}),
    "random_password": frozenset({"length", "special", "override_special", "min_upper", "min_lower",
                                  "min_numeric", "min_special", "keepers"}),
}


def is_stateful(resource_type: str) -> bool:
    return resource_type in STATEFUL_TYPES
