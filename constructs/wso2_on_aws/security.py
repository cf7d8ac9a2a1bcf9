"""Who may reach whom, and who may do what on which resource.

`Connections` (after the AWS CDK's aws-ec2 `Connections`): a construct with a security group says
which port it serves; `x.connections.allow_from(y.connections)` writes the egress rule on y's group
and the ingress rule on x's, and nobody outside the construct names a port.

`Grantable`: a role whose one inline policy grant methods add statements to. A construct that owns
a resource grants on it (`artifacts.grant_mount(nodes.role)`), writing the identity statement here
and, where the resource has one, its resource policy, so the two halves never drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from cdktf import TerraformStack
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

Statement = dict[str, Any]


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


@dataclass(frozen=True)
class Port:
    """A port a construct serves, and why a peer reaches it (the rules' description)."""

    number: int
    description: str
    protocol: str = "tcp"


class Connectable(Protocol):
    """A construct with a security group: `connections` says which port its owner serves."""

    @property
    def connections(self) -> Connections: ...


class Connections:
    """A security group, the port its owner serves, and the rules that let peers reach it.

    `name` makes the rule ids (`<peer>-to-<name>-egress/-ingress`, at the stack's level), so it is
    part of the rules' Terraform addresses: keep it when refactoring.
    """

    def __init__(self, owner: Construct, name: str, security_group_id: str, default_port: Port | None = None,
                 *, managed_by_aws: bool = False) -> None:
        self._owner = owner
        self.name = name
        self.security_group_id = security_group_id
        self.default_port = default_port
        # A group AWS manages (a directory's) already admits the VPC; only the peer's egress is ours.
        self._accepts_rules = not managed_by_aws

    def allow_from(self, peer: Connections | Connectable, port: Port | None = None) -> None:
        """Lets `peer`'s members reach this group's members on `port` (default: the owner's port)."""
        if not isinstance(peer, Connections):
            peer = peer.connections
        port = port or self.default_port
        if port is None:
            raise ValueError(f"{self.name} serves no default port; name the port to allow")
        allow(TerraformStack.of(self._owner), f"{peer.name}-to-{self.name}",
              source_security_group_id=peer.security_group_id, target_security_group_id=self.security_group_id,
              port=port.number, description=port.description, protocol=port.protocol,
              target_accepts=self._accepts_rules)

    def allow_internally(self, id_: str, port: Port) -> None:
        """Lets members of this group reach each other on `port` (and nothing else)."""
        allow(self._owner, id_, source_security_group_id=self.security_group_id,
              target_security_group_id=self.security_group_id, port=port.number, description=port.description,
              protocol=port.protocol)


class Grantable:
    """A role and its one inline policy: the role's own statements first, then what grants add, in order.

    A grant whose Sid is already there widens that statement's Resource (e.g. every secret the nodes
    read, from three constructs, is one `Credentials` statement).
    """

    def __init__(self, policy: IamRolePolicy, arn: str, name: str, own: list[Statement],
                 last: list[Statement] | None = None) -> None:
        self._policy = policy
        self.arn = arn
        self.name = name
        self._own = list(own)
        self._granted: list[Statement] = []
        self._last = list(last or [])
        self._render()

    def add_to_policy(self, statement: Statement) -> None:
        same = next((s for s in self._granted if "Sid" in statement and s.get("Sid") == statement["Sid"]), None)
        if same is None:
            self._granted.append(dict(statement))
        else:
            if {k: v for k, v in same.items() if k != "Resource"} != {
                    k: v for k, v in statement.items() if k != "Resource"}:
                raise ValueError(f"two grants named {statement['Sid']} differ in more than their resources")
            same["Resource"] = [*_as_list(same["Resource"]), *_as_list(statement["Resource"])]
        self._render()

    def _render(self) -> None:
        self._policy.policy = json.dumps({"Version": "2012-10-17",
                                          "Statement": [*self._own, *self._granted, *self._last]})


def _as_list(resource: str | list[str]) -> list[str]:
    return [resource] if isinstance(resource, str) else list(resource)


def secrets_read(arns: list[str]) -> Statement:
    """Reading exactly these secrets. One Sid for every construct's secrets: the nodes' `Credentials`."""
    return {"Sid": "Credentials", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": arns}
