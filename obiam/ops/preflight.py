"""`obiam preflight`: is the target account ready for this environment? Checked before a deploy."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from obiam import database_engines, directory_service, instance_types
from obiam.config import BranchBaseConfig, EnvironmentConfig
from obiam.environments import BranchBase, Environment
from obiam.naming import EPHEMERAL_TAG_KEY, published_parameter
from obiam.ops.aws import DENIED, client, error_code, lookup
from obiam.ops.output import Check
from obiam.ops.pack_s3 import object_sha256, s3_location

ServersConfig = EnvironmentConfig | BranchBaseConfig


def _pack_check(s3: Any, uri: str, pinned: str) -> Check:
    """The pack object is the pinned one (product.pack_sha256), which every node checks before unpacking."""
    found = object_sha256(s3, uri)
    if found is None:
        return Check("product pack", False, f"{uri} not found: `obiam pack upload` puts it there")
    how = (f"downloaded {found.size} bytes to hash them: S3 holds no full-object SHA-256 for it (`obiam pack "
           "upload` stores one)" if found.downloaded else "S3's SHA-256 checksum, nothing downloaded")
    if found.sha256 != pinned:
        return Check("product pack", False, f"{uri} has SHA-256 {found.sha256}, but product.pack_sha256 pins "
                                            f"{pinned}; nodes would refuse it ({how})")
    return Check("product pack", True, f"{uri} matches product.pack_sha256 ({how})")


def _directory_check(aws: boto3.session.Session, config: ServersConfig, region: str) -> Check:
    """The directory type exists in the region, the account has room for one more, and Simple AD's
    VPC (an existing one; the toolkit's own leaves them out) has none of the endpoints it forbids."""
    kind = config.directory.type
    if kind == "SimpleAD" and not directory_service.simple_ad_offered_in(region):
        return Check("directory", False, f"AWS does not offer Simple AD in {region}")
    limits = client(aws, "ds", region).get_directory_limits()["DirectoryLimits"]
    prefix = "CloudOnlyMicrosoftAD" if kind == "MicrosoftAD" else "CloudOnlyDirectories"
    if limits[f"{prefix}LimitReached"]:
        return Check("directory", False, f"the account has {limits[f'{prefix}CurrentCount']} of its "
                                         f"{limits[f'{prefix}Limit']} {kind} directories in {region}: ask AWS for more")
    existing = config.network.existing_vpc
    if kind == "SimpleAD" and existing is not None:
        endpoints = client(aws, "ec2", region).describe_vpc_endpoints(
            Filters=[{"Name": "vpc-id", "Values": [existing.vpc_id]}])["VpcEndpoints"]
        # Gone or going endpoints (deleted, deleting, rejected, failed, expired) no longer count.
        forbidden = sorted({e["ServiceName"] for e in endpoints
                            if e["ServiceName"].rsplit(".", 1)[-1] in directory_service.SIMPLE_AD_FORBIDDEN_ENDPOINTS
                            and e.get("State", "available").lower() in ("available", "pending", "pendingacceptance")})
        if forbidden:
            return Check("directory", False, f"{existing.vpc_id} has endpoints Simple AD's prerequisites forbid: "
                                             f"{', '.join(forbidden)}")
    return Check("directory", True, f"{kind} offered in {region}; {limits[f'{prefix}CurrentCount']} of "
                                    f"{limits[f'{prefix}Limit']} in use")


# Amazon VPC quotas, "Inbound or outbound rules per security group": 60 by default. Every branch on a
# base adds one inbound rule (its nodes) to the base's database security group.
SECURITY_GROUP_RULES = 60


def _branch_base_check(aws: boto3.session.Session, environment: Environment, region: str) -> Check:
    """The base the branch stands on is deployed (it published its outputs and its branch-databases
    function exists), and its database security group has room for this branch's rule."""
    base = environment.base
    assert base is not None
    parameter_name = published_parameter(base.name)
    deploy_first = f"deploy it first: cdktf deploy {base.name} (README, \"Per-branch environments\")"
    parameter = lookup(lambda: client(aws, "ssm", region).get_parameter(Name=parameter_name)["Parameter"],
                       missing={"ParameterNotFound"})
    if parameter is None:
        return Check("branch base", False, f"{base.name} is not deployed ({parameter_name} not found); {deploy_first}")
    try:
        published = json.loads(parameter["Value"])
        function_name, db_group = published["branch_databases_function_name"], published["db_security_group_id"]
    except (ValueError, KeyError, TypeError):
        return Check("branch base", False, f"{parameter_name} is not what {base.name} publishes; re-apply {base.name}")
    function = lookup(lambda: client(aws, "lambda", region).get_function(FunctionName=function_name),
                      missing={"ResourceNotFoundException"})
    if function is None:
        return Check("branch base", False, f"{base.name}'s function {function_name} is missing; {deploy_first}")
    rules = client(aws, "ec2", region).describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [db_group]}])["SecurityGroupRules"]
    inbound = sum(1 for rule in rules if not rule.get("IsEgress"))
    if inbound >= SECURITY_GROUP_RULES:
        return Check("branch base", False, f"{base.name}'s database security group {db_group} holds {inbound} of "
                                           f"{SECURITY_GROUP_RULES} inbound rules, one per branch: reap a branch first")
    return Check("branch base", True, f"{base.name} is deployed; its database security group has room "
                                      f"({inbound} of {SECURITY_GROUP_RULES} inbound rules)")


