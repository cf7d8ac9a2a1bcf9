"""A regional WAF web ACL on the ALB: AWS managed rule groups plus a per-IP rate limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.wafv2_web_acl import (
    Wafv2WebAcl,
    Wafv2WebAclDefaultAction,
    Wafv2WebAclDefaultActionAllow,
    Wafv2WebAclRule,
    Wafv2WebAclRuleAction,
    Wafv2WebAclRuleActionBlock,
    Wafv2WebAclRuleActionCount,
    Wafv2WebAclRuleOverrideAction,
    Wafv2WebAclRuleOverrideActionCount,
    Wafv2WebAclRuleOverrideActionNone,
    Wafv2WebAclRuleVisibilityConfig,
    Wafv2WebAclVisibilityConfig,
)
from cdktf_cdktf_provider_aws.wafv2_web_acl_association import Wafv2WebAclAssociation
from cdktf_cdktf_provider_aws.wafv2_web_acl_logging_configuration import (
    Wafv2WebAclLoggingConfiguration,
    Wafv2WebAclLoggingConfigurationRedactedFields,
    Wafv2WebAclLoggingConfigurationRedactedFieldsSingleHeader,
)
from constructs import Construct

from wso2_on_aws.log_groups import encrypted_log_group

# AWS managed rule groups, in evaluation order. KnownBadInputs covers Log4Shell-style
# payloads; the reputation and anonymous-IP lists drop bad sources before anything else runs.
MANAGED_RULE_GROUPS = (
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesAnonymousIpList",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesSQLiRuleSet",
)
# Rules that only count:
# - SizeRestrictions_BODY: SAML responses POSTed to /commonauth exceed its 8 KB limit.
# - HostingProviderIPList: Open Banking third-party providers call the token and DCR
#   endpoints from cloud providers' addresses; blocking those would cut them off.
COUNT_ONLY = {
    "AWSManagedRulesCommonRuleSet": ("SizeRestrictions_BODY",),
    "AWSManagedRulesAnonymousIpList": ("HostingProviderIPList",),
}
# Credentials and session cookies never reach the WAF logs.
REDACTED_HEADERS = ("authorization", "cookie")


@dataclass(frozen=True, kw_only=True)
class WebApplicationFirewallProps:
    name: str
    load_balancer_arn: str
    # WAF logs must go to a group named aws-waf-logs-*.
    log_group_name: str
    log_retention_days: int
    logs_kms_key_arn: str
    rate_limit_per_5_minutes: int  # config's load_balancer.waf_rate_limit
    # Tor exits, VPNs and open proxies; a bank may let customers log in through a VPN.
    block_anonymous_ips: bool = True
    # False: every rule counts instead of blocking (a trial in a lower tier).
    block: bool = True
    prevent_destroy: bool = True


def _visibility(metric: str) -> Wafv2WebAclRuleVisibilityConfig:
    return Wafv2WebAclRuleVisibilityConfig(cloudwatch_metrics_enabled=True, metric_name=metric,
                                           sampled_requests_enabled=True)


class WebApplicationFirewall(Construct):
    def __init__(self, scope: Construct, id_: str, props: WebApplicationFirewallProps):
        super().__init__(scope, id_)
        rules = []
        for priority, group in enumerate(MANAGED_RULE_GROUPS):
            statement: dict[str, Any] = {"name": group, "vendor_name": "AWS"}
            count_only = COUNT_ONLY.get(group, ())
            if group == "AWSManagedRulesAnonymousIpList" and not props.block_anonymous_ips:
                count_only = (*count_only, "AnonymousIPList")
            if count_only:
                statement["rule_action_override"] = [{"name": rule, "action_to_use": {"count": {}}}
                                                     for rule in count_only]
            rules.append(Wafv2WebAclRule(
                name=group, priority=priority, visibility_config=_visibility(group),
                override_action=Wafv2WebAclRuleOverrideAction(none=Wafv2WebAclRuleOverrideActionNone())
                if props.block else Wafv2WebAclRuleOverrideAction(count=Wafv2WebAclRuleOverrideActionCount()),
                statement={"managed_rule_group_statement": statement}))
        # Brute force against /oauth2/token and the login pages, per client address.
        rules.append(Wafv2WebAclRule(
            name="rate-limit-per-ip", priority=len(MANAGED_RULE_GROUPS), visibility_config=_visibility("rate-limit"),
            action=Wafv2WebAclRuleAction(block=Wafv2WebAclRuleActionBlock()) if props.block
            else Wafv2WebAclRuleAction(count=Wafv2WebAclRuleActionCount()),
            statement={"rate_based_statement": {"limit": props.rate_limit_per_5_minutes,
                                                "aggregate_key_type": "IP"}}))
        acl = Wafv2WebAcl(
            self, "acl", name=props.name, scope="REGIONAL", description="WSO2 OB IAM load balancer",
            default_action=Wafv2WebAclDefaultAction(allow=Wafv2WebAclDefaultActionAllow()),
            visibility_config=Wafv2WebAclVisibilityConfig(cloudwatch_metrics_enabled=True, metric_name=props.name,
                                                          sampled_requests_enabled=True),
            rule=rules,
        )
        self.arn = acl.arn
        Wafv2WebAclAssociation(self, "association", resource_arn=props.load_balancer_arn, web_acl_arn=acl.arn)
        logs = encrypted_log_group(self, "logs", name=props.log_group_name, retention_days=props.log_retention_days,
                                   kms_key_arn=props.logs_kms_key_arn, deletion_protection=props.prevent_destroy)
        Wafv2WebAclLoggingConfiguration(
            self, "logging", resource_arn=acl.arn, log_destination_configs=[logs.arn],
            redacted_fields=[Wafv2WebAclLoggingConfigurationRedactedFields(
                single_header=Wafv2WebAclLoggingConfigurationRedactedFieldsSingleHeader(name=header))
                for header in REDACTED_HEADERS])
