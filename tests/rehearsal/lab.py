"""The rehearsal lab: simulated EC2 nodes booting the synthesized user data against real servers.

Real: the user data (byte for byte as synthesized), bash and every tool it calls (useradd,
mount, flock, unzip, keytool, jq, the mysql/psql clients, AWS CLI v1), the network
namespaces and the IMDSv2 HTTP service in them, moto's AWS APIs, MariaDB and PostgreSQL
with TLS, and bindfs for EFS access-point semantics. Doubles (tests/rehearsal/doubles):
dnf, systemctl, the EFS mount helper, the CloudWatch agent control script, the one curl
download from the Internet, and the product itself (the synthetic pack's wso2server.sh).

Start-up only, not behaviour, is changed for the two tools the boot path runs most: `aws`
is the AWS CLI v1's own code run in a process forked from one that imported it already
(doubles/aws_zygote.py, ~0.45 s less per call), and `keytool` is the machine's keytool
started from a class-data archive of its own classes (KEYTOOL below).

A node is a `sleep` holding new mount, network and UTS namespaces. Its /etc and /usr are
overlays on the machine's (so useradd and the dnf double write only the node's copy), and
/opt, /mnt, /var/log, /var/lib/cloud, /root, /run, /tmp and /var/tmp are its own
directories, so everything the boot writes stays under the node's directory here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from obiam import branch_scope
from tests.rehearsal import pack as packs
from tests.rehearsal.base import LabBase
from tests.rehearsal.namespaces import Holder, kill_namespace, run
from tests.rehearsal.services import (
    AMIS,
    DATABASE_IP,
    ENDPOINTS_IP,
    GENERAL_LOG_ENTRY,
    MOTO_PORT,
    VENV_BIN,
    MariaDB,
    PostgreSQL,
    free_host_link,
    setup_network,
    start_moto,
    start_share,
    wait_for,
)
from tests.rehearsal.stack import LabGap, NodeStack, _reference
from tests.rehearsal.tls import TestCA

DOUBLES = Path(__file__).resolve().parent / "doubles"
AWS_SOCKET = "/run/obiam-lab/aws.sock"
WSO2_UID = 802
FAILED_MARKER = "obiam-bootstrap: FAILED:"
BOOT_TIMEOUT = 180
# Where the boot script runs from, as cloud-init's scripts-user module runs it.
USER_DATA_PATH = "/var/lib/cloud/instance/scripts/part-001"
# cloud-init's PATH; the doubles sit in /usr/local/{s,}bin of the node's /usr overlay.
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PRIVATE_DIRECTORIES = ("opt", "mnt", "var/log", "var/tmp", "root", "tmp")
# Copy-on-write views of the machine's own: the node sees its files, its writes stay its own.
OVERLAYS = ("etc", "usr", "var/lib")
ENGINES = {"mysql": "mariadb", "postgres": "postgres"}
# How a branch environment's stack reads its base's published outputs (stacks/branch_base_stack.py).
FROM_BASE = re.compile(r"jsondecode\(data\.aws_ssm_parameter\.([\w-]+)\.insecure_value\)\.(\w+)")


def password() -> str:
    # Letters and digits: the lab's own secrets must not be what breaks a boot.
    return secrets.token_hex(12)


@dataclass
class BootResult:
    node: str
    returncode: int
    output: str
    seconds: float

    @property
    def failed_lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if FAILED_MARKER in line]

    def describe(self) -> str:
        tail = "\n".join(self.output.splitlines()[-25:])
        return f"boot of {self.node} exited {self.returncode} after {self.seconds:.1f}s; last output:\n{tail}"


@dataclass
class Share:
    access_point: str
    directory: str  # the artifact directory (or "control") it roots
    backing: Path


@dataclass
class LabEnvironment:
    """One synthesized environment deployed into the lab: its AWS state, database and shares."""

    lab: Lab
    stack: NodeStack
    config: Any  # obiam.config model of the environment (pack URI, engine)
    database: MariaDB | PostgreSQL
    index: int = 0  # the environment's place in the lab: its app subnet is 10.40.(16 * (1 + index)).0/20
    db_host: str = ""
    master_username: str = "obiamadmin"
    secret_arns: dict[str, str] = field(default_factory=dict)  # resource name -> ARN
    secret_values: dict[str, dict[str, str]] = field(default_factory=dict)  # ARN -> value
    secret_versions: dict[str, str] = field(default_factory=dict)  # resource name -> VersionId
    runtime_value: dict[str, Any] = field(default_factory=dict)
    file_system_id: str = ""
    shares: dict[str, Share] = field(default_factory=dict)  # access point id -> share
    subnet_id: str = ""
    security_group_id: str = ""
    image_id: str = ""
    nodes: list[Node] = field(default_factory=list)
    # The branch base the environment stands on (environment.base): its network and database server.
    base: LabBase | None = None
    branch_answers: list[dict[str, Any]] = field(default_factory=list)  # the base's function's answers on apply
    _random: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.stack.environment

    @property
    def runtime_parameter(self) -> str:
        return self.stack.runtime_parameter[0]

    def client(self, service: str) -> Any:
        return self.lab.client(service, self.stack.region)

    @property
    def db_secret_arn(self) -> str:
        return str(self.runtime_value["db_secret_arn"])

    @property
    def scope(self) -> branch_scope.SharedServerNames:
        """The names of the environment's databases and database user on its server."""
        return branch_scope.OWN_SERVERS if self.base is None else branch_scope.on_branch_base(self.name)

    def share_for(self, directory: str) -> Share:
        return next(s for s in self.shares.values() if s.directory == directory)

    # -- seeding ---------------------------------------------------------------------------------------
    def deploy(self) -> None:
        """Creates in moto, on the database server and in the shares what `terraform apply` would have."""
        stack, region = self.stack, self.stack.region
        ec2 = self.client("ec2")
        if self.base is None:
            vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
            # One app subnet per environment, so no two nodes on the lab's one bridge share an address.
            self.subnet_id = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{16 * (1 + self.index)}.0/20",
                                               AvailabilityZone=f"{region}a")["Subnet"]["SubnetId"]
        else:  # the base's network, as the stack reads it from the base's published parameter
            vpc, self.subnet_id = self.base_output("vpc_id"), self.base_output("app_subnet_ids")[0]
        self.security_group_id = ec2.create_security_group(GroupName=stack.node_security_group, VpcId=vpc,
                                                           Description="nodes")["GroupId"]
        self.image_id = ec2.describe_images(ImageIds=[AMIS[0]["ami_id"]])["Images"][0]["ImageId"]
        efs = self.client("efs")
        self.file_system_id = efs.create_file_system(CreationToken=f"{self.name}-artifacts",
                                                     Encrypted=True)["FileSystemId"]
        access_point_ids: dict[str, str] = {}
        for resource_name, directory in stack.access_points.items():
            access_point = efs.create_access_point(
                FileSystemId=self.file_system_id, PosixUser={"Uid": WSO2_UID, "Gid": WSO2_UID},
                RootDirectory={"Path": f"/wso2/{directory}", "CreationInfo": {
                    "OwnerUid": WSO2_UID, "OwnerGid": WSO2_UID, "Permissions": "0750"}})["AccessPointId"]
            access_point_ids[resource_name] = access_point
            share = Share(access_point, directory, self.lab.root / "efs-backing" / self.name / directory)
            start_share(self.lab.services, share.backing, self.lab.root / "efs" / access_point, WSO2_UID)
            self.shares[access_point] = share
        secrets_client = self.client("secretsmanager")
        if self.base is None:
            self.db_host = database_host(stack)
            master_password = password()
            self.database.create_master(self.master_username, master_password)
            master_arn = secrets_client.create_secret(
                Name=f"rds!db-{secrets.token_hex(8)}",
                SecretString=json.dumps({"username": self.master_username, "password": master_password}))["ARN"]
            self.secret_values[master_arn] = {"username": self.master_username, "password": master_password}
        else:  # the base's server and master: the branch never sees the master's secret
            self.db_host = self.base_output("db_address")
            self.master_username = self.base.master_username
        for resource_name, secret in stack.resources.get("aws_secretsmanager_secret", {}).items():
            value = self._secret_value(resource_name)
            created = secrets_client.create_secret(Name=str(secret["name"]), SecretString=json.dumps(value))
            self.secret_arns[resource_name] = created["ARN"]
            self.secret_versions[resource_name] = created["VersionId"]
            self.secret_values[created["ARN"]] = value

        def resolve(key: str, expression: Any) -> Any:  # noqa: PLR0911 - one return per reference kind
            if isinstance(expression, dict):
                return {k: resolve(f"{key}.{k}", v) for k, v in expression.items()}
            reference = _reference(str(expression))
            kind, name, *attribute = reference.split(".")
            last = ".".join(attribute)
            if reference.startswith('"') and reference.endswith('"'):
                return reference[1:-1]
            if FROM_BASE.fullmatch(reference):  # what the branch base published (stacks/branch_base_stack.py)
                return self.from_base(reference)
            if kind == "aws_efs_file_system":
                return self.file_system_id
            if kind == "aws_efs_access_point":
                return access_point_ids[name]
            if self.base is None and kind == "aws_db_instance" and last == "address":
                return self.db_host
            if self.base is None and kind == "aws_db_instance" and last == "port":
                return self.database.port
            if self.base is None and kind == "aws_db_instance" and "master_user_secret" in last:
                return master_arn
            if "aws_directory_service_directory" in reference and "dns_ip_addresses" in reference:
                return ["10.40.0.4", "10.40.0.5"]  # no directory is emulated; the product double skips LDAP
            if kind == "aws_secretsmanager_secret":
                return self.secret_arns[name]
            raise LabGap(f"runtime parameter key {key!r} = {expression!r}: the rehearsal does not emulate it yet")

        _, shape = stack.runtime_parameter
        self.runtime_value = {k: resolve(k, v) for k, v in shape.items()}
        self.put_runtime_value(self.runtime_value)
        s3 = self.client("s3")
        for uri, body in self.s3_objects().items():
            bucket, key = uri[len("s3://"):].split("/", 1)
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
            s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256")
        logs = self.client("logs")
        for group in stack.log_groups:
            logs.create_log_group(logGroupName=group)
        # The nodes boot after their databases (the stack's boot_after): apply invokes the base's function first.
        self.branch_answers = [self.invoke_branch_databases(i, "create") for i in self.branch_database_invocations()]

    def _published(self) -> dict[str, dict[str, Any]]:
        """data.aws_ssm_parameter name -> its JSON value, for those the stack reads with jsondecode: what its
        branch base published, read from SSM as `terraform plan` reads it. None without a base."""
        if self.base is None:
            return {}
        text, client = json.dumps(self.stack.data), self.client("ssm")
        return {name: json.loads(client.get_parameter(Name=str(spec["name"]))["Parameter"]["Value"])
                for name, spec in self.stack.data.get("data", {}).get("aws_ssm_parameter", {}).items()
                if f"jsondecode(data.aws_ssm_parameter.{name}.insecure_value)" in text}

    def base_output(self, output: str) -> Any:
        """One output of the branch base, read through the one data source the stack reads its base with."""
        published = self._published()
        if len(published) != 1:
            raise LabGap(f"{self.stack.path}: expected one data.aws_ssm_parameter read with jsondecode (the base)")
        name = next(iter(published))
        return self.from_base(f"jsondecode(data.aws_ssm_parameter.{name}.insecure_value).{output}")

    def branch_database_invocations(self) -> list[dict[str, Any]]:
        """The stack's aws_lambda_invocation resources of the base's branch-databases function."""
        return [spec for spec in self.stack.resources.get("aws_lambda_invocation", {}).values()
                if "branch_databases_function_name" in str(spec.get("function_name"))]

    def invoke_branch_databases(self, invocation: dict[str, Any], action: str) -> dict[str, Any]:
        """What the AWS provider sends for an aws_lambda_invocation with lifecycle_scope CRUD: the input, with
        {"tf": {"action", "prev_input"}} added; prev_input is null on create and the current input on
        delete (hashicorp/terraform-provider-aws, internal/service/lambda/invocation.go, buildInput)."""
        if self.base is None or invocation.get("lifecycle_scope") != "CRUD":
            raise LabGap(f"{self.stack.path}: a branch-databases invocation without a base or lifecycle_scope CRUD")

        def value(match: re.Match[str]) -> str:
            kind, name, attribute = match.groups()
            if kind == "aws_secretsmanager_secret" and attribute == "arn":
                return self.secret_arns[name]
            if kind == "aws_secretsmanager_secret_version" and attribute == "version_id":
                secret = _reference(str(self.stack.resource(f"{kind}.{name}")["secret_id"])).split(".")[1]
                return self.secret_versions[secret]
            raise LabGap(f"{self.stack.path}: invocation input references {match.group(0)}")

        event = json.loads(re.sub(r"\$\{(aws_[a-z_]+)\.([A-Za-z0-9_-]+)\.(\w+)\}", value, str(invocation["input"])))
        function_name = str(self.from_base(_reference(str(invocation["function_name"]))))
        return self.base.invoke(function_name, {**event, "tf": {
            "action": action, "prev_input": event if action == "delete" else None}})

    def from_base(self, reference: str) -> Any:
        """A value the stack reads from its base's published parameter (`jsondecode(data...).<output>`)."""
        match = FROM_BASE.fullmatch(reference)
        if match is None:
            raise LabGap(f"{self.stack.path}: {reference!r} is not read from the branch base")
        published = self._published()
        if match.group(1) not in published or match.group(2) not in published[match.group(1)]:
            raise LabGap(f"{self.stack.path}: {reference}: the base published no such value")
        return published[match.group(1)][match.group(2)]

    def destroy_branch_databases(self) -> list[dict[str, Any]]:
        """What `cdktf destroy` does to the branch's databases: the invocations' delete (after the nodes)."""
        return [self.invoke_branch_databases(i, "delete") for i in self.branch_database_invocations()]

    def _secret_value(self, secret_resource: str) -> dict[str, str]:
        """The secret's value as `terraform apply` writes it: its secret_version's JSON, random values generated."""
        for version in self.stack.resources.get("aws_secretsmanager_secret_version", {}).values():
            if f"aws_secretsmanager_secret.{secret_resource}." in str(version.get("secret_id", "")):
                break
        else:
            return {"password": password()}

        def generated(match: re.Match[str]) -> str:
            kind, name, attribute = match.group(1), match.group(2), match.group(3)
            key = f"{kind}.{name}"
            if key not in self._random:
                spec = self.stack.resource(key)
                if kind == "random_id":
                    self._random[key] = secrets.token_hex(int(spec.get("byte_length", 32)))
                else:  # random_password: the resource's own special characters, so the lab tests them too
                    special = str(spec.get("override_special", "-_")) if spec.get("special", True) else ""
                    body = secrets.token_urlsafe(int(spec.get("length", 32))).replace("-", "").replace("_", "")
                    self._random[key] = ("Aa1" + body)[: int(spec.get("length", 32)) - 2] + special[:2]
            assert attribute in {"result", "hex", "b64_url", "id"}
            return self._random[key]

        text = re.sub(r"\$\{(random_password|random_id)\.([A-Za-z0-9_-]+)\.(\w+)\}", generated,
                      str(version["secret_string"]))
        if "${" in text:
            raise LabGap(f"secret {secret_resource}: cannot evaluate {text!r}")
        return dict(json.loads(text))

    def s3_objects(self) -> dict[str, bytes]:
        pack = self.lab.pack
        # The pack `obiam pack build` made; the environment pins its SHA-256 (tests/conftest.py synthesizes
        # the stacks the rehearsal boots with that pin).
        objects = {self.config.product.pack_s3_uri: pack.path.read_bytes()}
        driver = getattr(self.config.database, "jdbc_driver_s3_uri", None)
        if driver:
            objects[driver] = self.lab.jdbc_driver
        for bucket, key, body in self.stack.s3_objects():
            objects[f"s3://{bucket}/{key}"] = body
        return objects

    def put_runtime_value(self, value: dict[str, Any]) -> None:
        self.client("ssm").put_parameter(Name=self.runtime_parameter, Value=json.dumps(value), Type="SecureString",
                                         Overwrite=True)

    def rotate_secret(self, arn: str) -> tuple[str, str]:
        """A rotation as RDS does it: a new password on the server and in the secret. Returns (old, new)."""
        value = self.secret_values[arn]
        old, new = value["password"], password()
        self.database.set_password(value["username"], new)
        value["password"] = new
        self.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=json.dumps(value))
        return old, new

    def node(self, name: str, unreachable: tuple[str, ...] = ()) -> Node:
        node = Node(self, name, unreachable)
        self.nodes.append(node)
        return node

    def schema_statements(self) -> list[str]:
        """Every CREATE TABLE / CREATE DATABASE / ALTER TABLE the database server has run for this environment's
        nodes. The MariaDB server is shared by every MySQL environment of the lab (prod's and a branch's), so
        there only the statements of connections from this environment's nodes count."""
        log = self.database.ddl_log()
        lines = [line for line in log.splitlines()
                 if any(word in line.upper() for word in ("CREATE TABLE", "CREATE DATABASE", "ALTER TABLE"))]
        if not isinstance(self.database, MariaDB):
            return lines
        addresses = {node.ip for node in self.nodes}
        mine = {session.id for session in self.database.sessions() if session.host in addresses}
        return [line for line in lines
                if (entry := GENERAL_LOG_ENTRY.match(line)) is not None and int(entry.group(1)) in mine]


