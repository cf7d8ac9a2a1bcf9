"""Each branch environment's own databases and database user on its branch base's shared server.

Two halves, one per stack:

- `BranchDatabasesFunction` (the base): a Lambda function in the base's VPC that holds the only
  use of the server's master credential. Asked with a branch's database names, user and the
  secret holding that user's password, it creates the databases (latin1, as WSO2 OB 3.0 creates
  its MySQL databases) and the user with every right on them and none elsewhere; asked to delete,
  it drops them. It refuses any name outside the branch prefix (`eph_`), so it can never touch
  another database on the server. The code: obiam/branch_databases_function.py.
- `BranchDatabases` (each branch): an `aws_lambda_invocation` of that function with
  `lifecycle_scope = "CRUD"`. The AWS provider then invokes it on create, on every change of the
  input (`tf.action = "update"`) and on destroy (`"delete"`), adding the previous input
  (hashicorp/terraform-provider-aws, internal/service/lambda/invocation.go, since v5.1.0), so
  `cdktf destroy` of a branch drops its databases and user, and a failed drop fails the destroy
  instead of leaving them behind unnoticed.

Why a function in the base rather than the branch's nodes: a branch's nodes never see the master
credential, so a branch cannot read or drop another branch's data, and the drop runs even when
the branch's nodes never booted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from cdktf import AssetType, TerraformAsset
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.lambda_function import (
    LambdaFunction,
    LambdaFunctionEnvironment,
    LambdaFunctionLoggingConfig,
    LambdaFunctionTracingConfig,
    LambdaFunctionVpcConfig,
)
from cdktf_cdktf_provider_aws.lambda_invocation import LambdaInvocation
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from constructs import Construct

from wso2_on_aws.account import AccountContext
from wso2_on_aws.log_groups import encrypted_log_group
from wso2_on_aws.security import Connections, Grantable

# Where the function gets the RDS certificate authorities it verifies the server with (the same
# bundle the nodes use; RDS "Using SSL/TLS to encrypt a connection to a DB instance").
RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
BRANCH_DATABASES_CONCURRENCY = 10


@dataclass(frozen=True)
class BranchDatabasesFunctionProps:
    function_name: str
    vpc_id: str
    subnet_ids: Sequence[str]
    db_host: str
    db_port: str
    # Read by the function; the database grants it (Database.grant_read_credentials).
    master_secret_arn: str
    # Every branch database and user name starts with it; the function refuses any other.
    name_prefix: str
    # The secrets the function may read a branch user's password from (a name pattern with *).
    branch_secret_name_pattern: str
    log_group_name: str
    log_retention_days: int
    logs_kms_key_arn: str
    package_path: str
    package_sha256_base64: str
    prevent_destroy: bool = True


class BranchDatabasesFunction(Construct):
    """Outputs: `function_name`, `connections` (the function's group; allow it into the database), `role`
    (grant it the master credential)."""

    def __init__(self, scope: Construct, id_: str, account: AccountContext, props: BranchDatabasesFunctionProps):
        super().__init__(scope, id_)
        group = SecurityGroup(self, "security-group", name=props.function_name, vpc_id=props.vpc_id,
                              description="The branch-databases function: to the database server and HTTPS only")
        self.connections = Connections(self, "branch-databases", group.id)
        # Secrets Manager (its VPC endpoint) and the RDS trust store (through the NAT gateway).
        VpcSecurityGroupEgressRule(self, "egress-https", security_group_id=group.id, cidr_ipv4="0.0.0.0/0",
                                   ip_protocol="tcp", from_port=443, to_port=443,
                                   description="Secrets Manager and the RDS certificate bundle")

        log_group = encrypted_log_group(self, "logs", name=props.log_group_name,
                                        retention_days=props.log_retention_days, kms_key_arn=props.logs_kms_key_arn,
                                        deletion_protection=props.prevent_destroy)
        role = IamRole(self, "role", name=props.function_name,
                       description="Creates and drops each branch environment's databases on the shared server",
                       assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                           "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                           "Action": "sts:AssumeRole",
                           "Condition": {"StringEquals": {"aws:SourceAccount": account.account_id}}}]}))
        branch_secrets = (f"arn:{account.partition}:secretsmanager:{account.region}:{account.account_id}:secret:"
                          f"{props.branch_secret_name_pattern}")
        via_secrets_manager = {"kms:ViaService": f"secretsmanager.{account.region}.amazonaws.com"}
        permissions = IamRolePolicy(self, "permissions", role=role.id, name="branch-databases", policy="{}")
        self.role = Grantable(permissions, role.arn, role.name, [
            {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": f"{log_group.arn}:*"},
            {"Sid": "Tracing", "Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
             "Resource": "*"},
            # Lambda's network interfaces in the VPC (what AWSLambdaVPCAccessExecutionRole grants; the
            # EC2 API takes no resource-level condition for Describe*).
            {"Sid": "NetworkInterfaces", "Effect": "Allow", "Resource": "*",
             "Action": ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
                        "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
                        "ec2:UnassignPrivateIpAddresses"]},
            # Each branch's user password, in that branch's secret under that branch's own key.
            {"Sid": "BranchUserPasswords", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
             "Resource": branch_secrets},
            {"Sid": "BranchUserPasswordKeys", "Effect": "Allow", "Action": "kms:Decrypt",
             "Resource": f"arn:{account.partition}:kms:{account.region}:{account.account_id}:key/*",
             "Condition": {"StringEquals": via_secrets_manager,
                           "StringLike": {"kms:EncryptionContext:SecretARN": branch_secrets}}},
        ])

        package = TerraformAsset(self, "package", path=props.package_path, type=AssetType.FILE)
        LambdaFunction(
            # 3.12, not 3.13: 3.13's default TLS context adds VERIFY_X509_STRICT, and whether every RDS
            # certificate chain passes it cannot be checked offline; 3.12 verifies chain and host name alike.
            self, "function", function_name=props.function_name, role=role.arn, runtime="python3.12",
            handler="index.handler", filename=package.path, source_code_hash=props.package_sha256_base64,
            architectures=["arm64"], memory_size=256, timeout=120,
            # Several branches deploy at once (one workflow run per pull request), each on its own
            # databases: a limit of 1 would throttle the second apply (Lambda answers 429 to a
            # synchronous call over the limit). The cap bounds the master's connections instead.
            reserved_concurrent_executions=BRANCH_DATABASES_CONCURRENCY,
            environment=LambdaFunctionEnvironment(variables={
                "MASTER_SECRET_ARN": props.master_secret_arn, "DB_HOST": props.db_host, "DB_PORT": props.db_port,
                "NAME_PREFIX": props.name_prefix, "CA_BUNDLE_URL": RDS_CA_BUNDLE_URL}),
            vpc_config=LambdaFunctionVpcConfig(subnet_ids=list(props.subnet_ids), security_group_ids=[group.id]),
            logging_config=LambdaFunctionLoggingConfig(log_format="JSON", log_group=log_group.name),
            tracing_config=LambdaFunctionTracingConfig(mode="Active"),
            description="Creates and drops branch environments' databases and users (obiam)",
            depends_on=[permissions])
        self.function_name = props.function_name


@dataclass(frozen=True)
class BranchDatabasesProps:
    function_name: str
    databases: tuple[str, ...]
    user: str
    password_secret_arn: str
    # Changes with the password, so that a new one reaches the server (an "update" invocation).
    password_version: str


class BranchDatabases(Construct):
    """Outputs: `provisioned` (the nodes boot after it)."""

    def __init__(self, scope: Construct, id_: str, props: BranchDatabasesProps):
        super().__init__(scope, id_)
        event = {"databases": list(props.databases), "user": props.user,
                 "password_secret_arn": props.password_secret_arn, "password_version": props.password_version}
        # No `triggers`: a trigger replaces the invocation, and a replacement under CRUD is a delete
        # (every table dropped) followed by a create. A changed input is an in-place "update".
        self.provisioned = LambdaInvocation(self, "databases", function_name=props.function_name,
                                            input=json.dumps(event), lifecycle_scope="CRUD")
