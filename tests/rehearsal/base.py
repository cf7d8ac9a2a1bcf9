"""A branch base deployed into the rehearsal lab: what a branch environment's stack finds in the account.

`cdktf deploy ephemeral-base` leaves, for the branches: an SSM parameter with the base's ids and
addresses (stacks/branch_base_stack.py, BASE_OUTPUTS), the shared database server with its
RDS-managed master user and secret, and the branch-databases Lambda function. Here, from the
synthesized base stack's JSON:
- the published parameter has the shape the base stack writes (its `aws_ssm_parameter` jsonencode
  object, key for key), with the lab's values: a VPC and subnets in moto (the subnets inside the
  base's own slot of the lab's 10.40.0.0/16, so its branches' nodes get addresses no other
  environment's nodes have), the lab's MariaDB under the base's RDS endpoint name, security groups;
- the master user is created on the lab's MariaDB as RDS creates one (MariaDB.create_master), under
  the base stack's `username`, and its secret is in moto as RDS's managed secret;
- the function is the base's synthesized package (its asset zip) run as Lambda runs it:
  `index.handler` in a fresh interpreter, with the function's environment variables from the stack,
  inside the lab's VPC (the services network namespace: moto and the database server are there),
  where the RDS endpoint name resolves to the database host as Route 53 would resolve it. Doubles:
  the Lambda service itself (a subprocess per invocation; the venv's boto3 stands in for the Python
  runtime's) and CA_BUNDLE_URL, which names the lab's test CA (file://) instead of the RDS trust
  store, which the lab's server certificate does not chain to.
The directory is not emulated (as for the lab's own environments): its id and domain controllers
are placeholders, and the product double skips LDAP.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.rehearsal.services import DATABASE_IP, ENDPOINTS_IP, MOTO_PORT, VENV_BIN, MariaDB
from tests.rehearsal.stack import LabGap, _reference, json_parameter

if TYPE_CHECKING:
    from tests.rehearsal.lab import Lab

# The directory as the lab hands it out (no directory is emulated).
DIRECTORY_ID = "d-0123456789"
DIRECTORY_DNS_IPS = ["10.40.0.4", "10.40.0.5"]
# One /23 per subnet the base publishes, inside the base's /20 of the lab.
SUBNET_BLOCKS = 8
INVOKE = ("import json, sys; sys.path.insert(0, sys.argv[1]); import index; "
          "print(json.dumps(index.handler(json.load(sys.stdin), None)))")


class FunctionError(RuntimeError):
    """The function raised: Lambda's FunctionError, which fails the `terraform apply` or `destroy`."""


