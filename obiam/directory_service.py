"""What AWS Directory Service allows where: the facts the config and preflight check a directory against.

Sources (read 2026-11-25):
- AWS Directory Service Administration Guide, "Region availability for Directory Service"
  (docs.aws.amazon.com/directoryservice/latest/admin-guide/regions.html): Simple AD is offered in
  six Regions only; AWS Managed Microsoft AD in every commercial Region.
- Same guide, "Simple AD prerequisites" (prereq_simple.html): "The VPC must not be configured with
  the following VPC endpoint(s)": CloudWatch, Systems Manager, Security Token Service (and Route 53
  resolver rules that send *.amazonaws.com to private addresses).
"""

from __future__ import annotations

SIMPLE_AD_REGIONS = frozenset({"us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1", "ap-southeast-2",
                               "ap-northeast-1"})

# Interface-endpoint service names (com.amazonaws.<region>.<name>) Simple AD's VPC must not have:
# Systems Manager's three, CloudWatch's two and STS.
SIMPLE_AD_FORBIDDEN_ENDPOINTS = frozenset({"ssm", "ssmmessages", "ec2messages", "logs", "monitoring", "sts"})


def simple_ad_offered_in(region: str) -> bool:
    return region in SIMPLE_AD_REGIONS


def endpoints_beside(directory_type: str, wanted: tuple[str, ...]) -> tuple[str, ...]:
    """The interface endpoints a VPC holding this directory may have, of those wanted: Simple AD's VPC
    goes without the forbidden ones (the nodes reach those services through the NAT gateways)."""
    if directory_type != "SimpleAD":
        return wanted
    return tuple(service for service in wanted if service not in SIMPLE_AD_FORBIDDEN_ENDPOINTS)
