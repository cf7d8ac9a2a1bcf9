"""EFS for WSO2's runtime artifacts, shared by every node (the guide's "artifact synchronization")."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf import TerraformResource
from cdktf_cdktf_provider_aws.efs_access_point import (
    EfsAccessPoint,
    EfsAccessPointPosixUser,
    EfsAccessPointRootDirectory,
    EfsAccessPointRootDirectoryCreationInfo,
)
from cdktf_cdktf_provider_aws.efs_backup_policy import EfsBackupPolicy, EfsBackupPolicyBackupPolicy
from cdktf_cdktf_provider_aws.efs_file_system import EfsFileSystem
from cdktf_cdktf_provider_aws.efs_file_system_policy import EfsFileSystemPolicy
from cdktf_cdktf_provider_aws.efs_mount_target import EfsMountTarget
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from constructs import Construct

from wso2_on_aws.security import Connections, Grantable, Port

# NFS (EFS mounts it with TLS through the EFS mount helper's stunnel, still to port 2049).
NFS = Port(2049, "NFS over TLS to the shared runtime artifacts")
# Locks and markers the nodes coordinate through (first-boot seeding, schema creation).
CONTROL_ACCESS_POINT = "control"


@dataclass(frozen=True)
class ArtifactFileSystemProps:
    name: str
    vpc_id: str
    # One subnet per AZ the nodes run in; each gets a mount target.
    subnet_ids: list[str]
    kms_key_arn: str
    directories: tuple[str, ...]
    posix_uid: int
    # EFS's automatic backups (AWS's default plan, daily, 35 days, in the account's automatic-backup vault).
    # Off when the toolkit's own AWS Backup plan covers the file system: that vault is neither locked nor
    # copied to another region, so it would only double the cost.
    automatic_backups: bool = True


class ArtifactFileSystem(Construct):
    """Outputs: `connections` (NFS), `file_system_id`, `arn`, `access_point_ids` (directory -> id),
    `security_group_id`, `ready` (what a client's first mount needs). Grants: `grant_mount(role)`."""

    def __init__(self, scope: Construct, id_: str, props: ArtifactFileSystemProps):
        super().__init__(scope, id_)
        fs = EfsFileSystem(self, "fs", creation_token=props.name, encrypted=True, kms_key_id=props.kms_key_arn,
                           performance_mode="generalPurpose", throughput_mode="elastic",
                           tags={"Name": props.name})
        # One jsii round trip per attribute, however many resources use it.
        fs_id = self.file_system_id = fs.id
        self.arn = fs.arn
        EfsBackupPolicy(self, "backups", file_system_id=fs_id,
                        backup_policy=EfsBackupPolicyBackupPolicy(
                            status="ENABLED" if props.automatic_backups else "DISABLED"))
        sg = SecurityGroup(self, "sg", name=f"{props.name}-nfs", vpc_id=props.vpc_id,
                           description="NFS to the artifact file system, from the IAM nodes only",
                           tags={"Name": f"{props.name}-nfs"})
        sg_id = self.security_group_id = sg.id
        self.connections = Connections(self, "efs", sg_id, NFS)
        # What a client needs before its first mount: a mount target in its AZ, then (grant_mount)
        # the file system policy that lets it in.
        self.ready: list[TerraformResource] = [
            EfsMountTarget(self, f"mount-{i}", file_system_id=fs_id, subnet_id=subnet, security_groups=[sg_id])
            for i, subnet in enumerate(props.subnet_ids)]
        self.access_point_ids: dict[str, str] = {}
        self.access_point_arns: list[str] = []
        for directory in (*props.directories, CONTROL_ACCESS_POINT):
            # Every node writes as the same WSO2 user, whatever uid the client claims.
            point = EfsAccessPoint(
                self, f"ap-{directory}", file_system_id=fs_id, tags={"Name": f"{props.name}-{directory}"},
                posix_user=EfsAccessPointPosixUser(uid=props.posix_uid, gid=props.posix_uid),
                root_directory=EfsAccessPointRootDirectory(
                    path=f"/wso2/{directory}",
                    creation_info=EfsAccessPointRootDirectoryCreationInfo(
                        owner_uid=props.posix_uid, owner_gid=props.posix_uid, permissions="0750")),
            )
            self.access_point_ids[directory] = point.id
            self.access_point_arns.append(point.arn)

    def grant_mount(self, role: Grantable) -> None:
        """Lets `role` mount and write through the access points, and makes it the only principal that may
        mount, only over TLS: the identity statement on the role and the file system policy, together.

        A separate step because the node role is created after the file system it mounts.
        """
        role.add_to_policy({
            "Sid": "ArtifactMounts", "Effect": "Allow",
            "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
            "Resource": self.arn,
            "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": self.access_point_arns}}})
        role_arn = role.arn
        policy = EfsFileSystemPolicy(self, "policy", file_system_id=self.file_system_id, policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "DenyUnencryptedTransport", "Effect": "Deny", "Principal": {"AWS": "*"},
                 "Action": "*", "Resource": self.arn, "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
                {"Sid": "NodesMountThroughMountTargets", "Effect": "Allow", "Principal": {"AWS": role_arn},
                 "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                 "Resource": self.arn,
                 "Condition": {"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}}},
            ],
        }))
        self.ready.append(policy)
