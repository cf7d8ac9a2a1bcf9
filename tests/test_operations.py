"""The operations commands against moto: a pass and a fail case for every check.

No test here synthesizes a stack or imports cdktf.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from configs import with_values
from typer.testing import CliRunner

from conftest import ROOT
from obiam import database_engines, lambda_package
from obiam.cli import app
from obiam.environments import Environment, parse_environment
from obiam.naming import Names
from obiam.ops import aws, reap
from obiam.ops.preflight import preflight
from obiam.ops.state_backend import ensure_state_backend
from obiam.ops.verify import verify

REGION = "eu-west-2"
ZONES = ("eu-west-2a", "eu-west-2b")
MOTO_ACCOUNT = "123456789012"  # moto's default account: its certificate ARNs and STS identity carry it


@pytest.fixture(scope="module")
def shared_session() -> boto3.session.Session:
    """One boto3 session for the module: it parses each service model once (a fresh session
    per test re-reads megabytes of JSON, about half a second a test). Every client the
    commands create names its region, so the session's own region does not matter."""
    import moto  # noqa: F401 - registers moto's request stubber for sessions created after it

    session = boto3.session.Session(region_name=REGION)
    # moto 5.2.5 does not implement DescribeDBMajorEngineVersions (NotImplementedError): this answers it,
    # in the service model's shape, before a request is made, from STANDARD_SUPPORT_ENDS.
    session.events.register_first("before-call.rds.DescribeDBMajorEngineVersions", _major_engine_versions,
                                  unique_id="obiam-rds-lifecycles")
    return session


# What the double of DescribeDBMajorEngineVersions says; tests change it to play another answer.
STANDARD_SUPPORT_ENDS: dict[tuple[str, str], dt.date] = {
    ("mysql", major): ends for major, ends in database_engines.ENGINES["mysql"].standard_support_ends.items()}


def answer_support(monkeypatch: pytest.MonkeyPatch, answer: dict[tuple[str, str], dt.date]) -> None:
    """Makes the DescribeDBMajorEngineVersions double answer `answer` for this test only."""
    for key in list(STANDARD_SUPPORT_ENDS):
        monkeypatch.delitem(STANDARD_SUPPORT_ENDS, key)
    for key, ends in answer.items():
        monkeypatch.setitem(STANDARD_SUPPORT_ENDS, key, ends)


def _major_engine_versions(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
    from botocore.awsrequest import AWSResponse

    body = params["body"]  # the query-protocol request, not yet sent
    key = (body["Engine"], body["MajorEngineVersion"])
    ends = STANDARD_SUPPORT_ENDS.get(key)
    windows = [] if ends is None else [{
        "LifecycleSupportName": "open-source-rds-standard-support",
        "LifecycleSupportStartDate": dt.datetime(2018, 1, 1, tzinfo=dt.UTC),
        "LifecycleSupportEndDate": dt.datetime.combine(ends, dt.time(), tzinfo=dt.UTC)}]
    return AWSResponse("", 200, {}, None), {"DBMajorEngineVersions": [{
        "Engine": key[0], "MajorEngineVersion": key[1], "SupportedEngineLifecycles": windows}]}


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch, shared_session: boto3.session.Session) -> Iterator[boto3.session.Session]:
    from moto import mock_aws

    for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # moto loads ~5,000 public AMIs into every EC2 backend (0.4 s a test); none is needed here.
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    monkeypatch.setattr(aws, "session", lambda region: shared_session)
    with mock_aws():
        yield aws.session(REGION)


def environment(name: str = "dev", **changes: Any) -> Environment:
    base = {"tier": "development", "account": {"id": MOTO_ACCOUNT}, "availability_zone_count": 2,
            "load_balancer": {"certificate_arn": f"arn:aws:acm:{REGION}:{MOTO_ACCOUNT}:certificate/"
                                                 "0b7c2d6e-4a1f-4c3e-9d2b-5e6f7a8b9c0d"},
            "network": {"nat_gateways": "single"},
            # moto loads no public images here (MOTO_EC2_LOAD_DEFAULT_AMIS=false), but serves AL2023's parameter.
            "nodes": {"ami": {"floating": True}},
            "directory": {"type": "MicrosoftAD", "edition": "Standard", "name": "corp.obiam-dev.example.com"},
            "state": {"bucket": "example-bank-tfstate", "lock": "dynamodb", "dynamodb_table": "tf-locks"},
            "data_protection": {"deletion_protection": False, "prevent_destroy": False, "final_snapshot": False}}
    return parse_environment(name, with_values({**base, **changes}), f"environments/{name}.yaml")


def names(checks: list[Any], passed: bool) -> set[str]:
    return {c.name for c in checks if c.passed is passed}


# --- bootstrap-state ---------------------------------------------------------------------------

