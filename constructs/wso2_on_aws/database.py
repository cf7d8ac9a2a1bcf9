"""The WSO2 databases: one Multi-AZ RDS instance in the data subnets, reachable from the nodes only."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.db_instance import DbInstance
from cdktf_cdktf_provider_aws.db_parameter_group import DbParameterGroup, DbParameterGroupParameter
from cdktf_cdktf_provider_aws.db_subnet_group import DbSubnetGroup
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from constructs import Construct

from obiam.choices import EngineLifecycleSupport
from obiam.database_engines import DatabaseEngine
from wso2_on_aws.account import AccountContext
from wso2_on_aws.log_groups import EncryptedLogGroups, EncryptedLogGroupsProps
from wso2_on_aws.security import Connections, Grantable, Port, secrets_read


@dataclass(frozen=True)
class DatabaseProps:
    identifier: str
    vpc_id: str
    subnet_ids: list[str]
    # Every RDS fact about the engine (family, parameters, log exports, license, port) comes from it.
    engine: DatabaseEngine
    engine_version: str
    instance_class: str
    allocated_storage: int
    max_allocated_storage: int
    backup_retention_period: int
    kms_key_arn: str
    performance_insights: bool
    monitoring_interval: int
    logs_kms_key_arn: str
    log_retention_days: int
    # RDS for MySQL and PostgreSQL only (CreateDBInstance EngineLifecycleSupport); None: RDS's default.
    engine_lifecycle_support: EngineLifecycleSupport | None = None
    deletion_protection: bool = True
    final_snapshot: bool = True
    prevent_destroy: bool = True
    master_username: str = "obiam_admin"


class Database(Construct):
    """Outputs: `connections` (the engine's port), `address`, `port`, `secret_arn` (Secrets Manager, managed by
    RDS), `security_group_id`, `instance`. Grants: `grant_read_credentials(role)`."""

    def __init__(self, scope: Construct, id_: str, account: AccountContext, props: DatabaseProps):
        super().__init__(scope, id_)
        engine = props.engine
        sg = SecurityGroup(self, "sg", name=f"{props.identifier}", vpc_id=props.vpc_id,
                           description="The WSO2 databases, from the IAM nodes only",
                           tags={"Name": props.identifier})
        self.security_group_id = sg.id
        self.connections = Connections(self, "db", sg.id, Port(engine.port, f"{engine.name} from the WSO2 nodes"))
        subnets = DbSubnetGroup(self, "subnets", name=props.identifier, subnet_ids=props.subnet_ids,
                                description="Data subnets, one per AZ")
        # A prefix, not a name: a new family (e.g. mysql8.0 -> mysql8.4) replaces the group, and with
        # create_before_destroy the new one must exist beside the old, which a fixed name forbids.
        parameters = DbParameterGroup(
            self, "parameters", name_prefix=f"{props.identifier}-", family=engine.family(props.engine_version),
            description="WSO2 OB IAM settings",
            parameter=[DbParameterGroupParameter(name=n, value=v, apply_method=m) for n, v, m in engine.parameters],
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
        )
        monitoring_role_arn = None
        if props.monitoring_interval:
            role = IamRole(self, "monitoring-role", name=f"{props.identifier}-monitoring",
                           assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                               "Effect": "Allow", "Principal": {"Service": "monitoring.rds.amazonaws.com"},
                               "Action": "sts:AssumeRole"}]}))
            IamRolePolicyAttachment(
                self, "monitoring-policy", role=role.name,
                policy_arn=f"arn:{account.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole")
            monitoring_role_arn = role.arn
        # RDS would create its export groups (/aws/rds/instance/<id>/<log>) itself, unencrypted and
        # never expiring (RDS User Guide, "Publishing ... logs to Amazon CloudWatch Logs"); created
        # first, they carry the logs key and the environment's retention.
        exports = EncryptedLogGroups(self, "logs", EncryptedLogGroupsProps(
            group_names=tuple(f"/aws/rds/instance/{props.identifier}/{log}" for log in engine.log_exports),
            retention_days=props.log_retention_days, kms_key_arn=props.logs_kms_key_arn,
            prevent_destroy=props.prevent_destroy))
        self.instance = DbInstance(
            self, "instance", identifier=props.identifier, engine=engine.name,
            engine_version=props.engine_version, instance_class=props.instance_class,
            license_model=engine.license_model,
            # WSO2's HA pattern asks for a highly available RDBMS: a synchronous standby in another AZ.
            multi_az=True, db_subnet_group_name=subnets.name, vpc_security_group_ids=[sg.id],
            publicly_accessible=False, parameter_group_name=parameters.name,
            allocated_storage=props.allocated_storage, max_allocated_storage=props.max_allocated_storage,
            storage_type="gp3", storage_encrypted=True, kms_key_id=props.kms_key_arn,
            username=props.master_username,
            # RDS generates and rotates the password in Secrets Manager; it is never in config or state.
            manage_master_user_password=True, master_user_secret_kms_key_id=props.kms_key_arn,
            iam_database_authentication_enabled=engine.iam_authentication,
            ca_cert_identifier="rds-ca-rsa2048-g1",
            backup_retention_period=props.backup_retention_period, backup_window="02:00-03:00",
            maintenance_window="sun:03:30-sun:04:30", copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True, apply_immediately=False,
            deletion_protection=props.deletion_protection,
            skip_final_snapshot=not props.final_snapshot,
            final_snapshot_identifier=f"{props.identifier}-final" if props.final_snapshot else None,
            delete_automated_backups=not props.final_snapshot,
            performance_insights_enabled=props.performance_insights,
            performance_insights_kms_key_id=props.kms_key_arn if props.performance_insights else None,
            performance_insights_retention_period=7 if props.performance_insights else None,
            monitoring_interval=props.monitoring_interval, monitoring_role_arn=monitoring_role_arn,
            enabled_cloudwatch_logs_exports=list(engine.log_exports),
            engine_lifecycle_support=props.engine_lifecycle_support,
            depends_on=exports.groups,
            # RDS takes the lifecycle choice at create or restore only, and the provider plans a change
            # to it that RDS ignores, on every plan (terraform-provider-aws #40870, #44552).
            lifecycle=TerraformResourceLifecycle(ignore_changes=["engine_lifecycle_support"]),
        )
        self.address = self.instance.address
        self.port = self.instance.port
        self.identifier = self.instance.identifier
        self.secret_arn = self.instance.master_user_secret.get(0).secret_arn

    def grant_read_credentials(self, role: Grantable) -> None:
        """Lets `role` read the master user's secret (the first boot creates WSO2's schemas with it)."""
        role.add_to_policy(secrets_read([self.secret_arn]))
