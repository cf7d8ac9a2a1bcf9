"""The network, database server and directory a stack owns, built the same way wherever they live:
in an environment's own stack or in a branch base's (the construct ids, and so the Terraform
addresses, are the same in both)."""

from __future__ import annotations

from typing import Protocol

from constructs import Construct

from obiam import branch_scope, database_engines, directory_service, lambda_package, wso2
from obiam.config import BranchBaseConfig, EnvironmentConfig
from obiam.naming import Names
from stacks.assets import asset_file
from wso2_on_aws.account import AccountContext
from wso2_on_aws.database import Database, DatabaseProps
from wso2_on_aws.directory import Directory, DirectoryProps
from wso2_on_aws.directory_accounts import DirectoryAccounts, DirectoryAccountsProps
from wso2_on_aws.network import INTERFACE_ENDPOINTS, ExistingVpcProps, Network, NetworkProps

ServersConfig = EnvironmentConfig | BranchBaseConfig


def own_network(scope: Construct, account: AccountContext, names: Names, config: ServersConfig,
            logs_key_arn: str) -> Network:
    existing = config.network.existing_vpc
    return Network(scope, "network", account, NetworkProps(
        name_prefix=names.prefix, region=config.region, availability_zones=tuple(config.zone_names),
        vpc_cidr=config.network.cidr, nat_gateway_per_az=config.network.nat_gateways == "per_az",
        flow_logs=config.network.flow_logs, flow_log_group_name=names.log_group("vpc-flow-logs"),
        log_retention_days=config.observability.log_retention_days, logs_kms_key_arn=logs_key_arn,
        prevent_destroy=config.data_protection.prevent_destroy,
        # Simple AD's prerequisites forbid some endpoints in its VPC (obiam/directory_service.py).
        interface_endpoints=directory_service.endpoints_beside(config.directory.type, INTERFACE_ENDPOINTS),
        existing=None if existing is None else ExistingVpcProps(
            vpc_id=existing.vpc_id, public_subnet_ids=tuple(existing.public_subnet_ids),
            app_subnet_ids=tuple(existing.app_subnet_ids), data_subnet_ids=tuple(existing.data_subnet_ids)),
    ))


class Placement(Protocol):
    """Where a server goes: a VPC and its data subnets (the stack's own Network, or a base's)."""

    @property
    def vpc_id(self) -> str: ...

    @property
    def data_subnet_ids(self) -> list[str]: ...


def own_database(scope: Construct, account: AccountContext, *, names: Names, config: ServersConfig,
                 vpc: Placement, data_key_arn: str, logs_key_arn: str) -> Database:
    protection = config.data_protection
    db_config = config.database
    return Database(scope, "database", account, DatabaseProps(
        identifier=names.db_instance, vpc_id=vpc.vpc_id, subnet_ids=vpc.data_subnet_ids,
        engine=database_engines.ENGINES[db_config.engine], engine_version=db_config.version,
        instance_class=db_config.instance_class, allocated_storage=db_config.allocated_storage,
        max_allocated_storage=db_config.max_allocated_storage,
        backup_retention_period=db_config.backup_retention_period,
        kms_key_arn=db_config.restored_kms_key_arn or data_key_arn,
        performance_insights=db_config.performance_insights, monitoring_interval=db_config.monitoring_interval,
        logs_kms_key_arn=logs_key_arn, log_retention_days=config.observability.log_retention_days,
        engine_lifecycle_support=db_config.engine_lifecycle_support,
        deletion_protection=protection.deletion_protection, final_snapshot=protection.final_snapshot,
        prevent_destroy=protection.prevent_destroy))


def own_directory(scope: Construct, *, names: Names, config: ServersConfig, vpc: Placement, data_key_arn: str,
                  logs_key_arn: str) -> Directory:
    dir_config = config.directory
    return Directory(scope, "directory", DirectoryProps(
        name=dir_config.name, short_name=dir_config.netbios_name, type=dir_config.type,
        edition=dir_config.effective_edition,
        size=dir_config.effective_size if dir_config.type == "SimpleAD" else None,
        vpc_id=vpc.vpc_id, subnet_ids=vpc.data_subnet_ids, secret_name=names.directory_secret,
        admin_username=wso2.directory_accounts(dir_config.type, dir_config.name).directory_admin,
        kms_key_arn=data_key_arn, log_group_name=names.directory_log_group,
        log_policy_name=names.directory_log_policy, log_retention_days=config.observability.log_retention_days,
        logs_kms_key_arn=logs_key_arn, prevent_destroy=config.data_protection.prevent_destroy))


def own_directory_accounts(scope: Construct, account: AccountContext, *, names: Names, config: ServersConfig,
                           directory_id: str, admin_secret_arn: str | None, data_key_arn: str,
                           logs_key_arn: str, owned: branch_scope.SharedServerNames = branch_scope.OWN_SERVERS,
                           remove_on_destroy: bool = False, wso2_accounts: bool = True) -> DirectoryAccounts:
    """The directory-accounts function of a stack: WSO2's accounts (named by `owned`) and the admin's,
    created and renewed daily (constructs/wso2_on_aws/directory_accounts.py)."""
    dir_config = config.directory
    package = lambda_package.directory_accounts()
    return DirectoryAccounts(scope, "directory-accounts", account, DirectoryAccountsProps(
        directory_id=directory_id, directory_type=dir_config.type,
        admin_username=wso2.directory_accounts(dir_config.type, dir_config.name).directory_admin,
        admin_secret_arn=admin_secret_arn,
        bind_account=owned.bind_account, super_admin_account=owned.super_admin_account,
        bind_secret_name=names.directory_bind_secret, super_admin_secret_name=names.super_admin_secret,
        function_name=names.directory_accounts_function, log_group_name=names.log_group("directory-accounts"),
        log_retention_days=config.observability.log_retention_days, logs_kms_key_arn=logs_key_arn,
        secrets_kms_key_arn=data_key_arn, package_path=asset_file(package.file_name, package.content),
        package_sha256_base64=package.source_code_hash, prevent_destroy=config.data_protection.prevent_destroy,
        remove_on_destroy=remove_on_destroy, wso2_accounts=wso2_accounts))
