"""A branch base: the VPC, directory and database server every per-branch environment of an account
stands on, and how a branch environment's stack reads them.

The base is its own stack from its own file (`kind: branch-base`), deployed once and left alone.
It publishes what the branches need (ids, addresses, names; no secret) as one SSM parameter, and a
branch environment reads that parameter. Not `terraform_remote_state`: reading another stack's
outputs that way needs its whole state, secrets included (Terraform docs, "The
terraform_remote_state Data Source", which recommends publishing outputs elsewhere instead), and a
branch's CI role has no business reading the base's directory password. BASE_OUTPUTS is the
contract between the two sides.
"""

from __future__ import annotations

from cdktf import Aspects, Fn, TerraformOutput, TerraformStack, Token
from cdktf_cdktf_provider_aws.data_aws_ssm_parameter import DataAwsSsmParameter
from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from constructs import Construct

from obiam import branch_scope, database_engines, lambda_package
from obiam.environments import BranchBase
from obiam.naming import Names, published_parameter
from stacks import foundation
from stacks.assets import asset_file
from stacks.servers import own_database, own_directory, own_directory_accounts, own_network
from wso2_on_aws.account import account_context
from wso2_on_aws.alarms import Alarms, AlarmsProps, DatabaseAlarmsProps
from wso2_on_aws.branch_databases import BranchDatabasesFunction, BranchDatabasesFunctionProps
from wso2_on_aws.directory import LDAP
from wso2_on_aws.encryption_key import EncryptionKey, EncryptionKeyProps
from wso2_on_aws.protection import StatefulProtection
from wso2_on_aws.security import Connections, Port

# output name -> what it holds; the branch side reads exactly these.
BASE_OUTPUTS = {
    "vpc_id": "The shared VPC",
    "public_subnet_ids": "Public subnets, one per AZ (branch load balancers)",
    "app_subnet_ids": "Application subnets, one per AZ (branch nodes)",
    "data_subnet_ids": "Data subnets, one per AZ (branch file systems)",
    "db_address": "The shared database server (RDS, Multi-AZ)",
    "db_port": "Its port",
    "db_security_group_id": "Its security group: each branch adds a rule for its own nodes",
    "branch_databases_function_name": "Creates and drops each branch's databases and user (invoked by the branch)",
    "directory_id": "The shared Managed Microsoft AD",
    "directory_dns_ips": "Its domain controllers (LDAP)",
    "directory_security_group_id": "Its security group (AWS's; admits the VPC)",
    "directory_admin_secret_arn": "The directory admin's secret (break-glass; no branch reads it)",
}


