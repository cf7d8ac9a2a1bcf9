"""What AWS (or WSO2) would refuse at apply or boot time is refused at synth, with the field, the value
and what is allowed (issue 13, item 3; the user-data limit is covered elsewhere)."""

from __future__ import annotations

from typing import Any

import pytest
from configs import with_values

from obiam.config_values import bucket_name_problem
from obiam.environments import ConfigError, parse_environment

SOURCE = "environments/prod.yaml"
EXISTING_VPC = {"vpc_id": "vpc-0123456789abcdef0",
                **{f"{tier}_subnet_ids": [f"subnet-0{letter}00000000000000{i}" for i in (1, 2, 3)]
                   for tier, letter in (("public", "a"), ("app", "b"), ("data", "c"))}}


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_environment("prod", data, SOURCE)
    return caught.value.problems


def accepted(data: dict[str, Any]) -> None:
    parse_environment("prod", data, SOURCE)


# --- S3 bucket names ------------------------------------------------------------------------------

REFUSED_BUCKETS = {
    "ab": "too short", "a" * 64: "too long", "My-Bucket": "upper case", "bucket_1": "underscore",
    "-bucket": "starts with a hyphen", "bucket.": "ends with a period", "my..bucket": "adjacent periods",
    "192.168.5.4": "IP address form", "xn--bucket": "xn-- prefix", "sthree-bucket": "sthree- prefix",
    "sthree-configurator-x": "sthree-configurator prefix", "amzn-s3-demo-bucket": "amzn-s3-demo- prefix",
    "bucket-s3alias": "-s3alias suffix", "bucket--ol-s3": "--ol-s3 suffix", "bucket.mrap": ".mrap suffix",
    "bucket--x-s3": "--x-s3 suffix", "bucket--table-s3": "--table-s3 suffix",
}


@pytest.mark.parametrize("name", sorted(REFUSED_BUCKETS), ids=lambda name: REFUSED_BUCKETS[name])
def test_s3_refuses_these_bucket_names(name: str) -> None:
    """S3 User Guide, "General purpose bucket naming rules"
    (docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html)."""
    assert bucket_name_problem(name) is not None


@pytest.mark.parametrize("name", ["abc", "a" * 63, "my.bucket-1", "1-2-3", "192.168.5", "bucket-xn--a", "s3alias"])
def test_s3_accepts_these_bucket_names(name: str) -> None:
    """S3 User Guide, "General purpose bucket naming rules": none of these breaks a rule."""
    assert bucket_name_problem(name) is None


def test_the_state_bucket_follows_s3_naming_rules() -> None:
    found = problems(with_values(state={"bucket": "xn--tfstate"}))
    assert found == ["environments/prod.yaml: state.bucket = 'xn--tfstate': S3 refuses a bucket name with a prefix S3 "
                     "reserves (xn--, sthree-, amzn-s3-demo-); allowed: an S3 bucket name: 3-63 lower-case letters, "
                     "digits, . and -, starting and ending with a letter or digit, no .., not an IP address, none of "
                     "S3's reserved prefixes and suffixes"]


@pytest.mark.parametrize(("section", "field", "uri"), [
    ("product", "pack_s3_uri", "s3://wso2..packs/wso2-obiam-3.0.0.zip"),
    ("database", "jdbc_driver_s3_uri", "s3://10.0.0.1/mysql-connector-j-8.4.0.jar"),
])
def test_pack_and_driver_uris_name_buckets_s3_accepts(section: str, field: str, uri: str) -> None:
    """S3 User Guide, "General purpose bucket naming rules": no two adjacent periods, no IP address form."""
    bucket = uri.removeprefix("s3://").split("/")[0]
    found = problems(with_values({section: {field: uri}}))
    assert any(line.startswith(f"environments/prod.yaml: {section}.{field} = '{uri}': bucket '{bucket}': S3 refuses "
                               "a bucket name with ") for line in found), found


# --- tag values -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["a" * 257, "CC#1", "owner, team", "aws:team", ""])
def test_tag_values_follow_aws_tag_rules(value: str) -> None:
    """EFS API Reference, "Tag" data type: value pattern ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$, at most 256
    characters; Tagging AWS Resources, "Tag naming limits and requirements": aws: is reserved. The
    toolkit also asks for at least one character, since an empty owner says nothing."""
    found = problems(with_values(tags={"cost_center": value}))
    assert any(line.startswith("environments/prod.yaml: tags.cost_center = ") and line.endswith(
        "allowed: 1-256 letters, digits, spaces and _ . : / = + - @, not starting with aws: (AWS tag values)")
        for line in found), found


def test_tag_values_may_hold_any_letter_digit_or_space_aws_accepts() -> None:
    """EFS API Reference, "Tag" data type: \\p{L}, \\p{Z} and \\p{N} are Unicode classes, not ASCII."""
    accepted(with_values(tags={"owner": "\u00c9quipe identit\u00e9 \u00a0\u2167", "extra": {"Site": "M\u00fcnchen 2"}}))


def test_extra_tags_leave_room_for_the_toolkit_s_within_aws_s_50() -> None:
    """Tagging AWS Resources, "Tag naming limits and requirements": at most 50 user tags per resource;
    the toolkit sets up to 11 (tests/test_stack_foundation.py checks that on the stacks)."""
    accepted(with_values(tags={"extra": {f"Tag{i}": "x" for i in range(39)}}))
    assert problems(with_values(tags={"extra": {f"Tag{i}": "x" for i in range(40)}})) == [
        "environments/prod.yaml: tags.extra = '40 tags': allowed: at most 39: AWS allows 50 tags per resource and the "
        "toolkit puts up to 11 of its own on some"]


