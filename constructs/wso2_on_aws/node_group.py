"""The WSO2 OB IAM nodes: launch template, autoscaling group, instance role, node security group."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from cdktf import TerraformResource, TerraformResourceLifecycle, Token
from cdktf_cdktf_provider_aws.autoscaling_group import (
    AutoscalingGroup,
    AutoscalingGroupLaunchTemplate,
    AutoscalingGroupTag,
)
from cdktf_cdktf_provider_aws.autoscaling_policy import (
    AutoscalingPolicy,
    AutoscalingPolicyTargetTrackingConfiguration,
    AutoscalingPolicyTargetTrackingConfigurationPredefinedMetricSpecification,
)
from cdktf_cdktf_provider_aws.iam_instance_profile import IamInstanceProfile
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.iam_service_linked_role import IamServiceLinkedRole
from cdktf_cdktf_provider_aws.launch_template import (
    LaunchTemplate,
    LaunchTemplateBlockDeviceMappings,
    LaunchTemplateBlockDeviceMappingsEbs,
    LaunchTemplateIamInstanceProfile,
    LaunchTemplateMetadataOptions,
    LaunchTemplateMonitoring,
    LaunchTemplateNetworkInterfaces,
    LaunchTemplateTagSpecifications,
)
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from constructs import Construct

from obiam.choices import MetadataHttpTokens, ScalingMetric
from wso2_on_aws.security import Connections, Grantable, Port, Statement

# Amazon Linux 2023's root device.
ROOT_DEVICE = "/dev/xvda"
ENABLED_METRICS = (
    "GroupMinSize", "GroupMaxSize", "GroupDesiredCapacity", "GroupInServiceInstances",
    "GroupPendingInstances", "GroupStandbyInstances", "GroupTerminatingInstances", "GroupTotalInstances",
)


def autoscaling_service_role(scope: Construct, id_: str, suffix: str) -> IamServiceLinkedRole:
    """A service-linked role for this environment's ASG only, so the EBS key can name it instead of '*'."""
    return IamServiceLinkedRole(scope, id_, aws_service_name="autoscaling.amazonaws.com", custom_suffix=suffix,
                                description=f"Auto Scaling for {suffix}, the only user of its EBS key")


@dataclass(frozen=True)
class NodeGroupProps:
    name: str
    launch_template_name: str
    role_name: str
    security_group_name: str
    vpc_id: str
    subnet_ids: list[str]
    image_id: str
    instance_type: str
    user_data_base64: str
    min_size: int
    max_size: int
    desired_capacity: int
    root_volume_size: int
    ebs_kms_key_arn: str
    service_linked_role_arn: str
    target_group_arns: list[str]
    # WSO2's HTTPS servlet port (9443 + offset): what the load balancer forwards to and checks.
    service_port: int
    cluster_port: int
    health_check_grace_period: int
    scaling_metric: ScalingMetric
    scaling_target_value: int
    # "<alb arn suffix>/<target group arn suffix>", for request-count scaling.
    scaling_resource_label: str
    instance_tags: dict[str, str]
    partition: str
    # s3:// URIs of the objects every node downloads at boot (the product pack, a JDBC driver).
    downloads: tuple[str, ...]
    # The CloudWatch namespace the nodes publish their own metrics to (and no other).
    metrics_namespace: str
    metadata_http_tokens: MetadataHttpTokens = "required"
    # What must exist before the first node boots (e.g. WSO2's directory accounts).
    boot_after: list[TerraformResource] = field(default_factory=list)