STANDARD_SUPPORT = "open-source-rds-standard-support"


def _engine_support_check(rds: Any, config: ServersConfig) -> Check | None:
    """The account's own word on the engine's standard support (DescribeDBMajorEngineVersions,
    SupportedEngineLifecycles) against database.engine_lifecycle_support and the toolkit's dated table."""
    engine = database_engines.ENGINES[config.database.engine]
    major = database_engines.major_of(engine, config.database.version)
    if not engine.lifecycle_choice_applies or major is None:
        return None
    try:
        answer = rds.describe_db_major_engine_versions(Engine=engine.name, MajorEngineVersion=major)
    except (ClientError, ResponseParserError) as error:
        if isinstance(error, ClientError) and error_code(error) in DENIED:
            raise
        # An AWS-compatible endpoint without the API (RDS itself has it in every Region): the config
        # already judged the version by the dated table, which stays the rule.
        return Check("engine support", True, f"the endpoint does not answer DescribeDBMajorEngineVersions; "
                                             f"judged by obiam/database_engines.py's dates for {engine.name} {major}")
    windows = [window for version in answer.get("DBMajorEngineVersions", [])
               for window in version.get("SupportedEngineLifecycles", [])
               if window.get("LifecycleSupportName") == STANDARD_SUPPORT]
    what = f"{engine.name} {major}"
    if not windows:
        return Check("engine support", False, f"RDS names no standard-support window for {what} here")
    ends = windows[0]["LifecycleSupportEndDate"].date()
    past = ends <= database_engines.today()
    decided = config.database.engine_lifecycle_support == database_engines.EXTENDED_SUPPORT
    detail = f"{what}: RDS standard support ends {ends.isoformat()}"
    if past:
        detail += ("; Extended Support is accepted (engine_lifecycle_support)" if decided else
                   "; past it, and database.engine_lifecycle_support does not accept Extended Support")
    table = engine.standard_support_ends.get(major)
    if table is not None and table != ends:
        detail += f"; obiam/database_engines.py says {table.isoformat()}: correct it there"
    return Check("engine support", not past or decided, detail)


def _branch_network_check(ec2: Any, environment: Environment) -> Check:
    """No other live per-branch environment has this branch's VPC range (ephemeral.vpc_cidr_pool picks
    it by a hash of the branch, so two branches can draw the same block)."""
    cidr = environment.config.network.cidr
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "cidr-block-association.cidr-block", "Values": [cidr]},
                                      {"Name": f"tag:{EPHEMERAL_TAG_KEY}", "Values": ["true"]}])["Vpcs"]
    others = sorted({tag["Value"] for vpc in vpcs for tag in vpc.get("Tags", [])
                     if tag["Key"] == "Environment" and tag["Value"] != environment.name})
    if others:
        return Check("branch network", False, f"{cidr} is already the VPC range of {', '.join(others)}; rename the "
                                              "branch, or reap or destroy that environment first")
    return Check("branch network", True, f"{cidr}: no other per-branch environment uses it")


def _server_checks(aws: boto3.session.Session, environment: Environment, region: str) -> list[Check]:
    """The directory, the database engine and the network range; for a branch on a base, the base."""
    if environment.base is not None:
        # Its network, database server and directory are the base's: those are checked there.
        return [_branch_base_check(aws, environment, region)]
    checks = [_directory_check(aws, environment.config, region)]
    engine_support = _engine_support_check(client(aws, "rds", region), environment.config)
    if engine_support is not None:
        checks.append(engine_support)
    if environment.branch is not None and environment.config.network.existing_vpc is None:
        checks.append(_branch_network_check(client(aws, "ec2", region), environment))
    return checks


