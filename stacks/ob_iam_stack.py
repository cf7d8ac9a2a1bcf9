"""The WSO2 OB IAM deployment of one environment, composed from its config.

The stack only composes constructs and wires their outputs together; every AWS
decision lives in a construct under constructs/wso2_on_aws, every WSO2 fact in
obiam/wso2.py, and the node's boot script in obiam/bootstrap.
"""

from __future__ import annotations

from cdktf import Aspects, S3Backend, TerraformOutput, TerraformStack, Token
from cdktf_cdktf_provider_aws.data_aws_ssm_parameter import DataAwsSsmParameter
from cdktf_cdktf_provider_aws.provider import (
    AwsProvider,
    AwsProviderAssumeRole,
    AwsProviderDefaultTags,
    AwsProviderIgnoreTags,
)
from cdktf_cdktf_provider_random.provider import RandomProvider
from constructs import Construct

from obiam import bootstrap, database_engines, directory_service, lambda_package, wso2
from obiam.environments import Environment
from obiam.naming import CLUSTER_TAG_KEY, KEEP_UNTIL_TAG_KEY, Names
from stacks.assets import asset_file
from wso2_on_aws.access_log_bucket import AccessLogBucket, AccessLogBucketProps
from wso2_on_aws.account import AccountContext, account_context
from wso2_on_aws.alarms import Alarms, AlarmsProps
from wso2_on_aws.artifact_file_system import ArtifactFileSystem, ArtifactFileSystemProps
from wso2_on_aws.backup import Backup, BackupProps, VaultLockProps
from wso2_on_aws.database import Database, DatabaseProps
from wso2_on_aws.directory import Directory, DirectoryProps
from wso2_on_aws.directory_accounts import DirectoryAccounts, DirectoryAccountsProps
from wso2_on_aws.encryption_key import EncryptionKey, EncryptionKeyProps
from wso2_on_aws.load_balancer import LoadBalancer, LoadBalancerProps, StickinessProps
from wso2_on_aws.log_groups import EncryptedLogGroups, EncryptedLogGroupsProps
from wso2_on_aws.network import INTERFACE_ENDPOINTS, ExistingVpcProps, Network, NetworkProps
from wso2_on_aws.node_group import NodeGroup, NodeGroupProps, autoscaling_service_role
from wso2_on_aws.node_secrets import NodeSecrets, NodeSecretsProps
from wso2_on_aws.protection import StatefulProtection
from wso2_on_aws.runtime_config import NodeRuntimeConfig, NodeRuntimeConfigProps
from wso2_on_aws.web_application_firewall import WebApplicationFirewall, WebApplicationFirewallProps

# Fully-qualified sources, so Terraform and OpenTofu resolve the same providers. The
# exact versions come from the prebuilt bindings pinned in pyproject.toml.
PROVIDER_SOURCES = {"aws": "hashicorp/aws", "random": "hashicorp/random"}
# S3-native state locking (`use_lockfile`) needs Terraform >= 1.10 or OpenTofu >= 1.10.
REQUIRED_VERSION = ">= 1.10.0"
NODE_LOG_KINDS = tuple(kind for kind, _ in bootstrap.LOG_FILES)


