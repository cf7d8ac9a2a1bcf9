"""What the rehearsal reads from a synthesized stack: the node's user data and the AWS state it expects.

Everything the lab seeds (the runtime parameter's keys, secret names, tags, security
group, access points) is derived from the stack's own JSON, so a key the stack adds to
the runtime parameter is either emulated or named in a clear error, never silently left out.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GZIP_MAGIC = b"\x1f\x8b"


class LabGap(Exception):
    """The stack asks for something the rehearsal does not emulate yet."""


def decode_user_data(encoded: str) -> bytes:
    """The script cloud-init runs: base64, gunzipped when it starts with the gzip magic (cloud-init does the same)."""
    raw = base64.b64decode(encoded)
    return gzip.decompress(raw) if raw[:2] == GZIP_MAGIC else raw


def _reference(expression: str) -> str:
    """`${aws_x.name.attr}` -> `aws_x.name.attr`."""
    match = re.fullmatch(r"\$\{(.+)\}", expression.strip())
    return match.group(1) if match else expression


def parse_object(text: str) -> dict[str, Any]:
    """Parses the HCL object literal inside `${jsonencode({...})}`: keys map to nested objects or expression text."""
    position = 0

    def skip() -> None:
        nonlocal position
        while position < len(text) and text[position] in " \n\t,":
            position += 1

    def value() -> Any:
        nonlocal position
        skip()
        if text[position] == "{":
            return obj()
        depth, start = 0, position
        while position < len(text):
            char = text[position]
            if char in "([":
                depth += 1
            elif char in ")]":
                depth -= 1
            elif depth == 0 and char in ",}":
                break
            position += 1
        return text[start:position].strip()

    def obj() -> dict[str, Any]:
        nonlocal position
        assert text[position] == "{"
        position += 1
        result: dict[str, Any] = {}
        while True:
            skip()
            if text[position] == "}":
                position += 1
                return result
            match = re.compile(r'"([^"]+)"\s*=\s*').match(text, position)
            if match is None:
                raise LabGap(f"cannot read the runtime parameter value near {text[position:position + 40]!r}")
            position = match.end()
            result[match.group(1)] = value()

    start = text.index("{")
    position = start
    return obj()


def json_parameter(resources: dict[str, dict[str, Any]], path: Path, what: str) -> tuple[str, dict[str, Any]]:
    """(name, key -> expression) of a stack's one aws_ssm_parameter whose value is `${jsonencode({...})}`."""
    for parameter in resources.get("aws_ssm_parameter", {}).values():
        value = str(parameter.get("value", ""))
        if value.startswith("${jsonencode("):
            return str(parameter["name"]), parse_object(value[len("${jsonencode("):])
    raise LabGap(f"{path}: no aws_ssm_parameter with a jsonencode value ({what})")


@dataclass
class NodeStack:
    """One environment's synthesized stack, seen from a node."""

    environment: str
    path: Path
    data: dict[str, Any]
    user_data: bytes = b""
    user_data_gzipped: bool = False
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, environment: str, path: Path) -> NodeStack:
        return cls.from_json(environment, json.loads(path.read_text(encoding="utf-8")), path)

    @classmethod
    def from_json(cls, environment: str, data: dict[str, Any], path: Path) -> NodeStack:
        """`path`: where the stack's cdk.tf.json is (or was), for messages and `source` files next to it."""
        stack = cls(environment, path, data, resources=data.get("resource", {}))
        templates = list(stack.resources.get("aws_launch_template", {}).values())
        if len(templates) != 1:
            raise LabGap(f"{path}: expected one aws_launch_template, found {len(templates)}")
        encoded = templates[0]["user_data"]
        stack.user_data = decode_user_data(encoded)
        stack.user_data_gzipped = base64.b64decode(encoded)[:2] == GZIP_MAGIC
        return stack

    def resource(self, address: str) -> dict[str, Any]:
        kind, name = address.split(".")[:2]
        try:
            return self.resources[kind][name]
        except KeyError as error:
            raise LabGap(f"{self.path}: {address} is referenced but not defined") from error

    @property
    def launch_template(self) -> dict[str, Any]:
        return next(iter(self.resources["aws_launch_template"].values()))

    @property
    def region(self) -> str:
        providers = self.data["provider"]["aws"]
        return str(providers[0]["region"] if isinstance(providers, list) else providers["region"])

    @property
    def runtime_parameter(self) -> tuple[str, dict[str, Any]]:
        """(name, shape) of the SSM parameter whose JSON value the nodes read at boot."""
        return json_parameter(self.resources, self.path, "the node runtime parameter")

    @property
    def instance_tags(self) -> dict[str, str]:
        for spec in self.launch_template.get("tag_specifications", []):
            if spec["resource_type"] == "instance":
                # Interpolations (the runtime parameter's version) become the first version, as after one apply.
                return {k: ("1" if "${" in str(v) else str(v)) for k, v in spec["tags"].items()}
        return {}

    @property
    def node_security_group(self) -> str:
        reference = _reference(self.launch_template["network_interfaces"][0]["security_groups"][0])
        return str(self.resource(reference)["name"])

    @property
    def node_role(self) -> str:
        profile = self.resource(_reference(self.launch_template["iam_instance_profile"]["arn"]))
        return str(self.resource(_reference(profile["role"]))["name"])

    @property
    def instance_type(self) -> str:
        return str(self.launch_template["instance_type"])

    @property
    def database(self) -> dict[str, Any]:
        instances = list(self.resources.get("aws_db_instance", {}).values())
        if len(instances) != 1:
            raise LabGap(f"{self.path}: expected one aws_db_instance, found {len(instances)}")
        return instances[0]

    @property
    def access_points(self) -> dict[str, str]:
        """aws_efs_access_point resource name -> the directory it roots (its path's last part)."""
        return {name: str(ap["root_directory"]["path"]).rstrip("/").rsplit("/", 1)[-1]
                for name, ap in self.resources.get("aws_efs_access_point", {}).items()}

    @property
    def log_groups(self) -> list[str]:
        return [str(g["name"]) for g in self.resources.get("aws_cloudwatch_log_group", {}).values() if "name" in g]

    def s3_objects(self) -> list[tuple[str, str, bytes]]:
        """(bucket, key, body) for aws_s3_object resources the nodes may load (a boot bundle)."""
        objects = []
        for obj in self.resources.get("aws_s3_object", {}).values():
            bucket = str(obj["bucket"])
            if "${" in bucket:
                target = self.resource(_reference(bucket))
                bucket = str(target.get("bucket") or target.get("bucket_prefix", "") + "rehearsal")
            if "content" in obj:
                body = str(obj["content"]).encode()
            elif "content_base64" in obj:
                body = base64.b64decode(obj["content_base64"])
            elif "source" in obj:
                body = (self.path.parent / str(obj["source"])).read_bytes()
            else:
                raise LabGap(f"aws_s3_object {obj.get('key')}: no content, content_base64 or source")
            objects.append((bucket, str(obj["key"]), body))
        return objects