# --- networks -------------------------------------------------------------------------------------

def test_a_subnet_cannot_serve_two_tiers_of_an_existing_vpc() -> None:
    vpc = {**EXISTING_VPC, "data_subnet_ids": ["subnet-0b000000000000001", "subnet-0c000000000000002",
                                               "subnet-0c000000000000003"]}
    assert problems(with_values(network={"existing_vpc": vpc})) == [
        "environments/prod.yaml: network.existing_vpc.data_subnet_ids = 'subnet-0b000000000000001': is also in "
        "existing_vpc.app_subnet_ids; allowed: subnets of one tier each (the tiers' routes and security groups keep "
        "them apart)"]


def test_a_vpc_cidr_is_refused_beside_an_existing_vpc() -> None:
    assert problems(with_values(network={"vpc_cidr": "10.40.0.0/16", "existing_vpc": EXISTING_VPC})) == [
        "environments/prod.yaml: network.vpc_cidr = '10.40.0.0/16': is for a new VPC, and existing_vpc is given too "
        "(the stack would use the existing VPC's own range and ignore it); allowed: one of vpc_cidr or existing_vpc"]


def test_an_existing_vpc_alone_and_a_cidr_alone_are_accepted() -> None:
    accepted(with_values(network={"existing_vpc": EXISTING_VPC}))
    assert parse_environment("prod", with_values(), SOURCE).config.network.cidr == "10.40.0.0/16"


# --- ports ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("port", "offset", "what"), [
    (9446, 3, "HTTPS servlet port (9443 + product.port_offset 3)"),
    (9763, 0, "HTTP servlet port (9763 + product.port_offset 0)"),
    (11114, 3, "JMX RMI registry port (11111 + product.port_offset 3)"),
    (10002, 3, "JMX RMI server port (9999 + product.port_offset 3)"),
])
def test_the_cluster_port_cannot_be_a_port_wso2_listens_on(port: int, offset: int, what: str) -> None:
    """WSO2 "Default Product Ports": servlet HTTPS 9443 and HTTP 9763, JMX RMI 11111 and 9999 (on by
    default), each moved by [server] offset; two listeners cannot share a port on one node."""
    found = problems(with_values(product={"port_offset": offset, "clustering": {"local_member_port": port}}))
    assert found == [f"environments/prod.yaml: product.clustering.local_member_port = {port}: is WSO2's {what} on "
                     "the same node, so one of them could not listen; allowed: a port WSO2 does not use, e.g. the "
                     "default 5701"]


def test_the_cluster_port_cannot_be_the_database_port() -> None:
    found = problems(with_values(product={"clustering": {"local_member_port": 3306}}))
    assert found == ["environments/prod.yaml: product.clustering.local_member_port = 3306: is the mysql database "
                     "port; allowed: a port of its own, e.g. the default 5701 (one purpose per port keeps the "
                     "security-group rules and flow logs unambiguous)"]


# --- engine versions ------------------------------------------------------------------------------

@pytest.mark.parametrize(("engine", "version"), [
    ("mysql", "8.0.garbage"), ("mysql", "8.0."), ("mysql", "8.0.39.1"), ("mysql", "8.01"), ("postgres", "13.x"),
    ("postgres", "130"), ("sqlserver-se", "15.00.4415"), ("oracle-ee", "19.0.0.0.ru-2025-1.rur-2025-01.r1"),
    ("oracle-ee", "19.garbage"),
])
def test_a_known_major_with_a_garbage_minor_is_refused(engine: str, version: str) -> None:
    """RDS names minors as 8.0.39 (MySQL), 13.16 (PostgreSQL), 15.00.4415.2.v1 (SQL Server) and
    19.0.0.0.ru-2025-01.rur-2025-01.r1 (RDS for Oracle Release Notes, "Amazon RDS for Oracle Database 19c")."""
    found = problems(with_values(database={"engine": engine, "engine_version": version}))
    assert any(line.startswith(f"environments/prod.yaml: database.engine_version = '{version}': allowed for {engine}: ")
               and ", or a full RDS version of one such as " in line for line in found), found


@pytest.mark.parametrize(("engine", "version"), [
    ("mysql", "8.0"), ("mysql", "8.0.39"), ("mysql", "8.4.3"), ("postgres", "16.4"), ("sqlserver-ee", "16.00"),
    ("sqlserver-se", "15.00.4415.2.v1"), ("oracle-se2", "19.0.0.0.ru-2025-01.rur-2025-01.r1"),
    ("oracle-ee", "19.0.0.0.ru-2025-01.spb-1.r1"), ("oracle-ee", "21"),
])
def test_rds_full_versions_of_a_supported_major_are_accepted(engine: str, version: str) -> None:
    """The same RDS naming: every one of these is a version RDS offers (staging: production takes only
    the major WSO2 tested, tests/test_day_two.py)."""
    lifecycle = "open-source-rds-extended-support" if engine in ("mysql", "postgres") else None
    accepted(with_values(tier="staging", database={"engine": engine, "engine_version": version,
                                                   "engine_lifecycle_support": lifecycle}))