class BranchBaseStack(TerraformStack):
    def __init__(self, scope: Construct, base: BranchBase):
        super().__init__(scope, base.name)
        names = Names(base.name)
        config = base.config
        protection = config.data_protection
        foundation.configure(self, name=base.name, account=config.account, region=config.region,
                             default_tags=base.default_tags, state=config.state, state_region=config.state_region,
                             state_key=names.state_key(config.state.key_prefix))
        Aspects.of(self).add(StatefulProtection(protection.prevent_destroy))
        account = account_context(self, config.region)
        retention = config.observability.log_retention_days

        data_key = EncryptionKey(self, "data-key", account, EncryptionKeyProps(
            alias=names.key_alias("data"), description=f"{names.prefix}: shared database and directory secrets"))
        logs_key = EncryptionKey(self, "logs-key", account, EncryptionKeyProps(
            alias=names.key_alias("logs"), description=f"{names.prefix}: CloudWatch log groups and alarm notifications",
            allow_cloudwatch_logs=True, allow_services=("cloudwatch.amazonaws.com",)))

        network = own_network(self, account, names, config, logs_key.arn)
        database = own_database(self, account, names=names, config=config, vpc=network, data_key_arn=data_key.arn,
                                logs_key_arn=logs_key.arn)
        directory = own_directory(self, names=names, config=config, vpc=network, data_key_arn=data_key.arn,
                                  logs_key_arn=logs_key.arn)

        package = lambda_package.branch_databases()
        function = BranchDatabasesFunction(self, "branch-databases", account, BranchDatabasesFunctionProps(
            function_name=names.branch_databases_function, vpc_id=network.vpc_id,
            subnet_ids=network.app_subnet_ids, db_host=database.address, db_port=Token.as_string(database.port),
            master_secret_arn=database.secret_arn, name_prefix=branch_scope.BRANCH_DATABASE_PREFIX,
            # Every branch's database-user secret (Secrets Manager appends -<6 characters> to the name).
            branch_secret_name_pattern=Names(f"{branch_scope.BRANCH_ENVIRONMENT_PREFIX}*").wso2_db_secret + "-*",
            log_group_name=names.log_group("branch-databases"), log_retention_days=retention,
            logs_kms_key_arn=logs_key.arn, package_path=asset_file(package.file_name, package.content),
            package_sha256_base64=package.source_code_hash, prevent_destroy=protection.prevent_destroy))
        database.connections.allow_from(function)
        database.grant_read_credentials(function.role)
        data_key.grant_decrypt_via(function.role, ("secretsmanager",), sid="MasterCredentialKey")

        # AD expires every password after 42 days, the admin's too: renewed daily, as in every environment
        # (no branch uses it, but it is the directory's break-glass account).
        admin_renewal = own_directory_accounts(
            self, account, names=names, config=config, directory_id=directory.directory_id,
            admin_secret_arn=directory.secret_arn, data_key_arn=data_key.arn, logs_key_arn=logs_key.arn,
            wso2_accounts=False)

        # The server every branch's databases live on: when it fills up or runs hot, every branch fails.
        Alarms(self, "alarms", AlarmsProps(
            name_prefix=names.prefix, kms_key_arn=logs_key.arn, service=None,
            database=DatabaseAlarmsProps(names.db_instance, config.database.allocated_storage),
            directory_accounts_function_name=admin_renewal.function_name,
            email=config.observability.alarm_email))

        values = {
            "vpc_id": network.vpc_id, "public_subnet_ids": network.public_subnet_ids,
            "app_subnet_ids": network.app_subnet_ids, "data_subnet_ids": network.data_subnet_ids,
            "db_address": database.address, "db_port": database.port,
            "db_security_group_id": database.security_group_id,
            "branch_databases_function_name": function.function_name,
            "directory_id": directory.directory_id, "directory_dns_ips": directory.dns_ip_addresses,
            "directory_security_group_id": directory.security_group_id,
            "directory_admin_secret_arn": directory.secret_arn,
        }
        for name, description in BASE_OUTPUTS.items():
            TerraformOutput(self, name, value=values[name], description=description)
        SsmParameter(self, "published", name=published_parameter(base.name), type="String", tier="Standard",
                     value=Fn.jsonencode(values),
                     description="What the branch environments on this base read (ids and names; no secret)")


class BranchBaseOutputs:
    """A branch environment's view of its base: what the base publishes, shaped like what the
    environment's own Network, Database and Directory would give."""

    def __init__(self, scope: Construct, id_: str, base: BranchBase):
        config = base.config
        parameter = DataAwsSsmParameter(scope, id_, name=published_parameter(base.name))
        published = Fn.jsondecode(parameter.insecure_value)

        def text(output: str) -> str:
            # lookup() without a default: a base that does not publish the output fails the plan.
            return Token.as_string(Fn.lookup(published, output))

        def per_zone(output: str) -> list[str]:
            # One token per zone: constructs make one mount target (or subnet mapping) per subnet.
            listed = Fn.lookup(published, output)
            return [Token.as_string(Fn.element(listed, i)) for i in range(config.availability_zone_count)]

        self.vpc_id = text("vpc_id")
        self.public_subnet_ids = per_zone("public_subnet_ids")
        self.app_subnet_ids = per_zone("app_subnet_ids")
        self.data_subnet_ids = per_zone("data_subnet_ids")
        self.db_address = text("db_address")
        self.db_port = text("db_port")
        engine = database_engines.ENGINES[config.database.engine]
        self.db_connections = Connections(scope, "db", text("db_security_group_id"),
                                          Port(engine.port, f"{engine.name} from the WSO2 nodes"))
        self.branch_databases_function_name = text("branch_databases_function_name")
        self.directory_id = text("directory_id")
        self.directory_dns_ips = Token.as_list(Fn.lookup(published, "directory_dns_ips"))
        self.directory_connections = Connections(scope, "directory", text("directory_security_group_id"), LDAP,
                                                 managed_by_aws=True)
