"""The VPC: public subnets for the ALB, private app subnets for the nodes, private data subnets.

Either a new VPC across `az_count` AZs, or an existing one given by subnet ids. Both
expose the same outputs, so the constructs after it never know which.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.data_aws_subnet import DataAwsSubnet
from cdktf_cdktf_provider_aws.data_aws_vpc import DataAwsVpc
from cdktf_cdktf_provider_aws.default_security_group import DefaultSecurityGroup
from cdktf_cdktf_provider_aws.eip import Eip
from cdktf_cdktf_provider_aws.flow_log import FlowLog
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.internet_gateway import InternetGateway
from cdktf_cdktf_provider_aws.nat_gateway import NatGateway
from cdktf_cdktf_provider_aws.route import Route
from cdktf_cdktf_provider_aws.route_table import RouteTable
from cdktf_cdktf_provider_aws.route_table_association import RouteTableAssociation
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.subnet import Subnet
from cdktf_cdktf_provider_aws.vpc import Vpc
from cdktf_cdktf_provider_aws.vpc_endpoint import VpcEndpoint
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from wso2_on_aws.account import AccountContext
from wso2_on_aws.log_groups import encrypted_log_group

TIERS = ("public", "app", "data")
# What the nodes call without leaving the VPC: SSM (boot config, Session Manager instead of
# SSH), Secrets Manager (DB and directory credentials), CloudWatch Logs, and EC2 (cluster
# member discovery).
INTERFACE_ENDPOINTS = ("ssm", "ssmmessages", "ec2messages", "secretsmanager", "logs", "ec2")


@dataclass(frozen=True)
class ExistingVpcProps:
    vpc_id: str
    public_subnet_ids: tuple[str, ...]
    app_subnet_ids: tuple[str, ...]
    data_subnet_ids: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class NetworkProps:
    name_prefix: str
    region: str
    # Zone names, in order; subnet i of every tier goes to zone i.
    availability_zones: tuple[str, ...]
    vpc_cidr: str
    flow_log_group_name: str
    log_retention_days: int
    logs_kms_key_arn: str
    nat_gateway_per_az: bool  # config's network.nat_gateways
    flow_logs: bool = True
    existing: ExistingVpcProps | None = None
    prevent_destroy: bool = True
    # Service names (com.amazonaws.<region>.<name>) to reach through interface endpoints.
    interface_endpoints: tuple[str, ...] = INTERFACE_ENDPOINTS


def subnet_cidrs(vpc_cidr: str, az_count: int) -> dict[str, list[str]]:
    """Per tier, one CIDR per AZ: app subnets get an eighth of the VPC each (nodes scale there);
    public and data subnets share the last two eighths."""
    eighths = list(ipaddress.IPv4Network(vpc_cidr).subnets(prefixlen_diff=3))
    public = list(eighths[6].subnets(prefixlen_diff=3))
    data = list(eighths[7].subnets(prefixlen_diff=3))
    return {
        "app": [str(n) for n in eighths[:az_count]],
        "public": [str(n) for n in public[:az_count]],
        "data": [str(n) for n in data[:az_count]],
    }


class Network(Construct):
    vpc_id: str
    vpc_cidr: str
    public_subnet_ids: list[str]
    app_subnet_ids: list[str]
    data_subnet_ids: list[str]
    availability_zones: list[str]

    def __init__(self, scope: Construct, id_: str, account: AccountContext, props: NetworkProps):
        super().__init__(scope, id_)
        self.props = props
        self.account = account
        if props.existing is not None:
            self._use_existing(props.existing)
        else:
            self._create()

    def _use_existing(self, existing: ExistingVpcProps) -> None:
        self.vpc_id = existing.vpc_id
        self.public_subnet_ids = list(existing.public_subnet_ids)
        self.app_subnet_ids = list(existing.app_subnet_ids)
        self.data_subnet_ids = list(existing.data_subnet_ids)
        app_subnets = [DataAwsSubnet(self, f"app-{i}", id=s) for i, s in enumerate(existing.app_subnet_ids)]
        self.availability_zones = [s.availability_zone for s in app_subnets]
        # An existing VPC brings its own endpoints, NAT and flow logs; this only reads it.
        self.vpc_cidr = DataAwsVpc(self, "vpc", id=existing.vpc_id).cidr_block

    def _create(self) -> None:
        p = self.props
        # Literal names, not a data-source lookup: a zone AWS adds or impairs can never shift
        # the list and make Terraform replace subnets.
        self.availability_zones = list(p.availability_zones)
        az_count = len(p.availability_zones)
        vpc = Vpc(self, "vpc", cidr_block=p.vpc_cidr, enable_dns_support=True, enable_dns_hostnames=True,
                  tags={"Name": p.name_prefix})
        # Each attribute read is a round trip to the jsii runtime: read tokens once, reuse them.
        vpc_id = self.vpc_id = vpc.id
        self.vpc_cidr = vpc.cidr_block
        # The default group would otherwise allow all traffic between anything placed in it.
        DefaultSecurityGroup(self, "default-sg", vpc_id=vpc_id, ingress=[], egress=[],
                             tags={"Name": f"{p.name_prefix}-default-deny"})
        cidrs = subnet_cidrs(p.vpc_cidr, az_count)
        subnet_ids: dict[str, list[str]] = {tier: [] for tier in TIERS}
        for tier in TIERS:
            for i in range(az_count):
                subnet_ids[tier].append(Subnet(
                    self, f"{tier}-{i}", vpc_id=vpc_id, cidr_block=cidrs[tier][i],
                    availability_zone=self.availability_zones[i],
                    map_public_ip_on_launch=False,
                    tags={"Name": f"{p.name_prefix}-{tier}-{i + 1}", "obiam:tier": tier, "obiam:az-index": str(i)},
                ).id)
        self.public_subnet_ids = subnet_ids["public"]
        self.app_subnet_ids = subnet_ids["app"]
        self.data_subnet_ids = subnet_ids["data"]

        igw = InternetGateway(self, "igw", vpc_id=vpc_id, tags={"Name": p.name_prefix})
        public_routes = RouteTable(self, "public-routes", vpc_id=vpc_id,
                                   tags={"Name": f"{p.name_prefix}-public"}).id
        Route(self, "public-default", route_table_id=public_routes, destination_cidr_block="0.0.0.0/0",
              gateway_id=igw.id)
        for i, subnet_id in enumerate(self.public_subnet_ids):
            RouteTableAssociation(self, f"public-{i}-routes", subnet_id=subnet_id, route_table_id=public_routes)

        nat_count = az_count if p.nat_gateway_per_az else 1
        nats = []
        for i in range(nat_count):
            eip = Eip(self, f"nat-{i}-ip", domain="vpc", tags={"Name": f"{p.name_prefix}-nat-{i + 1}"})
            nats.append(NatGateway(self, f"nat-{i}", allocation_id=eip.allocation_id,
                                   subnet_id=self.public_subnet_ids[i], tags={"Name": f"{p.name_prefix}-nat-{i + 1}"},
                                   depends_on=[igw]).id)
        private_route_tables = []
        for i in range(az_count):
            # Each AZ's app subnet leaves through its own AZ's NAT gateway, so losing an AZ
            # does not cut the others off (with a single NAT, all share the first).
            routes = RouteTable(self, f"app-{i}-routes", vpc_id=vpc_id,
                                tags={"Name": f"{p.name_prefix}-app-{i + 1}"}).id
            Route(self, f"app-{i}-default", route_table_id=routes, destination_cidr_block="0.0.0.0/0",
                  nat_gateway_id=nats[i if p.nat_gateway_per_az else 0])
            RouteTableAssociation(self, f"app-{i}-assoc", subnet_id=self.app_subnet_ids[i], route_table_id=routes)
            private_route_tables.append(routes)
        # Data subnets (RDS, EFS, directory) have no route out of the VPC at all.
        data_routes = RouteTable(self, "data-routes", vpc_id=vpc_id, tags={"Name": f"{p.name_prefix}-data"}).id
        for i, subnet_id in enumerate(self.data_subnet_ids):
            RouteTableAssociation(self, f"data-{i}-assoc", subnet_id=subnet_id, route_table_id=data_routes)

        VpcEndpoint(self, "s3-endpoint", vpc_id=vpc_id, service_name=f"com.amazonaws.{p.region}.s3",
                    vpc_endpoint_type="Gateway", route_table_ids=[*private_route_tables, data_routes],
                    tags={"Name": f"{p.name_prefix}-s3"})
        endpoint_sg = SecurityGroup(self, "endpoints-sg", name=f"{p.name_prefix}-endpoints", vpc_id=vpc_id,
                                    description="HTTPS from inside the VPC to AWS service endpoints",
                                    tags={"Name": f"{p.name_prefix}-endpoints"}).id
        VpcSecurityGroupIngressRule(self, "endpoints-https", security_group_id=endpoint_sg,
                                    cidr_ipv4=p.vpc_cidr, ip_protocol="tcp", from_port=443, to_port=443,
                                    description="HTTPS from the VPC")
        for service in p.interface_endpoints:
            VpcEndpoint(self, f"{service}-endpoint", vpc_id=vpc_id,
                        service_name=f"com.amazonaws.{p.region}.{service}", vpc_endpoint_type="Interface",
                        private_dns_enabled=True, subnet_ids=self.app_subnet_ids,
                        security_group_ids=[endpoint_sg], tags={"Name": f"{p.name_prefix}-{service}"})
        if p.flow_logs:
            self._flow_logs(vpc_id)

    def _flow_logs(self, vpc_id: str) -> None:
        p = self.props
        group_arn = encrypted_log_group(self, "flow-logs", name=p.flow_log_group_name,
                                        retention_days=p.log_retention_days, kms_key_arn=p.logs_kms_key_arn,
                                        deletion_protection=p.prevent_destroy).arn
        account = self.account
        # Amazon VPC User Guide, "IAM role for publishing flow logs to CloudWatch Logs": the service
        # assumes the role only for flow logs of this account (confused-deputy conditions), and
        # describes log groups before it writes ("Access error" on the flow log otherwise).
        role = IamRole(self, "flow-logs-role", name=f"{p.name_prefix}-flow-logs",
                       assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                           "Effect": "Allow", "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                           "Action": "sts:AssumeRole",
                           "Condition": {
                               "StringEquals": {"aws:SourceAccount": account.account_id},
                               "ArnLike": {"aws:SourceArn": f"arn:{account.partition}:ec2:{p.region}:"
                                                            f"{account.account_id}:vpc-flow-log/*"}}}]}))
        IamRolePolicy(self, "flow-logs-write", role=role.id, name="write-flow-logs",
                      policy=json.dumps({"Version": "2012-10-17", "Statement": [
                          {"Effect": "Allow",
                           "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                           "Resource": f"{group_arn}:*"},
                          {"Effect": "Allow", "Action": "logs:DescribeLogGroups",
                           "Resource": f"arn:{account.partition}:logs:{p.region}:{account.account_id}:log-group:*"},
                      ]}))
        FlowLog(self, "flow-log", vpc_id=vpc_id, traffic_type="ALL", log_destination_type="cloud-watch-logs",
                log_destination=group_arn, iam_role_arn=role.arn, max_aggregation_interval=60)
