"""The ALB in front of the IAM nodes: HTTPS with a FAPI-grade TLS policy, sticky sessions, health checks."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_aws.lb import Lb, LbAccessLogs
from cdktf_cdktf_provider_aws.lb_listener import (
    LbListener,
    LbListenerDefaultAction,
    LbListenerDefaultActionRedirect,
    LbListenerMutualAuthentication,
)
from cdktf_cdktf_provider_aws.lb_listener_rule import (
    LbListenerRule,
    LbListenerRuleAction,
    LbListenerRuleActionFixedResponse,
    LbListenerRuleCondition,
    LbListenerRuleConditionPathPattern,
)
from cdktf_cdktf_provider_aws.lb_target_group import LbTargetGroup, LbTargetGroupHealthCheck, LbTargetGroupStickiness
from cdktf_cdktf_provider_aws.route53_record import Route53Record, Route53RecordAlias
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from obiam import wso2
from obiam.choices import StickinessType
from wso2_on_aws.security import Connections


@dataclass(frozen=True)
class StickinessProps:
    type: StickinessType
    cookie_name: str
    cookie_duration: int


@dataclass(frozen=True, kw_only=True)
class LoadBalancerProps:
    name: str
    target_group_name: str
    security_group_name: str
    vpc_id: str
    subnet_ids: list[str]
    certificate_arn: str
    ssl_policy: str
    target_port: int
    stickiness: StickinessProps
    # Tuning and exposure come from config (obiam/config.py LoadBalancerConfig, their one home).
    internal: bool
    ingress_cidrs: tuple[str, ...]
    mutual_tls_passthrough: bool
    deregistration_delay: int
    idle_timeout: int
    deletion_protection: bool = True
    access_log_bucket: str | None = None
    access_log_prefix: str = "alb"
    # The bucket's policy and settings, which must exist before logging is switched on.
    access_log_bucket_ready: tuple[ITerraformDependable, ...] = ()
    # The public name and its Route 53 zone: the alias record to the load balancer is then this
    # construct's, created and destroyed with it. None: the name is managed elsewhere.
    hostname: str | None = None
    hosted_zone_id: str | None = None


class LoadBalancer(Construct):
    """Outputs: `connections` (for rules to the nodes), `security_group_id`, `target_group_arn`, `arn`, `arn_suffix`,
    `target_group_arn_suffix` (for request metrics), `dns_name`."""

    def __init__(self, scope: Construct, id_: str, props: LoadBalancerProps):
        super().__init__(scope, id_)
        sg = SecurityGroup(self, "sg", name=props.security_group_name, vpc_id=props.vpc_id,
                           description="Internet to the OB IAM load balancer: HTTPS, and HTTP only to redirect",
                           tags={"Name": props.security_group_name})
        # One jsii round trip per attribute, however many resources use it.
        sg_id = self.security_group_id = sg.id
        self.connections = Connections(self, "alb", sg_id)
        for i, cidr in enumerate(props.ingress_cidrs):
            for port, what in ((443, "HTTPS"), (80, "HTTP, answered with a redirect to HTTPS")):
                VpcSecurityGroupIngressRule(self, f"ingress-{port}-{i}", security_group_id=sg_id, cidr_ipv4=cidr,
                                            ip_protocol="tcp", from_port=port, to_port=port, description=what)

        access_logs = None
        if props.access_log_bucket is not None:
            access_logs = LbAccessLogs(bucket=props.access_log_bucket, prefix=props.access_log_prefix, enabled=True)
        self.alb = Lb(
            self, "alb", name=props.name, load_balancer_type="application", internal=props.internal,
            subnets=props.subnet_ids, security_groups=[sg_id],
            # Requests with malformed headers never reach WSO2 (request-smuggling defence).
            drop_invalid_header_fields=True, desync_mitigation_mode="strictest",
            enable_deletion_protection=props.deletion_protection, idle_timeout=props.idle_timeout,
            enable_http2=True, access_logs=access_logs,
            depends_on=list(props.access_log_bucket_ready) or None,
        )
        self.arn = alb_arn = self.alb.arn
        self.arn_suffix = self.alb.arn_suffix
        self.dns_name = self.alb.dns_name
        if props.hosted_zone_id is not None and props.hostname is not None:
            Route53Record(self, "alias", zone_id=props.hosted_zone_id, name=props.hostname, type="A",
                          alias=Route53RecordAlias(name=self.alb.dns_name, zone_id=self.alb.zone_id,
                                                   evaluate_target_health=True))

        sticky = props.stickiness
        self.target_group = LbTargetGroup(
            self, "nodes", name=props.target_group_name, vpc_id=props.vpc_id, target_type="instance",
            port=props.target_port, protocol="HTTPS", protocol_version="HTTP1",
            deregistration_delay=str(props.deregistration_delay),
            # WSO2's HA guide: the load balancer must use sticky sessions (login flows keep state per node).
            stickiness=LbTargetGroupStickiness(
                enabled=True, type=sticky.type, cookie_duration=sticky.cookie_duration,
                cookie_name=sticky.cookie_name if sticky.type == "app_cookie" else None),
            health_check=LbTargetGroupHealthCheck(
                enabled=True, protocol="HTTPS", port="traffic-port", path=wso2.LIVENESS_CHECK_PATH, matcher="200",
                interval=30, timeout=10, healthy_threshold=3, unhealthy_threshold=3),
        )
        self.target_group_arn = self.target_group.arn
        self.target_group_arn_suffix = self.target_group.arn_suffix

        https = LbListener(
            self, "https", load_balancer_arn=alb_arn, port=443, protocol="HTTPS",
            certificate_arn=props.certificate_arn, ssl_policy=props.ssl_policy,
            mutual_authentication=(LbListenerMutualAuthentication(mode="passthrough")
                                   if props.mutual_tls_passthrough else None),
            default_action=[LbListenerDefaultAction(type="forward", target_group_arn=self.target_group.arn)],
        )
        https_arn = https.arn
        LbListener(
            self, "http", load_balancer_arn=alb_arn, port=80, protocol="HTTP",
            default_action=[LbListenerDefaultAction(type="redirect", redirect=LbListenerDefaultActionRedirect(
                protocol="HTTPS", port="443", status_code="HTTP_301"))],
        )
        # WSO2: the health-check API must not be reachable from outside. Target-group health
        # checks go to the nodes directly and never pass through this listener rule.
        LbListenerRule(
            self, "hide-health-check", listener_arn=https_arn, priority=1,
            condition=[LbListenerRuleCondition(path_pattern=LbListenerRuleConditionPathPattern(
                values=["/api/health-check/*"]))],
            action=[LbListenerRuleAction(type="fixed-response", fixed_response=LbListenerRuleActionFixedResponse(
                content_type="text/plain", status_code="404", message_body="Not Found"))],
        )
