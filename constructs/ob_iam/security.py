"""Security-group wiring: every allowed flow is one egress rule plus its matching ingress rule."""

from __future__ import annotations

from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct


def allow(scope: Construct, id_: str, *, source_security_group_id: str, target_security_group_id: str,
          port: int, description: str, protocol: str = "tcp", target_accepts: bool = True) -> None:
    """Lets members of the source group reach the target group on one port, and nothing else.

    Rules are separate resources (not inline blocks) so that two groups can point at
    each other without a dependency cycle. `target_accepts=False` adds only the egress rule,
    for a group AWS manages (a directory's) that already admits the VPC.
    """
    VpcSecurityGroupEgressRule(
        scope, f"{id_}-egress",
        security_group_id=source_security_group_id,
        referenced_security_group_id=target_security_group_id,
        ip_protocol=protocol, from_port=port, to_port=port, description=description,
    )
    if not target_accepts:
        return
    VpcSecurityGroupIngressRule(
        scope, f"{id_}-ingress",
        security_group_id=target_security_group_id,
        referenced_security_group_id=source_security_group_id,
        ip_protocol=protocol, from_port=port, to_port=port, description=description,
    )