class ObIamStack(TerraformStack):
    def __init__(self, scope: Construct, environment: Environment):
        super().__init__(scope, environment.name)
        self.environment = environment
        self.names = names = Names(environment.name)
        config = environment.config
        protection = config.data_protection

        self._providers()
        # Every stateful resource, whichever construct makes it (constructs/wso2_on_aws/protection.py).
        Aspects.of(self).add(StatefulProtection(protection.prevent_destroy))

        account = account_context(self, config.region)
        retention = config.observability.log_retention_days

        # Keys per concern, so that a grant on one (e.g. to CloudWatch Logs) says nothing about the others.
        asg_service_role = autoscaling_service_role(self, "asg-service-role", names.prefix)
        backup_config = config.backup
        copy_account = backup_config.copy_account_vault_arn
        data_key = EncryptionKey(self, "data-key", account, EncryptionKeyProps(
            alias=names.key_alias("data"), description=f"{names.prefix}: database, artifact file system, secrets",
            # RDS snapshots keep this key, so a copy to another account needs that account to use it.
            shared_with_accounts=(copy_account.split(":")[4],) if backup_config.enabled and copy_account else ()))
        logs_key = EncryptionKey(self, "logs-key", account, EncryptionKeyProps(
            alias=names.key_alias("logs"), description=f"{names.prefix}: CloudWatch log groups and alarm notifications",
            allow_cloudwatch_logs=True, allow_services=("cloudwatch.amazonaws.com",)))
        ebs_key = EncryptionKey(self, "ebs-key", account, EncryptionKeyProps(
            alias=names.key_alias("ebs"), description=f"{names.prefix}: node root volumes",
            service_role_arns=(asg_service_role.arn,)))

        existing = config.network.existing_vpc
        network = Network(self, "network", account, NetworkProps(
            name_prefix=names.prefix, region=config.region, availability_zones=tuple(config.zone_names),
            vpc_cidr=config.network.cidr, nat_gateway_per_az=config.network.nat_gateways == "per_az",
            flow_logs=config.network.flow_logs, flow_log_group_name=names.log_group("vpc-flow-logs"),
            log_retention_days=retention, logs_kms_key_arn=logs_key.arn,
            prevent_destroy=protection.prevent_destroy,
            # Simple AD's prerequisites forbid some endpoints in its VPC (obiam/directory_service.py).
            interface_endpoints=directory_service.endpoints_beside(config.directory.type, INTERFACE_ENDPOINTS),
            existing=None if existing is None else ExistingVpcProps(
                vpc_id=existing.vpc_id, public_subnet_ids=tuple(existing.public_subnet_ids),
                app_subnet_ids=tuple(existing.app_subnet_ids), data_subnet_ids=tuple(existing.data_subnet_ids)),
        ))

        lb_config = config.load_balancer
        log_bucket = None
        if lb_config.access_logs:
            log_bucket = AccessLogBucket(self, "alb-logs", account, AccessLogBucketProps(
                bucket_name=names.access_log_bucket(account.account_id), retention_days=retention,
                force_destroy=not protection.prevent_destroy))
        load_balancer = LoadBalancer(self, "load-balancer", LoadBalancerProps(
            name=names.load_balancer, target_group_name=names.target_group,
            security_group_name=names.alb_security_group, vpc_id=network.vpc_id,
            subnet_ids=network.app_subnet_ids if lb_config.internal else network.public_subnet_ids,
            certificate_arn=lb_config.certificate_arn, ssl_policy=lb_config.ssl_policy,
            target_port=config.product.https_port, internal=lb_config.internal,
            ingress_cidrs=tuple(lb_config.ingress_cidrs),
            stickiness=StickinessProps(lb_config.stickiness.type, lb_config.stickiness.cookie_name,
                                       lb_config.stickiness.cookie_duration),
            mutual_tls_passthrough=lb_config.mutual_authentication.mode == "passthrough",
            deregistration_delay=lb_config.deregistration_delay, idle_timeout=lb_config.idle_timeout,
            deletion_protection=protection.deletion_protection,
            access_log_bucket=log_bucket.name if log_bucket else None,
            access_log_prefix=log_bucket.prefix if log_bucket else "alb",
            access_log_bucket_ready=tuple(log_bucket.ready) if log_bucket else (),
            hostname=lb_config.hostname, hosted_zone_id=lb_config.hosted_zone_id,
        ))
        if lb_config.waf:
            WebApplicationFirewall(self, "waf", WebApplicationFirewallProps(
                name=names.prefix, load_balancer_arn=load_balancer.arn, log_group_name=names.waf_log_group,
                log_retention_days=retention, logs_kms_key_arn=logs_key.arn,
                rate_limit_per_5_minutes=lb_config.waf_rate_limit,
                block_anonymous_ips=lb_config.waf_block_anonymous_ips, block=lb_config.waf_mode == "block",
                prevent_destroy=protection.prevent_destroy))

        artifacts = ArtifactFileSystem(self, "artifacts", ArtifactFileSystemProps(
            name=names.artifact_file_system, vpc_id=network.vpc_id, subnet_ids=network.data_subnet_ids,
            kms_key_arn=data_key.arn, directories=wso2.ARTIFACT_DIRECTORIES, posix_uid=wso2.WSO2_UID,
            automatic_backups=not backup_config.enabled))

        db_config = config.database
        database = Database(self, "database", account, DatabaseProps(
            identifier=names.db_instance, vpc_id=network.vpc_id, subnet_ids=network.data_subnet_ids,
            engine=database_engines.ENGINES[db_config.engine], engine_version=db_config.version,
            instance_class=db_config.instance_class, allocated_storage=db_config.allocated_storage,
            max_allocated_storage=db_config.max_allocated_storage,
            backup_retention_period=db_config.backup_retention_period,
            kms_key_arn=db_config.restored_kms_key_arn or data_key.arn,
            performance_insights=db_config.performance_insights, monitoring_interval=db_config.monitoring_interval,
            logs_kms_key_arn=logs_key.arn, log_retention_days=retention,
            engine_lifecycle_support=db_config.engine_lifecycle_support,
            deletion_protection=protection.deletion_protection, final_snapshot=protection.final_snapshot,
            prevent_destroy=protection.prevent_destroy))

        if backup_config.enabled:
            self._backup(account, database, artifacts)

        dir_config = config.directory
        accounts = wso2.directory_accounts(dir_config.type, dir_config.name)
        directory = Directory(self, "directory", DirectoryProps(
            name=dir_config.name, short_name=dir_config.netbios_name, type=dir_config.type,
            edition=dir_config.effective_edition,
            size=dir_config.effective_size if dir_config.type == "SimpleAD" else None,
            vpc_id=network.vpc_id, subnet_ids=network.data_subnet_ids, secret_name=names.directory_secret,
            admin_username=accounts.directory_admin, kms_key_arn=data_key.arn,
            log_group_name=names.directory_log_group, log_policy_name=names.directory_log_policy,
            log_retention_days=retention, logs_kms_key_arn=logs_key.arn,
            prevent_destroy=protection.prevent_destroy))

        accounts_package = lambda_package.directory_accounts()
        directory_accounts = DirectoryAccounts(self, "directory-accounts", account, DirectoryAccountsProps(
            directory_id=directory.directory_id, directory_type=dir_config.type,
            admin_username=accounts.directory_admin, admin_secret_arn=directory.secret_arn,
            bind_account=wso2.BIND_ACCOUNT, super_admin_account=wso2.SUPER_ADMIN_ACCOUNT,
            bind_secret_name=names.directory_bind_secret, super_admin_secret_name=names.super_admin_secret,
            function_name=names.directory_accounts_function, log_group_name=names.log_group("directory-accounts"),
            log_retention_days=retention, logs_kms_key_arn=logs_key.arn, secrets_kms_key_arn=data_key.arn,
            package_path=asset_file(accounts_package.file_name, accounts_package.content),
            package_sha256_base64=accounts_package.source_code_hash, prevent_destroy=protection.prevent_destroy))

        node_secrets = NodeSecrets(self, "node-secrets", NodeSecretsProps(
            database_secret_name=names.wso2_db_secret, node_secret_name=names.node_secret,
            database_user=wso2.APPLICATION_DB_USER, kms_key_arn=data_key.arn,
            replica_regions=(config.backup.copy_region,) if config.backup.enabled and config.backup.copy_region
            else (), prevent_destroy=protection.prevent_destroy))
        runtime = NodeRuntimeConfig(self, "node-runtime", NodeRuntimeConfigProps(
            name=names.runtime_parameter, efs_file_system_id=artifacts.file_system_id,
            efs_access_points=artifacts.access_point_ids, db_host=database.address,
            db_port=Token.as_string(database.port), db_secret_arn=database.secret_arn,
            wso2_db_secret_arn=node_secrets.database_secret_arn, node_secret_arn=node_secrets.node_secret_arn,
            directory_dns_ips=directory.dns_ip_addresses,
            directory_bind_secret_arn=directory_accounts.bind_secret_arn,
            super_admin_secret_arn=directory_accounts.super_admin_secret_arn,
            kms_key_arn=data_key.arn))
        node_logs = EncryptedLogGroups(self, "node-logs", EncryptedLogGroupsProps(
            group_names=tuple(names.log_group(kind) for kind in NODE_LOG_KINDS), retention_days=retention,
            kms_key_arn=logs_key.arn, prevent_destroy=protection.prevent_destroy))

        nodes_config = config.nodes
        ami = nodes_config.ami
        assert ami is not None  # config requires it
        image_id = ami.id or DataAwsSsmParameter(self, "ami", name=ami.ssm_parameter).insecure_value
        instance_tags = {
            **environment.default_tags,
            "Name": names.autoscaling_group,
            # Cluster members find each other by this tag (and the node security group).
            CLUSTER_TAG_KEY: names.cluster_tag_value,
            # A new value (database or file system replaced) makes a new launch template
            # version, and the instance refresh rolls every node onto it.
            "obiam:runtime-config-version": Token.as_string(runtime.version),
        }
        nodes = NodeGroup(self, "nodes", NodeGroupProps(
            name=names.autoscaling_group, launch_template_name=names.launch_template, role_name=names.node_role,
            security_group_name=names.node_security_group, vpc_id=network.vpc_id,
            subnet_ids=network.app_subnet_ids, image_id=image_id, instance_type=nodes_config.instance_type,
            user_data_base64=bootstrap.user_data_base64(environment),
            min_size=nodes_config.min_size, max_size=nodes_config.max_size,
            desired_capacity=nodes_config.desired_capacity, root_volume_size=nodes_config.root_volume_size,
            ebs_kms_key_arn=ebs_key.arn, service_linked_role_arn=asg_service_role.arn,
            target_group_arns=[load_balancer.target_group_arn], service_port=config.product.https_port,
            cluster_port=config.product.clustering.local_member_port,
            health_check_grace_period=nodes_config.health_check_grace_period,
            scaling_metric=nodes_config.scaling.metric, scaling_target_value=nodes_config.scaling.target_value,
            scaling_resource_label=f"{load_balancer.arn_suffix}/{load_balancer.target_group_arn_suffix}",
            instance_tags=instance_tags, metadata_http_tokens=nodes_config.metadata_http_tokens,
            boot_after=[directory_accounts.provisioned], partition=account.partition,
            downloads=(config.product.pack_s3_uri, *filter(None, [db_config.jdbc_driver_s3_uri])),
            metrics_namespace=bootstrap.METRICS_NAMESPACE,
        ))
        self._wire_nodes(nodes, load_balancer=load_balancer, runtime=runtime, database=database, directory=directory,
                         directory_accounts=directory_accounts, node_secrets=node_secrets, data_key=data_key,
                         artifacts=artifacts, node_logs=node_logs)

        Alarms(self, "alarms", AlarmsProps(
            name_prefix=names.prefix, kms_key_arn=logs_key.arn,
            load_balancer_arn_suffix=load_balancer.arn_suffix,
            target_group_arn_suffix=load_balancer.target_group_arn_suffix,
            autoscaling_group_name=names.autoscaling_group, min_healthy_hosts=nodes_config.min_size,
            db_instance_identifier=names.db_instance, db_allocated_storage_gib=db_config.allocated_storage,
            efs_file_system_id=artifacts.file_system_id, node_metrics_namespace=bootstrap.METRICS_NAMESPACE,
            directory_accounts_function_name=directory_accounts.function_name,
            email=config.observability.alarm_email))

        self._outputs(load_balancer, database, artifacts, directory, nodes)

    @staticmethod
    def _wire_nodes(nodes: NodeGroup, *, load_balancer: LoadBalancer, runtime: NodeRuntimeConfig, database: Database,
                    directory: Directory, directory_accounts: DirectoryAccounts, node_secrets: NodeSecrets,
                    data_key: EncryptionKey, artifacts: ArtifactFileSystem, node_logs: EncryptedLogGroups) -> None:
        """What the nodes may do on what the other constructs own (each grant writes both sides), and whom
        they reach, each on the port its target serves."""
        runtime.grant_read(nodes.role)
        database.grant_read_credentials(nodes.role)
        directory_accounts.grant_read_credentials(nodes.role)
        node_secrets.grant_read(nodes.role)
        # The data key decrypts those secrets (and the runtime parameter) only when Secrets Manager or SSM
        # asks on the node's behalf.
        data_key.grant_decrypt_via(nodes.role, ("secretsmanager", "ssm"), sid="CredentialsKey")
        artifacts.grant_mount(nodes.role)
        node_logs.grant_write(nodes.role)
        nodes.boot_after(*artifacts.ready)

        nodes.connections.allow_from(load_balancer)
        artifacts.connections.allow_from(nodes)
        database.connections.allow_from(nodes)
        directory.connections.allow_from(nodes)

    def _backup(self, account: AccountContext, database: Database, artifacts: ArtifactFileSystem) -> None:
        config = self.environment.config
        backup = config.backup
        lock_mode = None if backup.lock == "none" else backup.lock

        def lock(min_retention_days: int) -> VaultLockProps | None:
            return None if lock_mode is None else VaultLockProps(
                mode=lock_mode, min_retention_days=min_retention_days,
                changeable_for_days=backup.lock_changeable_for_days)

        Backup(self, "backup", account, BackupProps(
            name_prefix=self.names.prefix, vault_name=self.names.backup_vault, role_name=self.names.backup_role,
            resource_arns=[database.instance.arn, artifacts.arn], database_arn=database.instance.arn,
            interval_hours=backup.interval_hours, retention_days=backup.retention_days,
            continuous_retention_days=config.database.backup_retention_period if backup.continuous else None,
            copy_region=backup.copy_region, copy_retention_days=backup.effective_copy_retention_days,
            copy_account_vault_arn=backup.copy_account_vault_arn,
            lock=lock(config.backup_lock_min_retention_days),
            copy_lock=lock(backup.effective_copy_retention_days),
            prevent_destroy=config.data_protection.prevent_destroy))

    def _outputs(self, load_balancer: LoadBalancer, database: Database, artifacts: ArtifactFileSystem,
                 directory: Directory, nodes: NodeGroup) -> None:
        outputs = {
            "alb_dns_name": (load_balancer.dns_name, "Point the IAM hostname (CNAME/alias) here"),
            "db_endpoint": (database.address, "RDS endpoint (Multi-AZ; fails over behind this name)"),
            "db_secret_arn": (database.secret_arn, "Secrets Manager secret with the master credentials"),
            "efs_file_system_id": (artifacts.file_system_id, "Shared runtime artifacts"),
            "directory_id": (directory.directory_id, "Directory Service directory"),
            "directory_dns_ips": (directory.dns_ip_addresses, "Domain controllers (LDAP)"),
            "autoscaling_group_name": (nodes.autoscaling_group_name, "The IAM nodes"),
        }
        for name, (value, description) in outputs.items():
            TerraformOutput(self, name, value=value, description=description)

    def _providers(self) -> None:
        environment = self.environment
        config = environment.config
        # The provider checks the account of the credentials it ends up with (after assume_role)
        # before it touches anything: a plan with staging's credentials for prod stops there.
        role = config.account.assume_role_arn
        AwsProvider(self, "aws", region=config.region, allowed_account_ids=[config.account.id],
                    assume_role=[AwsProviderAssumeRole(role_arn=role, session_name=f"obiam-{environment.name}")]
                    if role else None,
                    default_tags=[AwsProviderDefaultTags(tags=environment.default_tags)],
                    # `obiam keep` sets it outside Terraform; an apply must not take it away again.
                    ignore_tags=[AwsProviderIgnoreTags(keys=[KEEP_UNTIL_TAG_KEY])])
        RandomProvider(self, "random")
        self._remote_state()
        for name, source in PROVIDER_SOURCES.items():
            self.add_override(f"terraform.required_providers.{name}.source", source)
        self.add_override("terraform.required_version", REQUIRED_VERSION)

    def _remote_state(self) -> None:
        state = self.environment.config.state
        S3Backend(
            self,
            bucket=state.bucket,
            key=self.names.state_key(state.key_prefix),
            region=self.environment.config.state_region,
            encrypt=True,
            kms_key_id=state.kms_key_id,
            dynamodb_table=state.dynamodb_table if state.lock == "dynamodb" else None,
        )
        if state.lock == "s3_lockfile":
            # cdktf 0.21's S3Backend predates the argument; Terraform 1.10+ reads it from the JSON.
            self.add_override("terraform.backend.s3.use_lockfile", True)