def _zones_check(ec2: Any, config: ServersConfig, region: str) -> Check:
    zones = ec2.describe_availability_zones(Filters=[{"Name": "state", "Values": ["available"]}])
    available = sorted(z["ZoneName"] for z in zones["AvailabilityZones"]
                       if z.get("OptInStatus", "opt-in-not-required") == "opt-in-not-required")
    wanted = config.zone_names if config.availability_zones or config.network.existing_vpc is None else []
    missing = [z for z in wanted if z not in available]
    return Check(
        "availability zones",
        len(available) >= config.availability_zone_count and not missing,
        f"{region} has {len(available)} available ({', '.join(available)}); the environment needs "
        f"{config.availability_zone_count}" + (f"; missing {', '.join(missing)}" if missing else ""))


def _state_check(aws: boto3.session.Session, config: ServersConfig, name: str) -> Check:
    state = config.state
    state_s3 = client(aws, "s3", config.state_region)
    exists = lookup(lambda: state_s3.head_bucket(Bucket=state.bucket), missing={"404", "NoSuchBucket", "NotFound"})
    return Check("state bucket", exists is not None,
                 f"{state.bucket} in {config.state_region}" if exists is not None
                 else f"{state.bucket} not found: run `obiam bootstrap-state --env {name}`")


def preflight_base(aws: boto3.session.Session, base: BranchBase, region: str) -> list[Check]:
    """A branch base: its zones, its directory and database engine, and its state bucket."""
    config = base.config
    checks = [_zones_check(client(aws, "ec2", region), config, region), _directory_check(aws, config, region)]
    engine_support = _engine_support_check(client(aws, "rds", region), config)
    if engine_support is not None:
        checks.append(engine_support)
    checks.append(_state_check(aws, config, base.name))
    return checks


def preflight(aws: boto3.session.Session, environment: Environment, region: str) -> list[Check]:
    config = environment.config
    ec2 = client(aws, "ec2", region)
    checks: list[Check] = [_zones_check(ec2, config, region)]

    instance_type = config.nodes.instance_type
    offered = lookup(lambda: ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"],
                     missing={"InvalidInstanceType"}) or []
    if not offered:
        checks.append(Check("instance type", False, f"{instance_type} is not offered in {region}"))
    else:
        memory = offered[0]["MemoryInfo"]["SizeInMiB"]
        checks.append(Check("instance type", memory >= instance_types.MIN_NODE_MEMORY_MIB,
                            f"{instance_type} has {memory} MiB (WSO2 needs at least 4096)"))

    ami = config.nodes.ami
    if ami is not None and ami.id:
        images = lookup(lambda: ec2.describe_images(ImageIds=[ami.id])["Images"],
                        missing={"InvalidAMIID.NotFound", "InvalidAMIID.Malformed"}) or []
        checks.append(Check("AMI", bool(images) and images[0].get("State") == "available",
                            f"{ami.id} " + (f"is {images[0].get('State')}" if images else "not found")))
    elif ami is not None:
        ssm = client(aws, "ssm", region)
        parameter = lookup(lambda: ssm.get_parameter(Name=ami.ssm_parameter)["Parameter"],
                           missing={"ParameterNotFound"})
        checks.append(Check("AMI", parameter is not None,
                            f"{ami.ssm_parameter} -> {parameter['Value']}" if parameter
                            else f"SSM parameter {ami.ssm_parameter} not found"))

    acm = client(aws, "acm", region)
    arn = config.load_balancer.certificate_arn
    certificate = lookup(lambda: acm.describe_certificate(CertificateArn=arn)["Certificate"],
                         missing={"ResourceNotFoundException", "InvalidArnException"})
    if certificate is None:
        checks.append(Check("certificate", False, f"{arn} not found in {region}"))
    else:
        names = {certificate.get("DomainName"), *certificate.get("SubjectAlternativeNames", [])}
        host = config.load_balancer.hostname
        covers = host in names or f"*.{host.split('.', 1)[1]}" in names
        checks.append(Check("certificate", certificate["Status"] == "ISSUED" and covers,
                            f"{certificate['Status']}, for {', '.join(sorted(n for n in names if n))}"
                            + ("" if covers else f"; does not cover {host}")))

    s3 = client(aws, "s3", region)
    checks.append(_pack_check(s3, config.product.pack_s3_uri, config.product.pack_sha256))
    if config.database.jdbc_driver_s3_uri:
        uri = config.database.jdbc_driver_s3_uri
        bucket, key = s3_location(uri)
        head = lookup(lambda: s3.head_object(Bucket=bucket, Key=key),
                      missing={"404", "NoSuchKey", "NoSuchBucket", "NotFound"})
        checks.append(Check("JDBC driver", head is not None,
                            f"{uri} ({head['ContentLength']} bytes)" if head else f"{uri} not found"))

    checks.extend(_server_checks(aws, environment, region))
    checks.append(_state_check(aws, config, environment.name))
    return checks
