"""Resource types whose deletion or replacement loses data or identity, and what forces it.

A replaced database is an empty database; a replaced KMS key cannot decrypt what the
old one encrypted; a replaced directory forgets every user. Reviews must not miss these.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

# Every AWS resource type that holds data or an identity nobody can recreate: relational and
# NoSQL databases, caches with persistence, search domains, file systems and volumes, object
# and archive stores, streams and queues holding messages, ledgers and time-series stores,
# keys, secrets, directories and user pools, registries and repositories, plus the random
# values this toolkit stores as credentials and keys. Patterns (fnmatch) cover a family whose
# members all hold data. A team adds or removes types with `--stateful` / `--stateless`.
STATEFUL_PATTERNS: tuple[str, ...] = (
    # relational and graph/document databases (RDS, Aurora, Neptune, DocumentDB, Redshift)
    "aws_db_instance", "aws_rds_cluster", "aws_rds_cluster_instance", "aws_rds_global_cluster",
    "aws_db_snapshot", "aws_db_cluster_snapshot", "aws_neptune_cluster", "aws_neptune_global_cluster",
    "aws_docdb_cluster", "aws_docdb_global_cluster", "aws_docdbelastic_cluster", "aws_redshift_cluster",
    "aws_redshift_cluster_snapshot", "aws_redshiftserverless_namespace", "aws_lightsail_database",
    "aws_dsql_cluster", "aws_qldb_ledger", "aws_timestreamwrite_database", "aws_timestreamwrite_table",
    "aws_timestreaminfluxdb_db_instance", "aws_keyspaces_keyspace", "aws_keyspaces_table",
    # key-value, caches with snapshots, search
    "aws_dynamodb_table", "aws_dynamodb_global_table", "aws_dax_cluster", "aws_elasticache_cluster",
    "aws_elasticache_replication_group", "aws_elasticache_global_replication_group",
    "aws_elasticache_serverless_cache", "aws_memorydb_cluster", "aws_opensearch_domain",
    "aws_opensearchserverless_collection", "aws_elasticsearch_domain",
    # file systems, volumes, object and archive stores, backups
    "aws_efs_file_system", "aws_fsx_*_file_system", "aws_fsx_*_volume", "aws_ebs_volume", "aws_ebs_snapshot",
    "aws_s3_bucket", "aws_s3_directory_bucket", "aws_s3tables_table_bucket", "aws_s3tables_table",
    "aws_glacier_vault", "aws_backup_vault", "aws_storagegateway_*_volume",
    # streams and queues hold messages not yet consumed
    "aws_kinesis_stream", "aws_msk_cluster", "aws_msk_serverless_cluster", "aws_mq_broker", "aws_sqs_queue",
    # keys, secrets, certificates, identities
    "aws_kms_key", "aws_kms_external_key", "aws_kms_replica_key", "aws_kms_replica_external_key",
    "aws_secretsmanager_secret", "aws_ssm_parameter", "aws_acmpca_certificate_authority",
    "aws_directory_service_directory", "aws_cognito_user_pool",
    # registries and repositories, logs kept for audit
    "aws_ecr_repository", "aws_codecommit_repository", "aws_cloudwatch_log_group",
    "aws_cloudtrail_event_data_store",
    # generated values the stacks store as credentials and encryption keys (a new random_id is a
    # new WSO2 encryption key: data encrypted with the old one cannot be read)
    "random_password", "random_id", "tls_private_key",
)
STATEFUL_TYPES = frozenset(p for p in STATEFUL_PATTERNS if "*" not in p)

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


@dataclass(frozen=True)
class StatefulPolicy:
    """Which resource types lose data when destroyed: the built-in list, plus and minus a team's own."""

    extra: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()

    def __call__(self, resource_type: str) -> bool:
        if any(fnmatchcase(resource_type, p) for p in self.exempt):
            return False
        return any(fnmatchcase(resource_type, p) for p in (*STATEFUL_PATTERNS, *self.extra))


DEFAULT_POLICY = StatefulPolicy()


def is_stateful(resource_type: str) -> bool:
    return DEFAULT_POLICY(resource_type)
