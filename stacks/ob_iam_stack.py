"""The WSO2 OB IAM deployment of one environment, composed from its config.

The stack only composes constructs and wires their outputs together; every AWS
decision lives in a construct under constructs/wso2_on_aws, every WSO2 fact in
obiam/wso2.py, and the node's boot script in obiam/bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import Aspects, TerraformOutput, TerraformResource, TerraformStack, Token
from cdktf_cdktf_provider_aws.data_aws_ssm_parameter import DataAwsSsmParameter
from constructs import Construct

from obiam import bootstrap, branch_scope, wso2
from obiam.environments import Environment
from obiam.naming import CLUSTER_TAG_KEY, Names
from stacks import foundation
from stacks.branch_base_stack import BranchBaseOutputs
from stacks.servers import own_database, own_directory, own_directory_accounts, own_network
from wso2_on_aws.access_log_bucket import AccessLogBucket, AccessLogBucketProps
from wso2_on_aws.account import AccountContext, account_context
from wso2_on_aws.alarms import Alarms, AlarmsProps, DatabaseAlarmsProps, ServiceAlarmsProps
from wso2_on_aws.artifact_file_system import ArtifactFileSystem, ArtifactFileSystemProps
from wso2_on_aws.backup import Backup, BackupProps, VaultLockProps
from wso2_on_aws.branch_databases import BranchDatabases, BranchDatabasesProps
from wso2_on_aws.database import Database
from wso2_on_aws.directory import Directory
from wso2_on_aws.directory_accounts import DirectoryAccounts
from wso2_on_aws.encryption_key import EncryptionKey, EncryptionKeyProps
from wso2_on_aws.load_balancer import LoadBalancer, LoadBalancerProps, StickinessProps
from wso2_on_aws.log_groups import EncryptedLogGroups, EncryptedLogGroupsProps
from wso2_on_aws.network import Network
from wso2_on_aws.node_group import NodeGroup, NodeGroupProps, autoscaling_service_role
from wso2_on_aws.node_secrets import NodeSecrets, NodeSecretsProps
from wso2_on_aws.protection import StatefulProtection
from wso2_on_aws.runtime_config import NodeRuntimeConfig, NodeRuntimeConfigProps
from wso2_on_aws.security import Connections
from wso2_on_aws.web_application_firewall import WebApplicationFirewall, WebApplicationFirewallProps

NODE_LOG_KINDS = tuple(kind for kind, _ in bootstrap.LOG_FILES)


@dataclass(frozen=True)
class OwnServers:
    """The environment's own database server and directory, in the shape of a branch base's
    (stacks/branch_base_stack.BranchBaseOutputs), so the rest of the stack uses either alike."""

    database: Database
    db_address: str
    db_port: str
    db_connections: Connections
    directory_id: str
    directory_dns_ips: list[str]
    directory_connections: Connections
    directory_admin_secret_arn: str

    @classmethod
    def of(cls, database: Database, directory: Directory) -> OwnServers:
        return cls(database, database.address, Token.as_string(database.port), database.connections,
                   directory.directory_id, directory.dns_ip_addresses, directory.connections, directory.secret_arn)


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

        asg_service_role = autoscaling_service_role(self, "asg-service-role", names.prefix)
        data_key, logs_key, ebs_key = self._keys(account, asg_service_role.arn)

        base = None if environment.base is None else BranchBaseOutputs(self, "branch-base", environment.base)
        network = base or own_network(self, account, names, config, logs_key.arn)

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
            automatic_backups=not config.backup.enabled))

        db_config = config.database
        owned = branch_scope.names_for(environment.name, on_base=base is not None)
        servers: OwnServers | BranchBaseOutputs
        if base is None:
            servers = self._own_servers(account, network, data_key.arn, logs_key.arn)
            if config.backup.enabled:
                self._backup(account, servers.database, artifacts)
        else:
            servers = base
        database = servers.database if isinstance(servers, OwnServers) else None

        directory_accounts = own_directory_accounts(
            self, account, names=names, config=config, directory_id=servers.directory_id,
            # A branch never reads the shared directory's admin: ds-data and password resets authorize by IAM.
            admin_secret_arn=servers.directory_admin_secret_arn if isinstance(servers, OwnServers) else None,
            data_key_arn=data_key.arn, logs_key_arn=logs_key.arn, owned=owned,
            # On the base's shared directory, a branch's accounts are its own to remove.
            remove_on_destroy=base is not None)

        node_secrets = NodeSecrets(self, "node-secrets", NodeSecretsProps(
            database_secret_name=names.wso2_db_secret, node_secret_name=names.node_secret,
            database_user=owned.database_user, kms_key_arn=data_key.arn,
            replica_regions=(config.backup.copy_region,) if config.backup.enabled and config.backup.copy_region
            else (), prevent_destroy=protection.prevent_destroy))
        boot_after: list[TerraformResource] = [directory_accounts.provisioned]
        if base is not None:
            boot_after.append(self._branch_databases(base, owned, node_secrets))
        runtime = NodeRuntimeConfig(self, "node-runtime", NodeRuntimeConfigProps(
            name=names.runtime_parameter, efs_file_system_id=artifacts.file_system_id,
            efs_access_points=artifacts.access_point_ids, db_host=servers.db_address,
            db_port=servers.db_port,
            # The credential db-init creates the tables with: the master on an own server; on a base,
            # the branch's own user (the base's function gave it every right on its databases only).
            db_secret_arn=database.secret_arn if database else node_secrets.database_secret_arn,
            wso2_db_secret_arn=node_secrets.database_secret_arn, node_secret_arn=node_secrets.node_secret_arn,
            directory_dns_ips=servers.directory_dns_ips,
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
            boot_after=boot_after, partition=account.partition,
            downloads=(config.product.pack_s3_uri, *filter(None, [db_config.jdbc_driver_s3_uri])),
            metrics_namespace=bootstrap.METRICS_NAMESPACE,
        ))
        self._wire_nodes(nodes, load_balancer=load_balancer, runtime=runtime, servers=servers,
                         directory_accounts=directory_accounts, node_secrets=node_secrets, data_key=data_key,
                         artifacts=artifacts, node_logs=node_logs)

        Alarms(self, "alarms", AlarmsProps(
            name_prefix=names.prefix, kms_key_arn=logs_key.arn,
            service=ServiceAlarmsProps(
                load_balancer_arn_suffix=load_balancer.arn_suffix,
                target_group_arn_suffix=load_balancer.target_group_arn_suffix,
                autoscaling_group_name=names.autoscaling_group, min_healthy_hosts=nodes_config.min_size,
                efs_file_system_id=artifacts.file_system_id, node_metrics_namespace=bootstrap.METRICS_NAMESPACE),
            directory_accounts_function_name=directory_accounts.function_name,
            # A branch's database server is its base's, and so are the alarms on it.
            database=DatabaseAlarmsProps(names.db_instance, config.database.allocated_storage) if database else None,
            email=config.observability.alarm_email))

        self._outputs(load_balancer, servers, node_secrets, artifacts, nodes)

    def _keys(self, account: AccountContext, asg_service_role_arn: str) -> tuple[EncryptionKey, ...]:
        """Keys per concern, so that a grant on one (e.g. to CloudWatch Logs) says nothing about the others."""
        names = self.names
        backup_config = self.environment.config.backup
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
            service_role_arns=(asg_service_role_arn,)))
        return data_key, logs_key, ebs_key

    @staticmethod
    def _wire_nodes(nodes: NodeGroup, *, load_balancer: LoadBalancer, runtime: NodeRuntimeConfig,
                    servers: OwnServers | BranchBaseOutputs, directory_accounts: DirectoryAccounts,
                    node_secrets: NodeSecrets,
                    data_key: EncryptionKey, artifacts: ArtifactFileSystem, node_logs: EncryptedLogGroups) -> None:
        """What the nodes may do on what the other constructs own (each grant writes both sides), and whom
        they reach, each on the port its target serves."""
        runtime.grant_read(nodes.role)
        if isinstance(servers, OwnServers):
            servers.database.grant_read_credentials(nodes.role)
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
        servers.db_connections.allow_from(nodes)
        servers.directory_connections.allow_from(nodes)

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

    def _outputs(self, load_balancer: LoadBalancer, servers: OwnServers | BranchBaseOutputs,
                 node_secrets: NodeSecrets, artifacts: ArtifactFileSystem, nodes: NodeGroup) -> None:
        own = isinstance(servers, OwnServers)
        outputs = {
            "alb_dns_name": (load_balancer.dns_name, "Point the IAM hostname (CNAME/alias) here"),
            "db_endpoint": (servers.db_address, "RDS endpoint (Multi-AZ; fails over behind this name)"),
            "db_secret_arn": (servers.database.secret_arn if isinstance(servers, OwnServers)
                              else node_secrets.database_secret_arn,
                              "Secrets Manager secret with the master credentials" if own else
                              "Secrets Manager secret of this branch's own database user (the server is the base's)"),
            "efs_file_system_id": (artifacts.file_system_id, "Shared runtime artifacts"),
            "directory_id": (servers.directory_id, "Directory Service directory"),
            "directory_dns_ips": (servers.directory_dns_ips, "Domain controllers (LDAP)"),
            "autoscaling_group_name": (nodes.autoscaling_group_name, "The IAM nodes"),
        }
        for name, (value, description) in outputs.items():
            TerraformOutput(self, name, value=value, description=description)

    def _branch_databases(self, base: BranchBaseOutputs, scope: branch_scope.SharedServerNames,
                          node_secrets: NodeSecrets) -> TerraformResource:
        """This branch's databases and user on the base's server; the nodes boot after them."""
        product = wso2.PRODUCTS[self.environment.config.product.version]
        return BranchDatabases(self, "branch-databases", BranchDatabasesProps(
            function_name=base.branch_databases_function_name,
            databases=tuple(scope.database(d.name) for d in product.databases), user=scope.database_user,
            password_secret_arn=node_secrets.database_secret_arn,
            password_version=node_secrets.database_secret_version)).provisioned

    def _own_servers(self, account: AccountContext, network: Network | BranchBaseOutputs, data_key_arn: str,
                     logs_key_arn: str) -> OwnServers:
        """The environment's own database server and directory (every environment not on a branch base)."""
        config = self.environment.config
        return OwnServers.of(own_database(self, account, names=self.names, config=config, vpc=network,
                                          data_key_arn=data_key_arn, logs_key_arn=logs_key_arn),
                             own_directory(self, names=self.names, config=config, vpc=network,
                                           data_key_arn=data_key_arn, logs_key_arn=logs_key_arn))

    def _providers(self) -> None:
        environment = self.environment
        config = environment.config
        foundation.configure(self, name=environment.name, account=config.account, region=config.region,
                             default_tags=environment.default_tags, state=config.state,
                             state_region=config.state_region, state_key=self.names.state_key(config.state.key_prefix))