class Node:
    """One simulated EC2 instance of an environment."""

    def __init__(self, environment: LabEnvironment, name: str, unreachable: tuple[str, ...] = ()) -> None:
        self.environment, self.name = environment, name
        lab, stack = environment.lab, environment.stack
        tags = [{"Key": k, "Value": v} for k, v in stack.instance_tags.items()]
        instance = environment.client("ec2").run_instances(
            ImageId=environment.image_id, MinCount=1, MaxCount=1, InstanceType=stack.instance_type,
            SubnetId=environment.subnet_id, SecurityGroupIds=[environment.security_group_id],
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])["Instances"][0]
        self.instance_id, self.ip = instance["InstanceId"], instance["PrivateIpAddress"]
        self.directory = lab.root / "nodes" / f"{environment.name}-{name}"
        self.holder = lab.hold(Holder(f"{environment.name}-{name}", parent=lab.services))
        self.records = self.directory / "fs/run/obiam-lab/records"
        self._build_filesystem(unreachable)
        self._start_aws_cli()
        self._start_imds()

    # -- construction ----------------------------------------------------------------------------------
    def _build_filesystem(self, unreachable: tuple[str, ...]) -> None:
        lab, env = self.environment.lab, self.environment
        d = self.directory
        for part in (*(f"upper/{o}" for o in OVERLAYS), *(f"work/{o}" for o in OVERLAYS),
                     "upper/usr/local/sbin", "upper/usr/local/bin", "upper/var/lib/cloud/instance/scripts",
                     "fs/run/obiam-lab/records", "fs/run/obiam-lab/conf", "fs/run/obiam-lab/efs",
                     "fs/run/obiam-lab/doubles", *(f"fs/{p}" for p in PRIVATE_DIRECTORIES)):
            (d / part).mkdir(parents=True, exist_ok=True)
        # 0711, not EC2's 0550: the venv interpreter under /root/.pyenv must be reachable for wso2carbon too
        # (the product double runs the project's contract checker with it).
        (d / "fs/root").chmod(0o711)
        (d / "fs/tmp").chmod(0o1777)
        (d / "fs/var/tmp").chmod(0o1777)
        hostname = f"ip-{self.ip.replace('.', '-')}.{env.stack.region}.compute.internal"
        (d / "upper/etc/hosts").write_text(
            f"127.0.0.1 localhost\n{self.ip} {hostname} {hostname.split('.', maxsplit=1)[0]}\n"
            # The RDS endpoint resolves to the lab's database host, as Route 53 would inside the VPC.
            f"{DATABASE_IP} {env.db_host}\n")
        (d / "upper/etc/hostname").write_text(hostname.split(".", maxsplit=1)[0] + "\n")
        (d / "upper/etc/resolv.conf").write_text(f"nameserver {ENDPOINTS_IP}\n")
        for name, target in (("sbin/dnf", "dnf.py"), ("sbin/systemctl", "systemctl.py"), ("bin/curl", "curl.sh")):
            os.symlink(f"/run/obiam-lab/doubles/{target}", d / "upper/usr/local" / name)
        # AWS CLI v1 from the project's venv (pinned in requirements.lock; its interpreter lives under
        # /root/.pyenv), served by the node's AWS CLI server (doubles/aws_zygote.py) to save its start-up.
        (d / "upper/usr/local/bin/aws").write_text(aws_client())
        (d / "upper/usr/local/bin/aws").chmod(0o755)
        conf = d / "fs/run/obiam-lab/conf"
        shutil.copy(lab.ca.bundle, conf / "rds-ca-bundle.pem")
        archive = lab.pack.path.parent / packs.KEYTOOL_ARCHIVE
        if archive.exists():
            os.link(archive, conf / packs.KEYTOOL_ARCHIVE)
            (d / "upper/usr/local/bin/keytool").write_text(KEYTOOL)
            (d / "upper/usr/local/bin/keytool").chmod(0o755)
        (conf / "efs.json").write_text(json.dumps({
            "file_system_id": env.file_system_id,
            "access_points": {ap: ap for ap in env.shares}}))
        pyenv = Path("/root/.pyenv")
        (d / "fs/root/.pyenv").mkdir()
        script = [
            "set -e",
            f"hostname {hostname.split('.', maxsplit=1)[0]}",
            *(f"mount -t overlay overlay -o lowerdir=/{o},upperdir={d}/upper/{o},workdir={d}/work/{o} /{o}"
              for o in OVERLAYS),
            f"mount --bind {d}/fs/run /run",
            f"mount --rbind {lab.root}/efs /run/obiam-lab/efs",
            f"mount --bind -o ro {DOUBLES} /run/obiam-lab/doubles",
            # The venv's interpreter (for the AWS CLI) lives under the machine's /root/.pyenv.
            f"mount --bind -o ro {pyenv} {d}/fs/root/.pyenv",
            *(f"mount --rbind {d}/fs/{p} /{p}" for p in PRIVATE_DIRECTORIES if p != "tmp"),
            # The checkout (its venv runs the AWS CLI and the doubles) may itself live under /tmp, which
            # the node gets privately: bind it back at the same path inside the private /tmp.
            *_keep_checkout_visible(d),
            f"mount --rbind {d}/fs/tmp /tmp",  # last: the lab's own files may live under /tmp
        ]
        self.holder.run("sh", "-c", "\n".join(script), network=False)
        network = [
            "link set lo up",
            # IMDS answers on the link-local address inside the node only, as on EC2.
            "addr add 169.254.169.254/32 dev lo",
            f"addr add {self.ip}/16 dev eth0",
            "link set eth0 up",
            *(f"route add unreachable {address}/32" for address in unreachable),
        ]
        with env.lab._lock:  # nodes are made by more than one thread
            host_end = f"olv{os.getpid() % 10000}{len(env.lab.nodes_created)}"
            env.lab.nodes_created.append(self.name)
        env.lab.services.run("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns",
                             str(self.holder.pid))
        env.lab.services.run("ip", "link", "set", host_end, "master", "br0", "up")
        self.holder.run("ip", "-batch", "-", input="\n".join(network) + "\n", mount=False)

    def _start_aws_cli(self) -> None:
        """The node's AWS CLI server: forked by the lab's master (doubles/aws_zygote.py), it joins the node's
        namespaces and serves the node's socket, with the environment cloud-init gives scripts."""
        request = {"pid": self.holder.pid, "socket": AWS_SOCKET, "log": "/run/obiam-lab/records/aws-cli-server.log",
                   "env": self.environment_variables()}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(str(self.environment.lab.aws_master_socket))
            connection.sendall(json.dumps(request).encode() + b"\n")
            pid = int(connection.makefile("rb").readline())
        socket_path = self.directory / "fs" / AWS_SOCKET.lstrip("/")

        def up() -> bool:
            if not Path(f"/proc/{pid}").exists():
                raise RuntimeError(f"the AWS CLI server of {self.name} exited:\n"
                                   f"{(self.records / 'aws-cli-server.log').read_text(errors='replace')}")
            return socket_path.exists()
        wait_for(up, f"the AWS CLI server of {self.name}", log=self.records / "aws-cli-server.log")

    def _start_imds(self) -> None:
        env = self.environment
        config = {
            "instance_id": self.instance_id, "local_ipv4": self.ip, "region": env.stack.region,
            "availability_zone": f"{env.stack.region}a", "instance_type": env.stack.instance_type,
            "local_hostname": f"ip-{self.ip.replace('.', '-')}.{env.stack.region}.compute.internal",
            "role": env.stack.node_role, "account_id": "123456789012",
            "profile_arn": f"arn:aws:iam::123456789012:instance-profile/{env.stack.node_role}",
            "access_key_id": "ASIA" + secrets.token_hex(8).upper(), "secret_access_key": secrets.token_hex(20),
            "session_token": secrets.token_hex(40),
        }
        path = self.directory / "imds.json"
        path.write_text(json.dumps(config))
        log = self.records / "imds.log"
        # In the node's network namespace, the machine's mount namespace (it reads its config from here).
        self.imds = subprocess.Popen(self.holder.command("/usr/bin/python3", str(DOUBLES / "imds.py"), str(path),
                                                         str(log), mount=False),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up() -> bool:
            return self.holder.run("curl", "-s", "-o", "/dev/null", "-X", "PUT", "-H",
                                   "X-aws-ec2-metadata-token-ttl-seconds: 10",
                                   "http://169.254.169.254/latest/api/token", check=False, mount=False).returncode == 0
        wait_for(up, f"IMDS of {self.name}", process=self.imds)  # type: ignore[arg-type]

    # -- use -------------------------------------------------------------------------------------------
    def environment_variables(self) -> dict[str, str]:
        return {"PATH": NODE_PATH, "HOME": "/root", "LANG": "C.UTF-8", "USER": "root", "LOGNAME": "root",
                # The lab's only environment tweak: where the AWS APIs are (moto, inside the VPC).
                "AWS_ENDPOINT_URL": f"http://{ENDPOINTS_IP}:{MOTO_PORT}"}

    def sh(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(self.holder.command("env", "-i", *(f"{k}={v}" for k, v in
                                                                       self.environment_variables().items()),
                                                      "/bin/bash", "-c", command),
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as error:
            sockets = self.holder.run("ss", "-tanp", mount=False, check=False).stdout
            raise RuntimeError(f"{self.name}: `{command}` did not end within {timeout:.0f}s; its processes:\n"
                               f"{self.processes()}\nsockets:\n{sockets}\n"
                               f"journal:\n{self.journal()[-2000:]}") from error

    def processes(self) -> str:
        """The node's processes (those in its mount namespace), for a failure message."""
        lines = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and os.readlink(entry / "ns/mnt") == self.holder.mnt:
                    argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    wchan = (entry / "wchan").read_text()
                    lines.append(f"{entry.name} [{wchan}] {argv}")
            except OSError:
                continue
        return "\n".join(sorted(lines, key=lambda line: int(line.split()[0])))

    def boot(self) -> BootResult:
        """Runs the user data as cloud-init would (as root, from /var/lib/cloud) and waits for it to end."""
        script = self.directory / "upper" / USER_DATA_PATH.lstrip("/")
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_bytes(self.environment.stack.user_data)
        script.chmod(0o700)
        started = time.monotonic()
        result = subprocess.run(self.holder.command("env", "-i", *(f"{k}={v}" for k, v in
                                                                     self.environment_variables().items()),
                                                    USER_DATA_PATH),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                timeout=BOOT_TIMEOUT, check=False)
        return BootResult(self.name, result.returncode, result.stdout.decode(errors="replace"),
                          time.monotonic() - started)

    def read(self, path: str) -> str:
        result = self.sh(f"cat {path}")
        if result.returncode != 0:
            raise FileNotFoundError(f"{self.name}:{path}: {result.stderr.strip()}")
        return result.stdout

    def health(self, timeout: float = 30) -> int:
        """The ALB's health check, from inside the VPC: HTTPS to 9443 + offset, the WSO2 health-check path."""
        port = 9443 + int(self.deployment_toml().get("server", {}).get("offset", 0))
        url = f"https://{self.ip}:{port}/api/health-check/v1.0/health"
        deadline = time.monotonic() + timeout
        code = 0
        while time.monotonic() < deadline:
            result = self.environment.lab.services.run(
                "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", url, check=False)
            code = int(result.stdout or 0)
            if code == 200:
                return code
            if not self.service_active():
                return code
            time.sleep(0.1)
        return code

    def service_active(self) -> bool:
        return self.sh("systemctl is-active --quiet wso2-obiam.service").returncode == 0

    def journal(self) -> str:
        path = self.records / "systemd/wso2-obiam.service.journal"
        return path.read_text(errors="replace") if path.exists() else ""

    def deployment_toml(self) -> dict[str, Any]:
        import tomllib
        return tomllib.loads(self.read("/opt/wso2/current/repository/conf/deployment.toml"))

    def product_status(self) -> dict[str, Any]:
        return dict(json.loads(self.read("/opt/wso2/current/repository/logs/rehearsal-product.json")))

    def files_containing(self, needle: str) -> list[str]:
        """Paths on the node's own disk (its /etc copy and private directories) whose bytes contain `needle`."""
        found = []
        roots = [*(self.directory / "upper" / o for o in OVERLAYS),
                 *(self.directory / "fs" / p for p in PRIVATE_DIRECTORIES),
                 self.directory / "fs/run"]
        data = needle.encode()
        for root in roots:
            for path in root.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    try:
                        if data in path.read_bytes():
                            found.append(str(path.relative_to(self.directory)))
                    except OSError:
                        continue
        return found

    def snapshot(self) -> dict[str, str]:
        """Content hashes of what the boot path writes on the node (logs excluded)."""
        hashes = {}
        for root in (self.directory / "upper/etc", self.directory / "fs/opt"):
            for path in sorted(root.rglob("*")):
                relative = str(path.relative_to(self.directory))
                if "/logs/" in relative or relative.endswith(".log"):
                    continue
                if path.is_symlink():
                    hashes[relative] = "-> " + os.readlink(path)
                elif path.is_file():
                    data = path.read_bytes()
                    # Small text files keep their content, so a failure can show what changed.
                    small_text = len(data) < 65536 and b"\0" not in data
                    hashes[relative] = data.decode(errors="replace") if small_text else hashlib.sha256(data).hexdigest()
        return hashes

    def terminate(self) -> None:
        self.holder.close()
        # moto may already be gone when a failed session tears down; the instance goes with it then.
        with contextlib.suppress(Exception):
            self.environment.client("ec2").terminate_instances(InstanceIds=[self.instance_id])


class Lab:
    """The session's services (moto, databases, shares) and the environments deployed into them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.chmod(0o711)  # postgres and the node's wso2carbon traverse it
        self.nodes_created: list[str] = []
        self.environments: dict[str, LabEnvironment] = {}
        self.bases: dict[str, LabBase] = {}
        self.services = Holder("services")
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._holders: list[Holder] = []  # every node's, so close() ends them even mid-construction
        self.closed = False
        self.mariadb: MariaDB | None = None
        self.postgres: PostgreSQL | None = None
        self.jdbc_driver = _placeholder_jar()

    def start(self, database_hosts: list[str], regions: tuple[str, ...] = (),
              pack_ready: Future[packs.Pack] | None = None) -> None:
        """Starts every shared server at once: they are independent, and the machine has two cores.

        `database_hosts`: the RDS-style names the database servers' certificate must cover.
        `regions`: where environments will be deployed; moto sets up its EC2 backend of each now
        (~1 s each), before a stack is there to deploy.
        `pack_ready`: gets the pack as soon as it is built (the stacks the rehearsal boots pin its hash).
        """
        self._database_hosts = database_hosts
        self.link = free_host_link()
        self.moto_endpoint = f"http://{self.link[1]}:{MOTO_PORT}"
        setup_network(self.services, str(os.getpid() % 100000), self.link)
        self.ca = TestCA(self.root / "ca")
        # The AWS CLI's master server (doubles/aws_zygote.py): imported once, it forks each node's server.
        self.aws_master_socket = self.root / "aws-cli-master.sock"
        self.aws_master = subprocess.Popen(
            [str(VENV_BIN / "python"), str(DOUBLES / "aws_zygote.py"), "--master", str(self.aws_master_socket)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=(self.root / "aws-cli-master.log").open("wb"))
        with ThreadPoolExecutor(max_workers=4) as pool:
            moto = pool.submit(self._start_moto, regions)
            pack: Future[packs.Pack] = pool.submit(packs.build, self.root / "pack")
            if pack_ready is not None:
                pack.add_done_callback(lambda built: _hand_over(built, pack_ready))
            mariadb = pool.submit(self._start_mariadb)
            postgres = pool.submit(self._start_postgres)
            self.moto, self.pack = moto.result(), pack.result()
            self.mariadb, self.postgres = mariadb.result(), postgres.result()
        wait_for(self.aws_master_socket.exists, "the AWS CLI master server", process=self.aws_master,
                 log=self.root / "aws-cli-master.log")

    def _start_moto(self, regions: tuple[str, ...]) -> subprocess.Popen[bytes]:
        process = start_moto(self.services, self.root, self.link[1])
        for region in regions:
            self.client("ec2", region).describe_vpcs()
        return process

    def _start_mariadb(self) -> MariaDB:
        tls = self.ca.issue("mariadb", self._database_hosts)
        return MariaDB(self.services, self.root / "mariadb", tls, self.ca.bundle)

    def _start_postgres(self) -> PostgreSQL:
        tls = self.ca.issue("postgres", self._database_hosts)
        return PostgreSQL(self.services, self.root / "postgres", tls, self.ca.bundle)

    def client(self, service: str, region: str) -> Any:
        with self._lock:
            key = (service, region)
            if key not in self._clients:
                self._clients[key] = boto3.client(
                    service, region_name=region, endpoint_url=self.moto_endpoint,
                    aws_access_key_id="testing", aws_secret_access_key="testing")
            return self._clients[key]

    def deploy(self, stack: NodeStack, config: Any, base: LabBase | None = None) -> LabEnvironment:
        """`base`: the branch base the environment stands on (deployed with deploy_base), if any."""
        engine = config.database.engine
        database = self.mariadb if engine == "mysql" else self.postgres if engine == "postgres" else None
        if database is None:
            raise LabGap(f"{stack.environment}: database engine {engine} has no server in the rehearsal")
        with self._lock:
            environment = LabEnvironment(self, stack, config, database, index=self._slot(stack.environment),
                                         base=base)
            self.environments[stack.environment] = environment
        environment.deploy()
        return environment

    def deploy_base(self, name: str, path: Path) -> LabBase:
        """A branch base stack (`kind: branch-base`): what its branches read and the function they invoke."""
        with self._lock:
            base = LabBase(self, name, path, json.loads(path.read_text(encoding="utf-8")), index=self._slot(name))
            self.bases[name] = base
        base.deploy()
        return base

    def _slot(self, name: str) -> int:
        """The next environment's or base's place in the lab's 10.40.0.0/16 (its own /20)."""
        taken = len(self.environments) + len(self.bases)
        if name in self.environments or name in self.bases or taken >= 14:
            raise LabGap(f"{name}: deployed already, or no address range left")
        return taken

    def hold(self, holder: Holder) -> Holder:
        """Registers a node's namespace holder; a closed lab ends it at once (a background boot after close)."""
        with self._lock:
            if not self.closed:
                self._holders.append(holder)
                return holder
        holder.close()
        raise RuntimeError("the rehearsal lab is closed")

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
        for holder in self._holders:
            holder.close()
        master = getattr(self, "aws_master", None)
        if master is not None:  # in the machine's namespaces: ended by its pid
            master.kill()
            master.wait(timeout=10)
        # Everything else (moto, databases, bindfs, the veths) lives in the services namespaces.
        self.services.close()
        kill_namespace(self.services.mnt, self.services.net)
        shutil.rmtree(self.root, ignore_errors=True)


def _hand_over(built: Future[packs.Pack], target: Future[packs.Pack]) -> None:
    error = built.exception()
    with contextlib.suppress(InvalidStateError):  # the session closed first
        if error is not None:
            target.set_exception(error)
        else:
            target.set_result(built.result())


def database_host(stack: NodeStack) -> str:
    """The RDS endpoint address the lab gives an environment's database (what `aws_db_instance.address` reads)."""
    return f"{stack.database['identifier']}.c0rehearsal.{stack.region}.rds.amazonaws.com"


def _placeholder_jar() -> bytes:
    """A JDBC driver stand-in: an empty but valid jar (zip) the boot path copies into components/lib."""
    import io
    import zipfile
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    return buffer.getvalue()


# The machine's keytool (the JDK the dnf double "installs"), started from the class-data archive the
# pack build recorded (pack.KEYTOOL_ARCHIVE) and, except for key generation, with the client compiler
# only: a start costs ~0.1 s of CPU instead of ~0.2 s, and the boot path runs keytool a dozen times.
KEYTOOL = f"""#!/bin/sh
archive=/run/obiam-lab/conf/{packs.KEYTOOL_ARCHIVE}
[ -r "$archive" ] || exec /usr/bin/keytool "$@"
case " $* " in
  *" -genkeypair "*|*" -genkey "*) exec /usr/bin/keytool -J-XX:SharedArchiveFile="$archive" -J-Xlog:disable \
    -J-Xlog:all=off "$@" ;;
esac
exec /usr/bin/keytool -J-XX:SharedArchiveFile="$archive" -J-Xlog:disable -J-Xlog:all=off -J-XX:TieredStopAtLevel=1 "$@"
"""


def aws_client() -> str:
    """/usr/local/bin/aws for a node: doubles/aws_client.py, pointed at the node's server and the venv's CLI."""
    source = (DOUBLES / "aws_client.py").read_text(encoding="utf-8")
    source = re.sub(r"^SOCKET = .*$", f"SOCKET = {AWS_SOCKET!r}", source, count=1, flags=re.M)
    source = re.sub(r"^AWS_CLI = .*$", f"AWS_CLI = {[str(VENV_BIN / 'python'), '-m', 'awscli']!r}", source,
                    count=1, flags=re.M)
    # -I -S: no site-packages or environment to read, so the client starts in ~10 ms.
    return "#!/usr/bin/python3 -IS\n" + source


def make_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="obiam-rehearsal-"))


def wait_all(futures: list[Future[Any]]) -> list[Any]:
    return [f.result() for f in futures]


__all__ = ["FAILED_MARKER", "BootResult", "Lab", "LabEnvironment", "LabGap", "Node", "make_root", "run", "wait_for"]


def _keep_checkout_visible(node_dir: Path) -> list[str]:
    """Mount commands that keep the repository reachable when it lives under /tmp."""
    root = Path(__file__).resolve().parents[2]
    try:
        inside = root.relative_to("/tmp")
    except ValueError:
        return []
    return [f"mkdir -p {node_dir}/fs/tmp/{inside}", f"mount --bind {root} {node_dir}/fs/tmp/{inside}"]
