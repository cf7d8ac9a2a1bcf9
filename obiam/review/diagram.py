"""`obiam diagram`: the synthesized deployment as Mermaid (PR comments) or Graphviz (SVG).

Built from the stack's cdk.tf.json only, so it shows what the reviewed code would
deploy: ALB, WAF, the nodes in each AZ's app subnet, EFS mount targets, the Multi-AZ
database and the directory's two domain controllers. Missing parts are left out.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

_REF = re.compile(r"^\$\{aws_subnet\.([^.]+)\.id\}$")


@dataclass
class Zone:
    name: str
    subnets: dict[str, str] = field(default_factory=dict)  # tier -> CIDR
    nat: bool = False
    nodes: bool = False
    efs_mount: bool = False
    database: bool = False
    controller: bool = False


@dataclass
class Deployment:
    stack: str
    vpc_cidr: str | None = None
    zones: list[Zone] = field(default_factory=list)
    load_balancer: str | None = None
    internal: bool = False
    waf: bool = False
    sticky: str | None = None
    target_port: int | None = None
    nodes: str | None = None
    file_system: str | None = None
    database: str | None = None
    directory: str | None = None


def _only(stack: dict[str, Any], resource_type: str) -> dict[str, Any] | None:
    found = list(stack.get("resource", {}).get(resource_type, {}).values())
    return found[0] if len(found) == 1 else None


def model(stack: dict[str, Any]) -> Deployment:
    name = stack.get("//", {}).get("metadata", {}).get("stackName", "stack")
    deployment = Deployment(stack=name)
    vpc = _only(stack, "aws_vpc")
    deployment.vpc_cidr = vpc.get("cidr_block") if vpc else None
    zones_of = _network(stack, deployment)
    _traffic(stack, deployment, zones_of)
    _state(stack, deployment, zones_of)
    return deployment


ZonesOf = Callable[[Any], list[Zone]]


def _network(stack: dict[str, Any], deployment: Deployment) -> ZonesOf:
    """Fills in the AZs and their subnets; returns a lookup from subnet references to AZs."""
    resources = stack.get("resource", {})
    subnet_zone: dict[str, Zone] = {}
    zones: dict[str, Zone] = {}
    for subnet_name, subnet in sorted(resources.get("aws_subnet", {}).items()):
        tags = subnet.get("tags", {})
        zone_name = str(subnet.get("availability_zone", f"AZ {tags.get('obiam:az-index', '?')}"))
        zone = zones.setdefault(zone_name, Zone(zone_name))
        zone.subnets[str(tags.get("obiam:tier", "subnet"))] = str(subnet.get("cidr_block", ""))
        subnet_zone[subnet_name] = zone
    deployment.zones = [zones[z] for z in sorted(zones)]

    def zones_of(references: Any) -> list[Zone]:
        found = []
        for reference in references if isinstance(references, list) else [references]:
            match = _REF.match(str(reference))
            if match and match.group(1) in subnet_zone:
                found.append(subnet_zone[match.group(1)])
        return found

    for gateway in resources.get("aws_nat_gateway", {}).values():
        for zone in zones_of(gateway.get("subnet_id")):
            zone.nat = True
    return zones_of


def _traffic(stack: dict[str, Any], deployment: Deployment, zones_of: ZonesOf) -> None:
    alb = _only(stack, "aws_lb")
    if alb:
        deployment.load_balancer = str(alb.get("name", "ALB"))
        deployment.internal = bool(alb.get("internal"))
    deployment.waf = bool(stack.get("resource", {}).get("aws_wafv2_web_acl_association"))
    group = _only(stack, "aws_lb_target_group")
    if group:
        deployment.target_port = group.get("port")
        sticky = group.get("stickiness", {})
        if sticky.get("enabled"):
            deployment.sticky = f"{sticky.get('type')} {sticky.get('cookie_name', '')}".strip()
    asg = _only(stack, "aws_autoscaling_group")
    if asg:
        template = _only(stack, "aws_launch_template") or {}
        deployment.nodes = (f"{asg.get('min_size')}-{asg.get('max_size')} nodes (desired {asg.get('desired_capacity')})"
                            + (f", {template['instance_type']}" if template.get("instance_type") else ""))
        for zone in zones_of(asg.get("vpc_zone_identifier", [])):
            zone.nodes = True


def _state(stack: dict[str, Any], deployment: Deployment, zones_of: ZonesOf) -> None:
    for target in stack.get("resource", {}).get("aws_efs_mount_target", {}).values():
        for zone in zones_of(target.get("subnet_id")):
            zone.efs_mount = True
    fs = _only(stack, "aws_efs_file_system")
    if fs:
        deployment.file_system = f"EFS {fs.get('creation_token', '')}".strip()
    db = _only(stack, "aws_db_instance")
    if db:
        pair = "primary + standby" if db.get("multi_az") else "single instance"
        deployment.database = f"RDS {db.get('engine')} {db.get('engine_version', '')}, {pair}"
        for zone in zones_of((_only(stack, "aws_db_subnet_group") or {}).get("subnet_ids", [])):
            zone.database = True
    directory = _only(stack, "aws_directory_service_directory")
    if directory:
        controllers = zones_of(directory.get("vpc_settings", {}).get("subnet_ids", []))
        deployment.directory = (f"{directory.get('type')} {directory.get('name')}<br/>"
                                f"{len(controllers) or 2} domain controllers")
        for zone in controllers:
            zone.controller = True


def _stores(deployment: Deployment) -> list[tuple[str, str, str]]:
    """Shared stores: diagram key, label, and the Zone flag that links an AZ's data subnet to it."""
    stores = [("efs", deployment.file_system, "efs_mount"), ("rds", deployment.database, "database"),
              ("dir", deployment.directory, "controller")]
    return [(key, label, flag) for key, label, flag in stores if label]