@dataclass
class LabBase:
    """One branch base stack deployed into the lab (its published parameter, master user and function)."""

    lab: Lab
    name: str
    path: Path  # the base stack's cdk.tf.json (its assets sit next to it)
    data: dict[str, Any]
    index: int  # the base's slot of the lab's 10.40.0.0/16: its subnets are inside 10.40.(16 * (1 + index)).0/20
    master_username: str = ""
    master_secret_arn: str = ""
    db_host: str = ""
    published: dict[str, Any] = field(default_factory=dict)
    invocations: int = 0
    _ids: dict[str, Any] = field(default_factory=dict)  # "kind.name" -> the id the lab gave it
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.data.get("resource", {}))

    @property
    def region(self) -> str:
        providers = self.data["provider"]["aws"]
        return str(providers[0]["region"] if isinstance(providers, list) else providers["region"])

    def client(self, service: str) -> Any:
        return self.lab.client(service, self.region)

    @property
    def database(self) -> MariaDB:
        """The lab's server for the base's engine (RDS MySQL: MariaDB, as for every MySQL environment)."""
        _, instance = self._one("aws_db_instance")
        if instance.get("engine") != "mysql" or self.lab.mariadb is None:
            raise LabGap(f"{self.name}: database engine {instance.get('engine')} has no server in the rehearsal")
        return self.lab.mariadb

    def _one(self, kind: str) -> tuple[str, dict[str, Any]]:
        found = list(self.resources.get(kind, {}).items())
        if len(found) != 1:
            raise LabGap(f"{self.path}: expected one {kind}, found {len(found)}")
        return found[0]

    # -- what `cdktf deploy <base>` leaves ---------------------------------------------------------------
    def deploy(self) -> None:
        from tests.rehearsal.lab import password

        ec2 = self.client("ec2")
        self._ids["vpc"] = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
        _, instance = self._one("aws_db_instance")
        self.db_host = f"{instance['identifier']}.c0rehearsal.{self.region}.rds.amazonaws.com"
        # RDS creates the master user from the instance's `username`, its password in a managed secret.
        self.master_username = str(instance["username"])
        master_password = password()
        self.database.create_master(self.master_username, master_password)
        self.master_secret_arn = self.client("secretsmanager").create_secret(
            Name=f"rds!db-{secrets.token_hex(8)}",
            SecretString=json.dumps({"username": self.master_username, "password": master_password}))["ARN"]
        name, shape = json_parameter(self.resources, self.path, "the outputs the base publishes")
        self.published = {key: self._resolve(key, expression) for key, expression in shape.items()}
        self.client("ssm").put_parameter(Name=name, Value=json.dumps(self.published), Type="String")

    def _resolve(self, key: str, expression: str) -> Any:  # noqa: PLR0911 - one return per reference kind
        text = _reference(str(expression)).strip()
        if text.startswith("[") and text.endswith("]"):
            return [self._resolve(key, part) for part in text[1:-1].split(",") if part.strip()]
        if text.startswith('"') and text.endswith('"'):
            return text[1:-1]
        match = re.fullmatch(r"(?:tolist\()*([a-z0-9_]+)\.([A-Za-z0-9_-]+)\.([a-z_]+)\)*", text)
        if match is None:
            raise LabGap(f"published key {key!r} = {expression!r}: the rehearsal cannot read it")
        kind, name, attribute = match.groups()
        if kind == "aws_vpc" and attribute == "id":
            return self._ids["vpc"]
        if kind == "aws_subnet" and attribute == "id":
            return self._subnet(name)
        if kind == "aws_db_instance" and attribute in ("address", "port"):
            return self.db_host if attribute == "address" else self.database.port
        if kind == "aws_security_group" and attribute == "id":
            return self._security_group(name)
        if kind == "aws_directory_service_directory" and attribute == "id":
            return DIRECTORY_ID
        if kind == "aws_directory_service_directory" and attribute == "dns_ip_addresses":
            return DIRECTORY_DNS_IPS
        if kind == "aws_directory_service_directory" and attribute == "security_group_id":
            return self._security_group(f"{name}-controllers")  # the group AWS makes for the directory
        if kind == "aws_secretsmanager_secret" and attribute == "arn":
            secret = self.resources[kind][name]
            return self.client("secretsmanager").create_secret(
                Name=str(secret["name"]), SecretString=json.dumps({"password": secrets.token_hex(12)}))["ARN"]
        return self._gap(key, expression)

    def _gap(self, key: str, expression: str) -> Any:
        raise LabGap(f"published key {key!r} = {expression!r}: the rehearsal does not emulate it yet")

    def _subnet(self, name: str) -> str:
        key = f"aws_subnet.{name}"
        if key not in self._ids:
            block = sum(1 for k in self._ids if k.startswith("aws_subnet."))
            if block >= SUBNET_BLOCKS:
                raise LabGap(f"{self.name}: more than {SUBNET_BLOCKS} subnets published")
            third = 16 * (1 + self.index) + 2 * block
            self._ids[key] = self.client("ec2").create_subnet(
                VpcId=self._ids["vpc"], CidrBlock=f"10.40.{third}.0/23",
                AvailabilityZone=f"{self.region}a")["Subnet"]["SubnetId"]
        return str(self._ids[key])

    def _security_group(self, name: str) -> str:
        key = f"aws_security_group.{name}"
        if key not in self._ids:
            group_name = str(self.resources.get("aws_security_group", {}).get(name, {}).get("name", name))
            self._ids[key] = self.client("ec2").create_security_group(
                GroupName=group_name, VpcId=self._ids["vpc"], Description=group_name)["GroupId"]
        return str(self._ids[key])

    # -- the branch-databases function -------------------------------------------------------------------
    def function(self, function_name: str) -> dict[str, Any]:
        for spec in self.resources.get("aws_lambda_function", {}).values():
            if spec.get("function_name") == function_name:
                return spec
        raise LabGap(f"{self.path}: no aws_lambda_function named {function_name!r}")

    def function_environment(self, function_name: str) -> dict[str, str]:
        """The function's environment variables as Lambda sets them once the base is applied."""
        variables = self.function(function_name).get("environment", {}).get("variables", {})
        resolved = {}
        for key, value in variables.items():
            text = _reference(str(value))
            if text == str(value):
                resolved[key] = text
            elif re.fullmatch(r"aws_db_instance\.[\w-]+\.master_user_secret\[0\]\.secret_arn", text):
                resolved[key] = self.master_secret_arn
            elif re.fullmatch(r"aws_db_instance\.[\w-]+\.(address|port)", text):
                resolved[key] = str(self._resolve(key, text))
            else:
                self._gap(key, value)
        if "CA_BUNDLE_URL" in resolved:  # the lab's test CA signs the server certificate, not RDS's
            resolved["CA_BUNDLE_URL"] = self.lab.ca.bundle.as_uri()
        return resolved

    def invoke(self, function_name: str, event: dict[str, Any]) -> dict[str, Any]:
        """One invocation as Lambda runs it, inside the lab's VPC; raises FunctionError if the handler raised."""
        spec = self.function(function_name)
        if spec.get("handler") != "index.handler":
            raise LabGap(f"{function_name}: handler {spec.get('handler')!r}, the lab runs index.handler")
        code = self.lab.root / "lambda" / function_name
        with self._lock:  # one extraction of the package and one hosts file for all invocations
            if not code.exists():
                with zipfile.ZipFile(self.path.parent / str(spec["filename"])) as package:
                    package.extractall(code)
            hosts = self.lab.root / "lambda" / "hosts"
            # The VPC's resolver: the RDS endpoint is the lab's database host.
            hosts.write_text(f"127.0.0.1 localhost\n{DATABASE_IP} {self.db_host}\n")
            environment = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "AWS_REGION": self.region,
                           "AWS_DEFAULT_REGION": self.region, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": f"http://{ENDPOINTS_IP}:{MOTO_PORT}",
                           "LAMBDA_TASK_ROOT": str(code), **self.function_environment(function_name)}
            # The lab's VPC (the services network namespace), in a mount namespace of its own for /etc/hosts.
            command = self.lab.services.command(
                "unshare", "--mount", "--propagation=private", "--", "sh", "-c",
                'mount --bind "$0" /etc/hosts && exec env -i "$@"', str(hosts),
                *(f"{k}={v}" for k, v in environment.items()),
                str(VENV_BIN / "python"), "-I", "-c", INVOKE, str(code), mount=False)
            result = subprocess.run(command, input=json.dumps(event), capture_output=True, text=True, timeout=120,
                                    check=False)
            self.invocations += 1
        if result.returncode != 0:
            raise FunctionError(f"{function_name} failed ({event.get('tf', {}).get('action')}):\n"
                                f"{result.stderr.strip()[-3000:]}")
        return dict(json.loads(result.stdout.strip().splitlines()[-1]))
