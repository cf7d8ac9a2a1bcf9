"""Value types of the environment configuration: the shapes a single value must have (AWS's naming rules,
ids, ARNs, CIDRs, tag values) as pydantic-annotated types and validators, and how a rule failure is
reported. The schema (obiam/config.py) builds on these; nothing here knows about environments or tiers."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator

from obiam.naming import TAG_VALUE_ALLOWED, tag_value_problem

REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
ACM_ARN = re.compile(
    r"^arn:aws(-cn|-us-gov)?:acm:(?P<region>[a-z]{2}(-gov)?-[a-z]+-\d):(?P<account>\d{12}):certificate/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
ACCOUNT_ID = re.compile(r"^\d{12}$")
KMS_KEY_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$")
HOSTED_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
ROLE_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::(?P<account>\d{12}):role/[A-Za-z0-9+=,.@_/-]{1,512}$")
# Keys limited to S3's "safe characters": the URI ends up inside the node's boot script.
S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>[A-Za-z0-9!_.*'()/+=-]+)$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# S3 User Guide, "General purpose bucket naming rules": besides 3-63 lower-case letters, digits, . and
# -, starting and ending with a letter or digit, these are refused.
BUCKET_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\.\."), "two adjacent periods"),
    (re.compile(r"^\d+\.\d+\.\d+\.\d+$"), "the form of an IP address"),
    (re.compile(r"^(xn--|sthree-|amzn-s3-demo-)"), "a prefix S3 reserves (xn--, sthree-, amzn-s3-demo-)"),
    (re.compile(r"(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$"),
     "a suffix S3 reserves (-s3alias, --ol-s3, .mrap, --x-s3, --table-s3)"),
)
BUCKET_ALLOWED = ("an S3 bucket name: 3-63 lower-case letters, digits, . and -, starting and ending with a letter or "
                  "digit, no .., not an IP address, none of S3's reserved prefixes and suffixes")
# Names end up in ALB and target-group names (32 characters at most) after "obiam-".
ENVIRONMENT_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])$")
HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
AMI_ID = re.compile(r"^ami-[0-9a-f]{8}([0-9a-f]{9})?$")
VPC_ID = re.compile(r"^vpc-[0-9a-f]{8}([0-9a-f]{9})?$")
SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8}([0-9a-f]{9})?$")
DB_CLASS = re.compile(r"^db\.[a-z0-9-]+\.[a-z0-9]+$")
JDK = re.compile(r"^(?P<major>1\.8|8|11|17|21)(\.0(_\d+|\.\d+(\.\d+)?)?)?$")
DYNAMODB_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
KEY_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/-]{1,200}$")
PARAMETER_NAME = re.compile(r"^/[A-Za-z0-9_./-]{1,1010}$")
DOMAIN = re.compile(r"^([a-zA-Z0-9]+[\\.-])+([a-zA-Z0-9])+$")
NETBIOS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,14}$")


# A rule failure: field path (relative to the model that found it), offending value, what is allowed.
Violation = tuple[tuple[str | int, ...], Any, str]


class RuleViolations(ValueError):
    """Cross-field rule failures, each with its field path relative to the model that raised it."""

    def __init__(self, violations: list[Violation]):
        self.violations = violations
        super().__init__("; ".join(message for _, _, message in violations))


def check(pattern: re.Pattern[str], allowed: str) -> AfterValidator:
    def validate(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"allowed: {allowed}")
        return value

    return AfterValidator(validate)


def bucket_name_problem(name: str) -> str | None:
    """What S3's bucket naming rules refuse in `name`, or None when S3 accepts it."""
    if not BUCKET.match(name):
        return f"allowed: {BUCKET_ALLOWED}"
    for pattern, what in BUCKET_RULES:
        if pattern.search(name):
            return f"S3 refuses a bucket name with {what}; allowed: {BUCKET_ALLOWED}"
    return None


def valid_bucket(value: str) -> str:
    problem = bucket_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def s3_uri(what: str) -> AfterValidator:
    def validate(value: str) -> str:
        match = S3_URI.match(value)
        if match is None:
            raise ValueError(f"allowed: {what}")
        problem = bucket_name_problem(match["bucket"])
        if problem is not None:
            raise ValueError(f"bucket {match['bucket']!r}: {problem}")
        return value

    return AfterValidator(validate)


def valid_tag_value(value: str) -> str:
    if not value or tag_value_problem(value) is not None:
        raise ValueError(f"allowed: 1-{TAG_VALUE_ALLOWED.removeprefix('at most ')} (AWS tag values)")
    return value


def valid_cidr(value: str) -> str:
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError as error:
        raise ValueError(f"allowed: an IPv4 network in CIDR notation such as 10.40.0.0/16 ({error})") from None
    return str(network)


def valid_vpc_cidr(value: str) -> str:
    network = ipaddress.IPv4Network(valid_cidr(value))
    if not 16 <= network.prefixlen <= 22:
        raise ValueError("allowed: a prefix from /16 to /22 (AWS allows /16 at most; /22 is the smallest that "
                         "still leaves a /28 data and public subnet in each of six AZs)")
    if not network.is_private:
        raise ValueError("allowed: a private (RFC 1918) range")
    return value


BRANCH_VPC_PREFIX = 20


def valid_vpc_cidr_pool(value: str) -> str:
    network = ipaddress.IPv4Network(valid_cidr(value))
    if not 8 <= network.prefixlen <= BRANCH_VPC_PREFIX - 4:
        raise ValueError(f"allowed: a private range from /8 to /{BRANCH_VPC_PREFIX - 4}, room for at least 16 branch "
                         f"VPCs of /{BRANCH_VPC_PREFIX} each")
    if not network.is_private:
        raise ValueError("allowed: a private (RFC 1918) range")
    return value


Region = Annotated[str, check(REGION, "an AWS region code such as eu-west-2")]
Cidr = Annotated[str, AfterValidator(valid_cidr)]
SubnetId = Annotated[str, check(SUBNET_ID, "a subnet id such as subnet-0123456789abcdef0")]
TagValue = Annotated[str, AfterValidator(valid_tag_value)]