def _zone_lines(zone: Zone) -> dict[str, str]:
    """Label per tier for one AZ."""
    public = f"public {zone.subnets.get('public', '')}" + ("<br/>NAT gateway" if zone.nat else "")
    app = f"app {zone.subnets.get('app', '')}" + ("<br/>WSO2 OB IAM node(s)" if zone.nodes else "")
    parts = [f"data {zone.subnets.get('data', '')}"]
    parts += [label for flag, label in ((zone.efs_mount, "EFS mount target"), (zone.database, "RDS subnet"),
                                        (zone.controller, "domain controller")) if flag]
    return {"public": public, "app": app, "data": "<br/>".join(parts)}


def _subnets_by_zone(deployment: Deployment) -> Iterator[tuple[int, Zone, list[tuple[str, str]]]]:
    """Per AZ: its index, the zone, and (tier, label) for each subnet it has."""
    for i, zone in enumerate(deployment.zones):
        labels = _zone_lines(zone)
        yield i, zone, [(tier, labels[tier]) for tier in ("public", "app", "data") if tier in zone.subnets]


def render_mermaid(deployment: Deployment) -> str:
    lines = ["flowchart TB"]
    entry = "clients" if deployment.internal else "internet"
    lines.append(f'  {entry}(("{"Internal clients" if deployment.internal else "Internet"}"))')
    if deployment.load_balancer:
        label = f"ALB {deployment.load_balancer}<br/>HTTPS 443"
        if deployment.sticky:
            label += f"<br/>sticky: {deployment.sticky}"
        lines.append(f'  alb["{label}"]')
        lines.append(f'  {entry} -->|"HTTPS"| alb')
        if deployment.waf:
            lines += ['  waf{{"WAF web ACL"}}', "  waf -.- alb"]
    lines.append(f'  subgraph vpc["VPC {deployment.vpc_cidr or "(existing)"}"]')
    for i, zone, subnets in _subnets_by_zone(deployment):
        lines.append(f'    subgraph az{i}["{zone.name}"]')
        lines += [f'      {tier}{i}["{text}"]' for tier, text in subnets]
        lines.append("    end")
    lines.append("  end")
    port = deployment.target_port or "HTTPS"
    node_zones = [i for i, z in enumerate(deployment.zones) if z.nodes]
    if deployment.load_balancer:
        lines += [f'  alb -->|"{port}"| app{i}' for i in node_zones]
    lines += [f'  app{a} <-.->|"cluster"| app{b}' for a, b in itertools.pairwise(node_zones)]
    for key, label, flag in _stores(deployment):
        lines.append(f'  {key}[("{label}")]')
        lines += [f"  data{i} --- {key}" for i, zone in enumerate(deployment.zones) if getattr(zone, flag)]
    if deployment.nodes:
        lines.append(f'  nodes["{deployment.nodes}"]')
        for i in node_zones:
            lines.append(f"  nodes -.- app{i}")
    return "\n".join(lines) + "\n"


def render_dot(deployment: Deployment) -> str:
    def label(text: str) -> str:
        return text.replace("<br/>", "\\n").replace('"', "'")

    lines = [f'digraph "{deployment.stack}" {{', "  rankdir=TB;", '  node [shape=box, fontname="Helvetica"];']
    entry = "Internal clients" if deployment.internal else "Internet"
    lines.append(f'  entry [label="{entry}", shape=ellipse];')
    if deployment.load_balancer:
        sticky = f"\\nsticky: {deployment.sticky}" if deployment.sticky else ""
        lines += [f'  alb [label="ALB {deployment.load_balancer}\\nHTTPS 443{sticky}"];', "  entry -> alb;"]
        if deployment.waf:
            lines += ['  waf [label="WAF web ACL", shape=hexagon];', "  waf -> alb [style=dashed, dir=none];"]
    lines.append(f'  subgraph cluster_vpc {{ label="VPC {deployment.vpc_cidr or "(existing)"}";')
    for i, zone, subnets in _subnets_by_zone(deployment):
        lines.append(f'    subgraph cluster_az{i} {{ label="{zone.name}";')
        lines += [f'      {tier}{i} [label="{label(text)}"];' for tier, text in subnets]
        lines.append("    }")
    lines.append("  }")
    for i, zone in enumerate(deployment.zones):
        if zone.nodes and deployment.load_balancer:
            lines.append(f'  alb -> app{i} [label="{deployment.target_port or "HTTPS"}"];')
    for key, text, flag in _stores(deployment):
        lines.append(f'  {key} [label="{label(text)}", shape=cylinder];')
        lines += [f"  data{i} -> {key} [dir=none];" for i, z in enumerate(deployment.zones) if getattr(z, flag)]
    lines.append("}")
    return "\n".join(lines) + "\n"