class NodeGroup(Construct):
    """Outputs: `connections` (the HTTPS servlet port), `role` (grant on it), `security_group_id`, `role_name`,
    `role_arn`, `autoscaling_group_name`, `launch_template_id`."""

    def __init__(self, scope: Construct, id_: str, props: NodeGroupProps):
        super().__init__(scope, id_)
        sg = SecurityGroup(self, "sg", name=props.security_group_name, vpc_id=props.vpc_id,
                           description="WSO2 OB IAM nodes", tags={"Name": props.security_group_name})
        # One jsii round trip per attribute, however many resources use it.
        sg_id = self.security_group_id = sg.id
        self.connections = Connections(self, "nodes", sg_id, Port(
            props.service_port, "ALB to the WSO2 HTTPS servlet port (requests and health checks)"))
        # Cache-invalidation messages between members, and nothing else, travel node to node.
        self.connections.allow_internally("cluster", Port(
            props.cluster_port, "Hazelcast cluster membership and messages between nodes"))
        # AWS APIs (through the VPC endpoints or NAT), the product pack and OS packages. Other
        # egress (database, EFS, directory) is added as rules to those groups only.
        VpcSecurityGroupEgressRule(self, "egress-https", security_group_id=sg_id, cidr_ipv4="0.0.0.0/0",
                                   ip_protocol="tcp", from_port=443, to_port=443,
                                   description="HTTPS to AWS APIs and package repositories")

        role = IamRole(self, "role", name=props.role_name, description="WSO2 OB IAM node",
                       assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                           "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                           "Action": "sts:AssumeRole"}]}))
        self.role_name = role.name
        self.role_arn = role.arn
        permissions = IamRolePolicy(self, "permissions", role=role.id, name="obiam-node", policy="{}")
        # The nodes' own needs; what they need on other constructs' resources, those constructs grant.
        self.role = Grantable(permissions, role.arn, role.name,
                              own=[*self._base_statements(), self._downloads_statement(props)],
                              last=[self._metrics_statement(props.metrics_namespace)])
        profile = IamInstanceProfile(self, "profile", name=props.role_name, role=role.name)

        template = LaunchTemplate(
            self, "template", name=props.launch_template_name, image_id=props.image_id,
            instance_type=props.instance_type, update_default_version=True, ebs_optimized="true",
            iam_instance_profile=LaunchTemplateIamInstanceProfile(arn=profile.arn),
            network_interfaces=[LaunchTemplateNetworkInterfaces(
                device_index=0, associate_public_ip_address="false", delete_on_termination="true",
                security_groups=[sg_id])],
            metadata_options=LaunchTemplateMetadataOptions(
                http_endpoint="enabled", http_tokens=props.metadata_http_tokens,
                # One hop: the metadata token never reaches a container or a forwarded request.
                http_put_response_hop_limit=1, instance_metadata_tags="disabled"),
            block_device_mappings=[LaunchTemplateBlockDeviceMappings(
                device_name=ROOT_DEVICE, ebs=LaunchTemplateBlockDeviceMappingsEbs(
                    volume_size=props.root_volume_size, volume_type="gp3", encrypted="true",
                    kms_key_id=props.ebs_kms_key_arn, delete_on_termination="true"))],
            monitoring=LaunchTemplateMonitoring(enabled=True),
            user_data=props.user_data_base64,
            # Provider default tags do not reach instances an ASG launches; these do.
            tag_specifications=[
                LaunchTemplateTagSpecifications(resource_type="instance", tags=props.instance_tags),
                LaunchTemplateTagSpecifications(resource_type="volume", tags=props.instance_tags),
            ],
        )

        asg = AutoscalingGroup(
            self, "asg", name=props.name, min_size=props.min_size, max_size=props.max_size,
            desired_capacity=props.desired_capacity, vpc_zone_identifier=props.subnet_ids,
            target_group_arns=props.target_group_arns,
            # Replace a node the load balancer finds unhealthy, not only one whose VM died.
            health_check_type="ELB", health_check_grace_period=props.health_check_grace_period,
            default_instance_warmup=props.health_check_grace_period,
            # A numbered version, never $Latest/$Default: instance-refresh rollback needs one (EC2 Auto
            # Scaling User Guide, "Undo changes with a rollback").
            launch_template=AutoscalingGroupLaunchTemplate(id=template.id,
                                                           version=Token.as_string(template.latest_version)),
            enabled_metrics=list(ENABLED_METRICS), metrics_granularity="1Minute",
            termination_policies=["OldestLaunchTemplate", "OldestInstance"],
            service_linked_role_arn=props.service_linked_role_arn,
            # WSO2 needs minutes to become healthy; `obiam verify` checks health after a deploy
            # instead of a Terraform timeout that would taint (and later replace) the group.
            wait_for_capacity_timeout="0",
            tag=[AutoscalingGroupTag(key="Name", value=props.name, propagate_at_launch=False)],
            # Target tracking owns the desired count once the group exists. The launch template version
            # is `obiam rollout`'s: Terraform writes a new template version, and the group moves onto it
            # only when an instance refresh with that version as its desired configuration succeeds.
            # A refresh that fails rolls back to the version the group kept. (The provider's own
            # refresh first switches the group to the new version, so its auto_rollback would roll back
            # to the failing one: hashicorp/terraform-provider-aws#34189.)
            lifecycle=TerraformResourceLifecycle(ignore_changes=["desired_capacity", "launch_template"]),
        )
        self._asg = asg
        # No node boots before the permissions its boot script uses exist.
        self._boot_after: list[TerraformResource] = []
        self.boot_after(permissions, profile, *props.boot_after)
        self.autoscaling_group_name = asg.name
        self.launch_template_id = template.id

        if props.scaling_metric == "cpu":
            metric = AutoscalingPolicyTargetTrackingConfigurationPredefinedMetricSpecification(
                predefined_metric_type="ASGAverageCPUUtilization")
        else:
            metric = AutoscalingPolicyTargetTrackingConfigurationPredefinedMetricSpecification(
                predefined_metric_type="ALBRequestCountPerTarget", resource_label=props.scaling_resource_label)
        AutoscalingPolicy(
            self, "scaling", name=f"{props.name}-target-tracking", autoscaling_group_name=asg.name,
            policy_type="TargetTrackingScaling", estimated_instance_warmup=props.health_check_grace_period,
            target_tracking_configuration=AutoscalingPolicyTargetTrackingConfiguration(
                predefined_metric_specification=metric, target_value=props.scaling_target_value),
        )

    @staticmethod
    def _downloads_statement(props: NodeGroupProps) -> Statement:
        return {"Sid": "ProductPack", "Effect": "Allow", "Action": "s3:GetObject",
                "Resource": [f"arn:{props.partition}:s3:::{uri.removeprefix('s3://')}" for uri in props.downloads]}

    @staticmethod
    def _metrics_statement(namespace: str) -> Statement:
        return {"Sid": "NodeMetrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": namespace}}}

    @staticmethod
    def _base_statements() -> list[Statement]:
        return [
            {
                # Hazelcast-style member discovery. These EC2 read calls cannot be scoped to resources.
                "Sid": "ClusterMemberDiscovery",
                "Effect": "Allow",
                "Action": ["ec2:DescribeInstances", "ec2:DescribeAvailabilityZones"],
                "Resource": "*",
            },
            {
                # Session Manager instead of SSH: no key pairs, no port 22, every session audited.
                "Sid": "SessionManager",
                "Effect": "Allow",
                "Action": ["ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel",
                           "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel",
                           "ssmmessages:OpenDataChannel", "ec2messages:AcknowledgeMessage",
                           "ec2messages:DeleteMessage", "ec2messages:FailMessage", "ec2messages:GetEndpoint",
                           "ec2messages:GetMessages", "ec2messages:SendReply"],
                "Resource": "*",
            },
        ]

    def boot_after(self, *things: TerraformResource) -> None:
        """Makes the group wait for `things`, also ones made after it (e.g. the file system policy that
        names the node role): the first node's boot script reads, mounts and writes through them."""
        self._boot_after.extend(things)
        # One override with the whole list, as bare addresses, which is what Terraform's depends_on takes.
        self._asg.add_override("depends_on", [f"{thing.terraform_resource_type}.{thing.friendly_unique_id}"
                                              for thing in self._boot_after])
