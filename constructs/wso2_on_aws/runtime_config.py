"""The one SSM parameter through which deploy-time values reach the node bootstrap.

The user data is static (rendered at synth), so ids and addresses that exist only
after deploy (EFS, access points, database, directory) travel this way. It holds no
secret values, only the ARNs of the secrets the nodes may read.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import Fn
from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from constructs import Construct

from wso2_on_aws.security import Grantable


@dataclass(frozen=True)
class NodeRuntimeConfigProps:
    name: str
    efs_file_system_id: str
    efs_access_points: dict[str, str]
    db_host: str
    db_port: str
    db_secret_arn: str
    wso2_db_secret_arn: str
    node_secret_arn: str
    directory_dns_ips: list[str]
    directory_bind_secret_arn: str
    super_admin_secret_arn: str
    kms_key_arn: str


class NodeRuntimeConfig(Construct):
    """Outputs: `arn` (for the node role), `version` (changes roll the nodes)."""

    def __init__(self, scope: Construct, id_: str, props: NodeRuntimeConfigProps):
        super().__init__(scope, id_)
        parameter = SsmParameter(
            # No secret inside, but it maps the estate (hosts, ids), so it is encrypted like one.
            self, "parameter", name=props.name, type="SecureString", key_id=props.kms_key_arn, tier="Standard",
            description="Deploy-time values for the WSO2 OB IAM node bootstrap (no secrets)",
            value=Fn.jsonencode({
                "efs_file_system_id": props.efs_file_system_id,
                "efs_access_points": props.efs_access_points,
                "db_host": props.db_host,
                "db_port": props.db_port,
                "db_secret_arn": props.db_secret_arn,
                "wso2_db_secret_arn": props.wso2_db_secret_arn,
                "node_secret_arn": props.node_secret_arn,
                "directory_dns_ips": props.directory_dns_ips,
                "directory_bind_secret_arn": props.directory_bind_secret_arn,
                "super_admin_secret_arn": props.super_admin_secret_arn,
            }),
        )
        self.arn = parameter.arn
        self.version = parameter.version

    def grant_read(self, role: Grantable) -> None:
        """Lets `role` read the parameter (the data key decrypts it only through SSM: EncryptionKey)."""
        role.add_to_policy({"Sid": "RuntimeConfig", "Effect": "Allow", "Action": "ssm:GetParameter",
                            "Resource": self.arn})