def test_bootstrap_state_creates_a_private_versioned_encrypted_tls_only_bucket(mocked: Any) -> None:
    env = environment()
    changes = ensure_state_backend(mocked, env.config.state, REGION)
    assert changes[0] == f"created bucket example-bank-tfstate in {REGION}"
    s3 = mocked.client("s3")
    assert s3.get_bucket_versioning(Bucket="example-bank-tfstate")["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket="example-bank-tfstate")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    block = s3.get_public_access_block(Bucket="example-bank-tfstate")["PublicAccessBlockConfiguration"]
    assert all(block.values())
    policy = json.loads(s3.get_bucket_policy(Bucket="example-bank-tfstate")["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    table = mocked.client("dynamodb").describe_table(TableName="tf-locks")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "LockID", "KeyType": "HASH"}]


def test_bootstrap_state_second_run_changes_nothing(mocked: Any) -> None:
    env = environment()
    assert ensure_state_backend(mocked, env.config.state, REGION)
    assert ensure_state_backend(mocked, env.config.state, REGION) == []


def test_bootstrap_state_keeps_the_banks_own_bucket_policy_statements(mocked: Any) -> None:
    s3 = mocked.client("s3")
    s3.create_bucket(Bucket="example-bank-tfstate", CreateBucketConfiguration={"LocationConstraint": REGION})
    theirs = {"Sid": "AuditorsRead", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
              "Action": "s3:GetObject", "Resource": "arn:aws:s3:::example-bank-tfstate/*"}
    s3.put_bucket_policy(Bucket="example-bank-tfstate", Policy=json.dumps({"Version": "2012-10-17",
                                                                          "Statement": [theirs]}))
    ensure_state_backend(mocked, environment().config.state, REGION)
    statements = json.loads(s3.get_bucket_policy(Bucket="example-bank-tfstate")["Policy"])["Statement"]
    assert theirs in statements and len(statements) == 2


def test_bootstrap_state_cli_says_when_nothing_changed(mocked: Any, tmp_path: Any) -> None:
    directory = tmp_path / "environments"
    directory.mkdir()
    env = environment()
    (directory / "dev.yaml").write_text(json.dumps(env.config.model_dump(exclude_none=True)))
    runner = CliRunner()
    first = runner.invoke(app, ["bootstrap-state", "--env", "dev", "--environments-dir", str(directory)])
    second = runner.invoke(app, ["bootstrap-state", "--env", "dev", "--environments-dir", str(directory)])
    assert first.exit_code == 0 and "created bucket" in first.output
    assert second.exit_code == 0
    assert second.output.strip() == f"s3://example-bank-tfstate ({REGION}): already in place, nothing changed"


# --- preflight ---------------------------------------------------------------------------------

def self_signed(domain: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
                   .sign(key, hashes.SHA256()))
    return (certificate.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


# The pack config.MINIMAL pins (tests/configs.py): these bytes stand in for it in moto.
PACK_BYTES = b"example: the SHA-256 obiam pack build prints"


def ready_account(session: Any, *, issued: bool = True, pack: bool = True, state_bucket: bool = True,
                  domain: str = "iam.bank.example.com") -> str:
    """Prepares moto like an account ready for a deploy; returns the certificate ARN."""
    acm = session.client("acm")
    if issued:
        certificate, key = self_signed(domain)
        arn = acm.import_certificate(Certificate=certificate, PrivateKey=key)["CertificateArn"]
    else:
        arn = acm.request_certificate(DomainName=domain)["CertificateArn"]
    s3 = session.client("s3")
    s3.create_bucket(Bucket="example-bank-wso2", CreateBucketConfiguration={"LocationConstraint": REGION})
    if pack:
        s3.put_object(Bucket="example-bank-wso2", Key="wso2-obiam-3.0.0.zip", Body=PACK_BYTES,
                      ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket="example-bank-wso2", Key="mysql-connector-j-8.4.0.jar", Body=b"PK")
    if state_bucket:
        s3.create_bucket(Bucket="example-bank-tfstate", CreateBucketConfiguration={"LocationConstraint": REGION})
    return arn


def test_preflight_passes_on_a_ready_account(mocked: Any) -> None:
    arn = ready_account(mocked)
    checks = preflight(mocked, environment(load_balancer={"certificate_arn": arn}), REGION)
    assert names(checks, False) == set(), checks
    assert names(checks, True) == {"availability zones", "instance type", "AMI", "certificate", "product pack",
                                   "JDBC driver", "directory", "engine support", "state bucket"}


@pytest.mark.parametrize(("ends", "lifecycle", "passed", "detail"), [
    (dt.date(2026, 7, 31), "open-source-rds-extended-support", True,
     "mysql 8.0: RDS standard support ends 2026-07-31; Extended Support is accepted (engine_lifecycle_support)"),
    (dt.date(2026, 6, 30), "open-source-rds-extended-support", True,
     "mysql 8.0: RDS standard support ends 2026-06-30; Extended Support is accepted (engine_lifecycle_support); "
     "obiam/database_engines.py says 2026-07-31: correct it there"),
    (None, "open-source-rds-extended-support", False, "RDS names no standard-support window for mysql 8.0 here"),
], ids=["as-the-table-says", "account-says-otherwise", "no-window"])
def test_preflight_reads_the_engines_support_window_from_the_account(
        mocked: Any, monkeypatch: pytest.MonkeyPatch, *, ends: dt.date | None, lifecycle: str, passed: bool,
        detail: str) -> None:
    """DescribeDBMajorEngineVersions, SupportedEngineLifecycles (RDS API reference): the account's own
    dates, which the README tells readers to confirm; the toolkit's table is corrected from them."""
    answer_support(monkeypatch, {} if ends is None else {("mysql", "8.0"): ends})
    env = environment(database={"engine_lifecycle_support": lifecycle})
    check = next(c for c in preflight(mocked, env, REGION) if c.name == "engine support")
    assert (check.passed, check.detail) == (passed, detail)


def test_preflight_fails_a_major_the_account_says_is_past_support_without_extended_support(
        mocked: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The config judged 8.4 by the table (standard support to 2029); if the account says it already
    ended, preflight stops the deploy that would enroll it silently."""
    answer_support(monkeypatch, {("mysql", "8.4"): dt.date(2026, 1, 1)})
    env = environment(database={"engine_version": "8.4", "engine_lifecycle_support": None})
    check = next(c for c in preflight(mocked, env, REGION) if c.name == "engine support")
    assert not check.passed and "past it, and database.engine_lifecycle_support does not accept" in check.detail


def simple_ad_environment(**changes: Any) -> Environment:
    return environment(region="eu-west-1", directory={"type": "SimpleAD", "size": "Small", "name": "corp.example.com"},
                       backup={"copy_region": "eu-west-2"},
                       load_balancer={"certificate_arn": f"arn:aws:acm:eu-west-1:{MOTO_ACCOUNT}:certificate/"
                                                         "0b7c2d6e-4a1f-4c3e-9d2b-5e6f7a8b9c0d"}, **changes)


def directory_check(checks: list[Any]) -> Any:
    return next(check for check in checks if check.name == "directory")


def test_preflight_refuses_a_region_without_the_directory_type(mocked: Any) -> None:
    """Directory Service "Region availability": no Simple AD in eu-west-2 (e.g. `preflight --region eu-west-2`
    for an environment written for eu-west-1)."""
    check = directory_check(preflight(mocked, simple_ad_environment(), REGION))
    assert (check.passed, check.detail) == (False, "AWS does not offer Simple AD in eu-west-2")


def test_preflight_refuses_simple_ad_in_an_existing_vpc_with_forbidden_endpoints(mocked: Any) -> None:
    """"Simple AD prerequisites": no Systems Manager, CloudWatch or STS endpoint in the VPC. The toolkit
    leaves them out of its own VPC; an existing VPC is checked here."""
    ec2 = mocked.client("ec2", region_name="eu-west-1")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    ec2.create_vpc_endpoint(VpcId=vpc, ServiceName="com.amazonaws.eu-west-1.ssm", VpcEndpointType="Interface")
    subnets = {tier: [f"subnet-0{n}{i}000000000000000"[:24] for i in (1, 2)]
               for n, tier in enumerate(("public", "app", "data"))}
    env = simple_ad_environment(network={"existing_vpc": {
        "vpc_id": vpc, **{f"{tier}_subnet_ids": ids for tier, ids in subnets.items()}}})
    check = directory_check(preflight(mocked, env, "eu-west-1"))
    assert (check.passed, check.detail) == (
        False, f"{vpc} has endpoints Simple AD's prerequisites forbid: com.amazonaws.eu-west-1.ssm")
    ec2.delete_vpc_endpoints(VpcEndpointIds=[e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]])
    assert directory_check(preflight(mocked, env, "eu-west-1")).passed


@pytest.mark.parametrize(("setup", "changes", "failing"), [
    ({"issued": False}, {}, "certificate"),
    ({"domain": "other.bank.example.com"}, {}, "certificate"),
    ({"pack": False}, {}, "product pack"),
    ({"state_bucket": False}, {}, "state bucket"),
    ({}, {"availability_zone_count": 4, "network": {"vpc_cidr": "10.40.0.0/16"}}, "availability zones"),
    ({}, {"nodes": {"ami": {"id": "ami-0123456789abcdef0"}}}, "AMI"),
    ({}, {"nodes": {"ami": {"ssm_parameter": "/bank/images/wso2-node", "floating": True}}}, "AMI"),
], ids=["certificate-not-issued", "certificate-for-another-host", "pack-missing", "state-bucket-missing",
        "too-few-azs", "ami-id-unknown", "ami-parameter-missing"])
def test_preflight_fails_the_check_that_is_not_ready(mocked: Any, setup: dict[str, Any], changes: dict[str, Any],
                                                     failing: str) -> None:
    arn = ready_account(mocked, **setup)
    checks = preflight(mocked, environment(load_balancer={"certificate_arn": arn}, **changes), REGION)
    assert names(checks, False) == {failing}, checks


def s3_calls(session: Any, operation: str) -> list[str]:
    """Records each call of an S3 operation made by clients the session creates from now on."""
    calls: list[str] = []

    def record(**_: Any) -> None:
        calls.append(operation)

    session.events.register(f"before-call.s3.{operation}", record, unique_id=f"count-{operation}")
    return calls


def test_preflight_checks_the_pinned_pack_by_s3s_checksum_without_downloading_it(mocked: Any) -> None:
    """The pin (product.pack_sha256) is what every node checks before unpacking; S3 keeps a full-object
    SHA-256 for a single PutObject with ChecksumAlgorithm SHA256 (S3 User Guide, "Checking object
    integrity"), so preflight compares that and never downloads the pack."""
    arn = ready_account(mocked)
    downloads = s3_calls(mocked, "GetObject")
    try:
        checks = preflight(mocked, environment(load_balancer={"certificate_arn": arn}), REGION)
    finally:
        mocked.events.unregister("before-call.s3.GetObject", unique_id="count-GetObject")
    pack = next(c for c in checks if c.name == "product pack")
    assert pack.passed, pack
    assert "S3's SHA-256 checksum, nothing downloaded" in pack.detail
    assert downloads == []


def test_preflight_fails_a_pack_object_that_is_not_the_pinned_one(mocked: Any) -> None:
    arn = ready_account(mocked, pack=False)
    mocked.client("s3").put_object(Bucket="example-bank-wso2", Key="wso2-obiam-3.0.0.zip", Body=b"another pack",
                                   ChecksumAlgorithm="SHA256")
    checks = preflight(mocked, environment(load_balancer={"certificate_arn": arn}), REGION)
    pack = next(c for c in checks if c.name == "product pack")
    assert not pack.passed
    assert pack.detail.startswith(f"s3://example-bank-wso2/wso2-obiam-3.0.0.zip has SHA-256 "
                                  f"{hashlib.sha256(b'another pack').hexdigest()}, but product.pack_sha256 pins "
                                  f"{hashlib.sha256(PACK_BYTES).hexdigest()}; nodes would refuse it")


def test_preflight_hashes_a_pack_that_s3_holds_no_sha256_for(mocked: Any) -> None:
    """An object uploaded without a SHA-256 checksum (or in parts: a composite checksum) is downloaded
    and hashed, so the check still answers, and says why it downloaded."""
    arn = ready_account(mocked, pack=False)
    mocked.client("s3").put_object(Bucket="example-bank-wso2", Key="wso2-obiam-3.0.0.zip", Body=PACK_BYTES)
    checks = preflight(mocked, environment(load_balancer={"certificate_arn": arn}), REGION)
    pack = next(c for c in checks if c.name == "product pack")
    assert pack.passed, pack
    assert f"downloaded {len(PACK_BYTES)} bytes to hash them: S3 holds no full-object SHA-256" in pack.detail


@pytest.mark.parametrize(("instance_type", "detail"), [
    ("t3.small", "t3.small has 2048 MiB (WSO2 needs at least 4096)"),
    ("x9.huge", "x9.huge is not offered in eu-west-2"),
])
def test_preflight_checks_the_instance_type_against_the_region_itself(mocked: Any, instance_type: str,
                                                                      detail: str) -> None:
    # Config validation refuses these already; preflight asks the region anyway, so a table
    # that disagrees with AWS (or a type the region lacks) is caught before a deploy.
    arn = ready_account(mocked)
    env = environment(load_balancer={"certificate_arn": arn})
    nodes = env.config.nodes.model_copy(update={"instance_type": instance_type})
    unchecked = Environment(env.name, env.config.model_copy(update={"nodes": nodes}), env.source)
    checks = preflight(mocked, unchecked, REGION)
    assert [(c.name, c.detail) for c in checks if not c.passed] == [("instance type", detail)]


def test_preflight_accepts_a_pinned_ami_that_exists(mocked: Any) -> None:
    arn = ready_account(mocked)
    ec2 = mocked.client("ec2")
    image = ec2.register_image(Name="bank-hardened-al2023", RootDeviceName="/dev/xvda",
                               BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 20}}])["ImageId"]
    checks = preflight(mocked, environment(load_balancer={"certificate_arn": arn}, nodes={"ami": {"id": image}}),
                       REGION)
    assert names(checks, False) == set(), checks


def test_preflight_cli_exits_1_on_a_failed_check_and_prints_plain_text(mocked: Any, tmp_path: Any) -> None:
    arn = ready_account(mocked, pack=False)
    directory = tmp_path / "environments"
    directory.mkdir()
    config = environment(load_balancer={"certificate_arn": arn}).config.model_dump(exclude_none=True)
    (directory / "dev.yaml").write_text(json.dumps(config))
    result = CliRunner().invoke(app, ["preflight", "--env", "dev", "--environments-dir", str(directory)])
    assert result.exit_code == 1
    assert f"preflight dev (account {MOTO_ACCOUNT}, {REGION})" in result.output
    assert "FAIL  product pack: s3://example-bank-wso2/wso2-obiam-3.0.0.zip not found" in result.output
    assert result.output.rstrip().endswith("8 passed, 1 failed")


@pytest.mark.parametrize("command", ["preflight", "verify", "bootstrap-state", "rollout"])
def test_a_command_refuses_credentials_of_another_account_before_any_other_call(
        mocked: Any, tmp_path: Any, command: str) -> None:
    """The provider's `allowed_account_ids` rule, applied by the operations commands too: nothing is read
    from, or created in, an account the environment file does not name (terraform-provider-aws
    website/docs/index.html.markdown: "allowed_account_ids - List of allowed AWS account IDs to prevent
    you from mistakenly using an incorrect one")."""
    directory = tmp_path / "environments"
    directory.mkdir()
    other = "210987654321"
    config = environment(account={"id": other}, load_balancer={
        "certificate_arn": f"arn:aws:acm:{REGION}:{other}:certificate/0b7c2d6e-4a1f-4c3e-9d2b-5e6f7a8b9c0d"})
    (directory / "dev.yaml").write_text(json.dumps(config.config.model_dump(exclude_none=True)))
    result = CliRunner().invoke(app, [command, "--env", "dev", "--environments-dir", str(directory)])
    assert result.exit_code == 2
    assert result.output == (f"obiam: the AWS credentials in use belong to account {MOTO_ACCOUNT}, but "
                             f"{directory / 'dev.yaml'} allows only account {other} (account.id); use credentials "
                             "for that account (e.g. its AWS_PROFILE)\n")
    assert mocked.client("s3").list_buckets()["Buckets"] == []  # bootstrap-state created nothing


# --- verify ------------------------------------------------------------------------------------

def deploy(session: Any, env: Environment, *, multi_az: bool = True, sticky: bool = True, encrypted: bool = True,
           mount_zones: tuple[str, ...] = ZONES, second_zone_node: bool = True, stop_a_node: bool = False,
           directory: bool = True, capacity: int | None = None, rollout_pending: bool = False,
           restored: bool = False) -> None:
    """Builds in moto what a deploy of `env` leaves behind, under the stack's names; `restored`: around the
    database and file system a restore made (found by their names, not created)."""
    n = Names(env.name)
    ec2, elb = session.client("ec2"), session.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnets = {z: ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{i}.0/24", AvailabilityZone=z)["Subnet"]["SubnetId"]
               for i, z in enumerate(ZONES)}
    image = session.client("ssm").get_parameter(
        Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")["Parameter"]["Value"]
    template = ec2.create_launch_template(LaunchTemplateName=n.launch_template, LaunchTemplateData={
        "ImageId": image, "InstanceType": env.config.nodes.instance_type})["LaunchTemplate"]["LaunchTemplateId"]
    group = elb.create_target_group(Name=n.target_group, Protocol="HTTPS", Port=9446, VpcId=vpc,
                                    TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    if sticky:
        elb.modify_target_group_attributes(TargetGroupArn=group, Attributes=[
            {"Key": "stickiness.enabled", "Value": "true"}, {"Key": "stickiness.type", "Value": "app_cookie"},
            {"Key": "stickiness.app_cookie.cookie_name", "Value": "JSESSIONID"}])
    autoscaling = session.client("autoscaling")
    minimum = env.config.nodes.min_size if capacity is None else capacity
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=n.autoscaling_group, MinSize=minimum, MaxSize=minimum + 2, DesiredCapacity=minimum,
        VPCZoneIdentifier=",".join(subnets.values()), LaunchTemplate={"LaunchTemplateId": template, "Version": "1"},
        TargetGroupARNs=[group])
    if rollout_pending:
        # A later deploy wrote version 2 and made it the default (update_default_version); no rollout since.
        ec2.create_launch_template_version(LaunchTemplateId=template, SourceVersion="1",
                                           LaunchTemplateData={"InstanceType": env.config.nodes.instance_type})
        ec2.modify_launch_template(LaunchTemplateId=template, DefaultVersion="2")
    if second_zone_node:
        # moto starts every group instance in the first subnet; a real group spreads them.
        extra = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnets[ZONES[1]])
        instance = extra["Instances"][0]["InstanceId"]
        autoscaling.attach_instances(InstanceIds=[instance], AutoScalingGroupName=n.autoscaling_group)
        elb.register_targets(TargetGroupArn=group, Targets=[{"Id": instance, "Port": 9446}])
    if stop_a_node:
        first = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[n.autoscaling_group])[
            "AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
        ec2.stop_instances(InstanceIds=[first])
    efs = session.client("efs")
    if restored:
        fs = efs.describe_file_systems(CreationToken=n.artifact_file_system)["FileSystems"][0]["FileSystemId"]
    else:
        session.client("rds").create_db_instance(
            DBInstanceIdentifier=n.db_instance, Engine="mysql", DBInstanceClass="db.m6i.large", MultiAZ=multi_az,
            AllocatedStorage=20, MasterUsername="obiam_admin", MasterUserPassword="not-a-real-password-1")
        fs = efs.create_file_system(CreationToken=n.artifact_file_system, Encrypted=encrypted)["FileSystemId"]
    for zone in mount_zones:
        efs.create_mount_target(FileSystemId=fs, SubnetId=subnets[zone])
    if directory:
        # The provider's default tags put Environment on the directory, as on everything.
        session.client("ds").create_microsoft_ad(
            Name=env.config.directory.name, Password="Passw0rd!Passw0rd", Edition="Standard",
            VpcSettings={"VpcId": vpc, "SubnetIds": list(subnets.values())},
            Tags=[{"Key": "Environment", "Value": env.name}])


def test_verify_passes_on_a_healthy_deployment(mocked: Any) -> None:
    env = environment()
    deploy(mocked, env)
    checks = verify(mocked, env, REGION)
    assert names(checks, False) == set(), checks
    assert names(checks, True) == {"nodes in service", "nodes across AZs", "nodes on the deployed version",
                                   "targets healthy", "sticky sessions", "database", "artifact file system",
                                   "directory"}


@pytest.mark.parametrize(("broken", "failing"), [
    ({"multi_az": False}, {"database"}),
    ({"sticky": False}, {"sticky sessions"}),
    ({"encrypted": False}, {"artifact file system"}),
    ({"mount_zones": ZONES[:1]}, {"artifact file system"}),
    ({"second_zone_node": False}, {"nodes across AZs"}),
    ({"stop_a_node": True}, {"targets healthy"}),
    ({"capacity": 1, "second_zone_node": False}, {"nodes in service", "nodes across AZs"}),
    ({"directory": False}, {"directory"}),
    ({"rollout_pending": True}, {"nodes on the deployed version"}),
], ids=["db-not-multi-az", "stickiness-off", "efs-not-encrypted", "node-az-without-mount-target",
        "nodes-in-one-az", "node-down", "fewer-nodes-than-min", "directory-missing", "rollout-pending"])
def test_verify_fails_the_broken_invariant(mocked: Any, broken: dict[str, Any], failing: set[str]) -> None:
    env = environment()
    deploy(mocked, env, **broken)
    assert names(verify(mocked, env, REGION), False) == failing


def test_verify_reports_everything_missing_in_an_empty_account(mocked: Any) -> None:
    checks = verify(mocked, environment(), REGION)
    assert names(checks, True) == set()
    assert {c.detail for c in checks if c.name == "database"} == {"DB instance obiam-dev-db not found"}


def test_verify_json_is_machine_readable(mocked: Any, tmp_path: Any) -> None:
    env = environment()
    deploy(mocked, env, sticky=False)
    directory = tmp_path / "environments"
    directory.mkdir()
    (directory / "dev.yaml").write_text(json.dumps(env.config.model_dump(exclude_none=True)))
    result = CliRunner().invoke(app, ["verify", "--env", "dev", "--environments-dir", str(directory), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["passed"] is False
    assert [c["name"] for c in report["checks"] if not c["passed"]] == ["sticky sessions"]


# --- reap --------------------------------------------------------------------------------------

def tag_ephemeral(session: Any, name: str, branch: str, expires: str) -> None:
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[vpc], Tags=[{"Key": "obiam:ephemeral", "Value": "true"},
                                           {"Key": "Environment", "Value": name}, {"Key": "Branch", "Value": branch},
                                           {"Key": "ExpiresAt", "Value": expires}])


def test_reap_finds_expired_environments_by_tag(mocked: Any) -> None:
    from obiam import ephemeral

    old, new = ephemeral.stack_name("feature/old"), ephemeral.stack_name("feature/new")
    tag_ephemeral(mocked, old, "feature/old", "2026-01-01T00:00:00Z")
    tag_ephemeral(mocked, new, "feature/new", "2999-01-01T00:00:00Z")
    found = {e.name: e for e in reap.find_ephemeral_environments(mocked, REGION)}
    moment = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    assert found[old].expired(moment) and not found[new].expired(moment)
    command, variables = reap.destroy_command(found[old], ttl_hours=72)
    assert command == ["npx", "cdktf", "destroy", old, "--auto-approve"]
    assert variables == {"OBIAM_EPHEMERAL_BRANCH": "feature/old", "OBIAM_EPHEMERAL_CREATED_AT": "2025-12-29T00:00:00Z"}


def test_reap_refuses_a_branch_tag_that_names_another_stack() -> None:
    stray = reap.EphemeralEnvironment("eph-other-000000", "feature/x", None, 1)
    with pytest.raises(ValueError, match="destroy it by hand"):
        reap.destroy_command(stray, ttl_hours=72)


@pytest.fixture
def destroys(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, str]]]:
    calls: list[tuple[list[str], dict[str, str]]] = []

    def record(command: Any, variables: dict[str, str]) -> int:
        calls.append((list(command), variables))
        return 0

    monkeypatch.setattr(reap, "run_command", record)
    return calls


@pytest.fixture
def template_dir(tmp_path: Any) -> str:
    """environments/ephemeral.yaml as in the repo, for moto's account."""
    from obiam.safe_yaml import load

    data = load((ROOT / "environments" / "ephemeral.yaml").read_text())
    data["account"]["id"] = MOTO_ACCOUNT
    data["load_balancer"]["certificate_arn"] = data["load_balancer"]["certificate_arn"].replace(
        ":333333333333:", f":{MOTO_ACCOUNT}:")
    directory = tmp_path / "environments"
    directory.mkdir()
    (directory / "ephemeral.yaml").write_text(json.dumps(data))
    base = load((ROOT / "environments" / "ephemeral-base.yaml").read_text())
    base["account"]["id"] = MOTO_ACCOUNT
    (directory / "ephemeral-base.yaml").write_text(json.dumps(base))
    return str(directory)


@pytest.fixture
def standalone_template_dir(template_dir: str) -> str:
    """The template without a branch base: each branch brings its own VPC (from ephemeral.vpc_cidr_pool),
    database server and directory."""
    from obiam.safe_yaml import load

    directory = Path(template_dir)
    data = load((directory / "ephemeral.yaml").read_text())
    base = load((directory / "ephemeral-base.yaml").read_text())
    del data["ephemeral"]["base"]
    data["ephemeral"]["vpc_cidr_pool"] = "10.128.0.0/12"
    data.update(database=base["database"], directory=base["directory"], availability_zone_count=2)
    (directory / "ephemeral.yaml").write_text(json.dumps(data))
    return template_dir


def reap_cli(template_dir: str, *arguments: str) -> Any:
    return CliRunner().invoke(app, ["reap", *arguments, "--environments-dir", template_dir])


def test_reap_is_a_dry_run_unless_told_to_apply(mocked: Any, destroys: list[Any], template_dir: str) -> None:
    from obiam import ephemeral

    old = ephemeral.stack_name("feature/old")
    tag_ephemeral(mocked, old, "feature/old", "2026-01-01T00:00:00Z")
    result = reap_cli(template_dir)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"obiam reap in account {MOTO_ACCOUNT}, {REGION}: 1 per-branch environment(s) "
                                    "past their deadline will be destroyed:")
    assert f"expired  {old}" in result.output and "would run: OBIAM_EPHEMERAL_BRANCH=feature/old" in result.output
    assert result.output.rstrip().endswith("dry run: nothing was destroyed; run with --apply to destroy")
    assert destroys == []


def test_reap_announces_then_destroys_only_expired_environments(mocked: Any, destroys: list[Any],
                                                               template_dir: str) -> None:
    from obiam import ephemeral

    old, new = ephemeral.stack_name("feature/old"), ephemeral.stack_name("feature/new")
    tag_ephemeral(mocked, old, "feature/old", "2026-01-01T00:00:00Z")
    tag_ephemeral(mocked, new, "feature/new", "2999-01-01T00:00:00Z")
    sns, sqs = mocked.client("sns"), mocked.client("sqs")
    topic = sns.create_topic(Name="obiam-reaper")["TopicArn"]
    queue = sqs.create_queue(QueueName="reaper-notices")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    result = reap_cli(template_dir, "--apply", "--notify-topic-arn", topic)
    assert result.exit_code == 0, result.output
    assert [command[3] for command, _ in destroys] == [old]
    assert f"keep     {new}" in result.output and f"destroy  {old}" in result.output
    (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
    assert message["Body"].startswith(f"obiam reap in account {MOTO_ACCOUNT}, {REGION}: 1 per-branch")
    assert f"- {old} (branch feature/old, deadline 2026-01-01T00:00:00Z" in message["Body"]


def test_a_keep_until_tag_holds_an_environment_but_never_past_the_configured_maximum() -> None:
    """ephemeral.max_keep_hours caps how far `obiam keep` can push the deadline past ExpiresAt."""
    expires = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
    kept = reap.EphemeralEnvironment("eph-x", "x", expires, 5, keep_until=expires + dt.timedelta(hours=24))
    greedy = reap.EphemeralEnvironment("eph-y", "y", expires, 5, keep_until=expires + dt.timedelta(days=90))
    moment = expires + dt.timedelta(hours=12)
    assert not kept.expired(moment, max_keep_hours=168) and kept.expired(moment, max_keep_hours=6)
    assert greedy.deadline(168) == expires + dt.timedelta(hours=168)
    assert greedy.expired(expires + dt.timedelta(hours=169), max_keep_hours=168)


def test_keep_tags_the_environment_and_the_reaper_honours_it(mocked: Any, destroys: list[Any],
                                                            template_dir: str) -> None:
    from obiam import ephemeral

    name = ephemeral.stack_name("feature/demo")
    soon = (reap.now() + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    tag_ephemeral(mocked, name, "feature/demo", soon)
    kept = CliRunner().invoke(app, ["keep", "--branch", "feature/demo", "--hours", "48",
                                    "--environments-dir", template_dir])
    assert kept.exit_code == 0 and kept.output.startswith(f"{name}: kept until "), kept.output
    (found,) = reap.find_ephemeral_environments(mocked, REGION)
    assert found.keep_until is not None and found.keep_until > found.expires_at  # type: ignore[operator]
    too_long = CliRunner().invoke(app, ["keep", "--branch", "feature/demo", "--hours", str(24 * 30),
                                        "--environments-dir", template_dir])
    assert too_long.exit_code == 2 and "ephemeral.max_keep_hours 168" in too_long.output


def test_reap_json_lists_every_environment_and_its_decision(mocked: Any, destroys: list[Any],
                                                           template_dir: str) -> None:
    from obiam import ephemeral

    old, new = ephemeral.stack_name("feature/old"), ephemeral.stack_name("feature/new")
    tag_ephemeral(mocked, old, "feature/old", "2026-01-01T00:00:00Z")
    tag_ephemeral(mocked, new, "feature/new", "2999-01-01T00:00:00Z")
    result = reap_cli(template_dir, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["account"], report["applied"]) == (MOTO_ACCOUNT, False)
    assert {e["name"]: e["action"] for e in report["environments"]} == {old: "destroy", new: "keep"}


def test_reap_refuses_another_accounts_credentials(mocked: Any, destroys: list[Any], template_dir: str) -> None:
    path = ROOT / "environments"
    result = CliRunner().invoke(app, ["reap", "--apply", "--environments-dir", str(path)])
    assert result.exit_code == 2 and "allows only account 333333333333 (account.id)" in result.output
    assert destroys == []


def test_verify_finds_a_branch_environments_directory_by_its_own_tag_not_the_shared_domain_name(
        mocked: Any) -> None:
    """Every per-branch environment uses the template's domain name; only the Environment tag tells
    their directories apart (#18 isolation)."""
    mine, other = environment("eph-a-111111"), environment("eph-b-222222")
    deploy(mocked, other)
    check = next(c for c in verify(mocked, mine, REGION) if c.name == "directory")
    assert (check.passed, check.detail) == (False, f"directory {mine.config.directory.name} of eph-a-111111 not found "
                                                   "(1 of that name belong to other environments)")


# --- errors ------------------------------------------------------------------------------------

def test_missing_credentials_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for variable in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = CliRunner().invoke(app, ["verify", "--env", "dev", "--environments-dir", "environments"])
    assert result.exit_code == 2
    assert result.output.startswith("obiam: no AWS credentials found")
    assert "Traceback" not in result.output


def test_access_denied_is_reported_as_such() -> None:
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "DescribeDBInstances")
    with pytest.raises(aws.OpsError, match=r"AWS refused DescribeDBInstances \(AccessDenied\): not allowed"), \
            aws.translated_errors():
        raise denied


def test_unknown_environment_is_a_config_error() -> None:
    result = CliRunner().invoke(app, ["preflight", "--env", "nope"])
    assert result.exit_code == 2
    assert "environments/nope.yaml: file not found" in result.output


def test_ephemeral_environment_needs_its_branch() -> None:
    result = CliRunner().invoke(app, ["verify", "--env", "eph-feature-a-123456"])
    assert result.exit_code == 2
    assert "pass --branch <branch> instead of --env" in result.output


# --- the installed console script against a moto server on loopback ----------------------------

@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's HTTP server on loopback, in a thread of this process: the console script under
    test still runs as its own process and reaches it only through AWS_ENDPOINT_URL."""
    import socket

    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_console_script_runs_against_an_aws_compatible_endpoint(moto_server: str, tmp_path: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    variables = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_ENDPOINT_URL": moto_server,
                 "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    endpoint = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                     region_name=REGION)
    arn = ready_account(_EndpointSession(endpoint, moto_server), state_bucket=False)
    directory = tmp_path / "environments"
    directory.mkdir()
    config = environment(load_balancer={"certificate_arn": arn}).config.model_dump(exclude_none=True)
    (directory / "dev.yaml").write_text(json.dumps(config))
    obiam = [str(Path(sys.executable).parent / "obiam")]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*obiam, *args, "--environments-dir", str(directory)], capture_output=True, text=True,
                              env=variables, timeout=120, check=False)

    created = run("bootstrap-state", "--env", "dev")
    assert created.returncode == 0 and "created bucket example-bank-tfstate" in created.stdout, created.stderr
    again = run("bootstrap-state", "--env", "dev")
    assert again.stdout.strip().endswith("already in place, nothing changed")
    after = run("preflight", "--env", "dev")
    assert after.returncode == 0, after.stdout + after.stderr
    # moto's server has no DescribeDBMajorEngineVersions: the check says so instead of failing a deploy.
    assert "engine support: the endpoint does not answer DescribeDBMajorEngineVersions" in after.stdout
    assert after.stdout.rstrip().endswith("9 passed, 0 failed")


def test_unreachable_endpoint_is_one_line_and_exit_2(tmp_path: Any) -> None:
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run([str(Path(sys.executable).parent / "obiam"), "verify", "--env", "dev"],
                            capture_output=True, text=True, timeout=120, check=False,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                 "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
                                 "AWS_SECRET_ACCESS_KEY": "testing"})
    assert result.returncode == 2
    assert result.stderr.startswith(f"obiam: cannot reach the AWS endpoint http://127.0.0.1:{port}")
    assert len(result.stderr.strip().splitlines()) == 1


class _EndpointSession:
    """A boto3 session whose clients talk to `endpoint` (the moto server)."""

    def __init__(self, session: boto3.session.Session, endpoint: str):
        self.session, self.endpoint = session, endpoint

    def client(self, service: str, **kwargs: Any) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint, **kwargs)


def test_preflight_refuses_a_branch_vpc_range_another_live_branch_uses(mocked: Any,
                                                                        standalone_template_dir: str) -> None:
    """ephemeral.vpc_cidr_pool picks a branch's /20 by hash, so two branches can draw the same one; the
    second is stopped before its deploy."""
    from obiam import ephemeral
    from obiam.environments import load_environment

    template_dir = standalone_template_dir
    template = load_environment(Path(template_dir) / "ephemeral.yaml", Path(template_dir))
    mine = ephemeral.from_template(template, "feature/a", reap.now())
    ec2 = mocked.client("ec2")
    vpc = ec2.create_vpc(CidrBlock=mine.config.network.cidr)["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[vpc], Tags=[{"Key": "obiam:ephemeral", "Value": "true"},
                                           {"Key": "Environment", "Value": "eph-other-abcdef"}])
    check = next(c for c in preflight(mocked, mine, REGION) if c.name == "branch network")
    assert (check.passed, check.detail) == (False, f"{mine.config.network.cidr} is already the VPC range of "
                                                   "eph-other-abcdef; rename the branch, or reap or destroy that "
                                                   "environment first")
    ec2.create_tags(Resources=[vpc], Tags=[{"Key": "Environment", "Value": mine.name}])  # its own VPC, redeployed
    assert next(c for c in preflight(mocked, mine, REGION) if c.name == "branch network").passed


@pytest.mark.parametrize("name", ["../prod", "prod/../../etc", "/tmp/x", "PROD"])
def test_env_is_a_name_never_a_path(name: str) -> None:
    result = CliRunner().invoke(app, ["preflight", "--env", name])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"--env '{name}': allowed: an environment name" in result.output


def test_preflight_stops_a_branch_whose_base_is_not_deployed_or_full(mocked: Any, template_dir: str) -> None:
    """A branch stands on its base's published outputs and function; each branch adds one inbound rule
    to the base's database security group, of the 60 a group holds by default (Amazon VPC quotas,
    "Inbound or outbound rules per security group")."""
    from obiam import ephemeral
    from obiam.environments import load_environment
    from obiam.ops.preflight import SECURITY_GROUP_RULES

    template = load_environment(Path(template_dir) / "ephemeral.yaml", Path(template_dir))
    mine = ephemeral.from_template(template, "feature/a", reap.now())

    def check() -> Any:
        return next(c for c in preflight(mocked, mine, REGION) if c.name == "branch base")

    assert not any(c.name in ("directory", "branch network") for c in preflight(mocked, mine, REGION))
    assert (check().passed, check().detail) == (False, "ephemeral-base is not deployed (/obiam/ephemeral-base/"
                                                       "branch-base not found); deploy it first: cdktf deploy "
                                                       "ephemeral-base (README, \"Per-branch environments\")")
    ec2 = mocked.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.43.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="obiam-ephemeral-base-db", Description="db", VpcId=vpc)["GroupId"]
    mocked.client("ssm", region_name=REGION).put_parameter(
        Name="/obiam/ephemeral-base/branch-base", Type="String", Value=json.dumps(
            {"branch_databases_function_name": "obiam-ephemeral-base-branch-databases", "db_security_group_id": group}))
    assert "function obiam-ephemeral-base-branch-databases is missing" in check().detail
    role = mocked.client("iam").create_role(RoleName="f", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    mocked.client("lambda", region_name=REGION).create_function(
        FunctionName="obiam-ephemeral-base-branch-databases", Runtime="python3.12", Role=role,
        Handler="index.handler", Code={"ZipFile": lambda_package.branch_databases().content})
    assert check().passed, check().detail
    for port in range(1, SECURITY_GROUP_RULES + 1):
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": f"10.0.0.{port}/32"}]}])
    assert not check().passed and "reap a branch first" in check().detail


def test_verify_checks_a_branchs_servers_on_its_base_and_the_base_itself(mocked: Any, template_dir: str) -> None:
    """A branch on a base has no database server or directory of its own: `verify --branch` checks the
    base's (found by the base's names and Environment tag), and `verify --env <base>` checks those and
    what the base publishes for its branches."""
    from obiam import ephemeral
    from obiam.environments import load_environment
    from obiam.ops.verify import verify_base

    template = load_environment(Path(template_dir) / "ephemeral.yaml", Path(template_dir))
    mine = ephemeral.from_template(template, "feature/a", reap.now())
    assert mine.base is not None
    base = mine.base
    deploy(mocked, mine, directory=False)
    checks = {c.name: c for c in verify(mocked, mine, REGION)}
    assert (checks["database"].passed, checks["database"].detail) == (False,
                                                                      "DB instance obiam-ephemeral-base-db not found")
    assert not checks["directory"].passed and "of ephemeral-base not found" in checks["directory"].detail
    ec2 = mocked.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.43.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.43.{i}.0/24", AvailabilityZone=z)["Subnet"]["SubnetId"]
               for i, z in enumerate(ZONES)]
    mocked.client("rds").create_db_instance(
        DBInstanceIdentifier=Names(base.name).db_instance, Engine="mysql", DBInstanceClass="db.t3.medium",
        MultiAZ=True, AllocatedStorage=20, MasterUsername="obiam_admin", MasterUserPassword="not-a-real-password-1")
    mocked.client("ds").create_microsoft_ad(
        Name=base.config.directory.name, Password="Passw0rd!Passw0rd", Edition="Standard",
        VpcSettings={"VpcId": vpc, "SubnetIds": subnets}, Tags=[{"Key": "Environment", "Value": base.name}])
    checks = {c.name: c for c in verify(mocked, mine, REGION)}
    assert checks["database"].passed and checks["directory"].passed, checks
    on_base = {c.name: c for c in verify_base(mocked, base, REGION)}
    assert on_base["database"].passed and on_base["directory"].passed
    assert (on_base["branch outputs"].passed, on_base["branch outputs"].detail) == (
        False, "/obiam/ephemeral-base/branch-base not found: branches cannot stand on ephemeral-base")
    mocked.client("ssm").put_parameter(Name="/obiam/ephemeral-base/branch-base", Type="String", Value="{}")
    role = mocked.client("iam").create_role(RoleName="f", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    mocked.client("lambda").create_function(
        FunctionName=Names(base.name).branch_databases_function, Runtime="python3.12", Role=role,
        Handler="index.handler", Code={"ZipFile": lambda_package.branch_databases().content})
    assert all(c.passed for c in verify_base(mocked, base, REGION))


def test_preflight_of_a_branch_base_checks_its_servers_and_state_not_nodes(mocked: Any, template_dir: str) -> None:
    from obiam.environments import load_file
    from obiam.ops.preflight import preflight_base

    base = load_file(Path(template_dir) / "ephemeral-base.yaml", Path(template_dir))
    assert not isinstance(base, Environment)
    checks = {c.name: c for c in preflight_base(mocked, base, REGION)}
    assert set(checks) == {"availability zones", "directory", "engine support", "state bucket"}
    assert checks["availability zones"].passed and checks["directory"].passed
    assert (checks["state bucket"].passed, checks["state bucket"].detail) == (
        False, "example-bank-tfstate-333333333333-eu-west-2 not found: run `obiam bootstrap-state --env "
               "ephemeral-base`")


# --- leftovers on the branch base --------------------------------------------------------------

class FakeBranchServer:
    """The branch base's server as the branch-databases function sees it (inventory, delete), in memory:
    the real function runs against a real MariaDB in tests/test_branch_databases_function.py; here the
    reaper's decisions are under test, and the Lambda service cannot run in moto."""

    def __init__(self, databases: set[str], users: set[str]) -> None:
        self.databases, self.users, self.events = databases, users, []

    def invoke(self, _client: Any, function_name: str, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append((function_name, event))
        if event == {"inventory": True}:
            return {"action": "inventory", "databases": sorted(self.databases), "users": sorted(self.users)}
        assert event["tf"]["action"] == "delete"
        self.databases -= set(event["databases"])
        self.users.discard(event["user"])
        return {"action": "delete"}


def test_reap_reports_what_no_live_branch_owns_on_the_base_and_drops_it_only_when_told(
        mocked: Any, destroys: list[Any], template_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first apply that failed after the base's function made the databases leaves them out of the
    state, so no destroy drops them. reap reports them on every run; dropping needs --apply
    --drop-leftovers (a branch being created can own databases before the tagging API lists it)."""
    from obiam import branch_scope, ephemeral
    from obiam.ops import leftovers

    live, gone = ephemeral.stack_name("feature/live"), ephemeral.stack_name("feature/gone")
    expired = ephemeral.stack_name("feature/expired")
    tag_ephemeral(mocked, live, "feature/live", "2999-01-01T00:00:00Z")
    tag_ephemeral(mocked, expired, "feature/expired", "2026-01-01T00:00:00Z")
    scopes = {name: branch_scope.on_branch_base(name) for name in (live, gone, expired)}
    server = FakeBranchServer(
        {scope.database(d) for scope in scopes.values() for d in ("openbank_apimgtdb", "openbank_userdb")},
        {scope.database_user for scope in scopes.values()})
    monkeypatch.setattr(leftovers, "invoke", server.invoke)

    report = json.loads(reap_cli(template_dir, "--json").output)
    # The expired branch is destroyed through Terraform, which drops its own databases: not a leftover.
    assert report["leftovers"] == [{"environment": gone, "user": scopes[gone].database_user, "databases": sorted(
        [scopes[gone].database("openbank_apimgtdb"), scopes[gone].database("openbank_userdb")])}]
    assert report["leftovers_checked"] and not report["leftovers_dropped"]
    result = reap_cli(template_dir, "--apply")
    assert result.exit_code == 0 and f"leftover {gone} on ephemeral-base, left behind" in result.output
    assert [event for _, event in server.events if event != {"inventory": True}] == []
    assert reap_cli(template_dir, "--drop-leftovers").exit_code == 2

    result = reap_cli(template_dir, "--apply", "--drop-leftovers")
    assert result.exit_code == 0, result.output
    (function, event), = [(f, e) for f, e in server.events if e != {"inventory": True}]
    assert function == "obiam-ephemeral-base-branch-databases" and event["user"] == scopes[gone].database_user
    assert "will be dropped from the branch base: " + gone in result.output
    assert scopes[live].database_user in server.users and scopes[gone].database_user not in server.users
    assert not any(d.startswith(scopes[gone].database_user) for d in server.databases)


def test_a_leftover_is_grouped_by_branch_and_an_unknown_name_is_reported_alone() -> None:
    from obiam.ops import leftovers

    found = leftovers.find({"users": ["eph_a_111111"], "databases": [
        "eph_a_111111_openbank_govdb", "eph_b_222222_openbank_openbankingdb", "eph_stray"]}, ["eph-c-333333"])
    assert [(x.environment, x.databases, x.user) for x in found] == [
        ("eph-a-111111", ("eph_a_111111_openbank_govdb",), True),
        ("eph-b-222222", ("eph_b_222222_openbank_openbankingdb",), False),
        ("eph-stray", ("eph_stray",), False)]


def test_a_failed_function_call_is_an_error_naming_the_function() -> None:
    """Lambda Invoke (API reference): a function that raised answers 200 with FunctionError set and the
    error in the payload; that is a failure, not an answer."""
    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    from obiam.ops import leftovers

    lambda_client = boto3.session.Session(region_name=REGION, aws_access_key_id="x",
                                          aws_secret_access_key="x").client("lambda")
    body = json.dumps({"errorMessage": "cannot reach the database"}).encode()
    with Stubber(lambda_client) as stub:
        stub.add_response("invoke", {"StatusCode": 200, "FunctionError": "Unhandled",
                                     "Payload": StreamingBody(io.BytesIO(body), len(body))},
                          {"FunctionName": "f", "InvocationType": "RequestResponse", "Payload": b'{"inventory": true}'})
        with pytest.raises(aws.OpsError, match="f failed: cannot reach the database"):
            leftovers.invoke(lambda_client, "f", {"inventory": True})
