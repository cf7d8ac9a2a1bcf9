"""Reading synthesized Terraform JSON in tests."""

from __future__ import annotations

from typing import Any


def resources(stack: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """Every resource of a type, by its Terraform name."""
    return dict(stack.get("resource", {}).get(resource_type, {}))


def only(stack: dict[str, Any], resource_type: str) -> dict[str, Any]:
    """The one resource of a type; fails when there are none or several."""
    found = resources(stack, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.values()))


def data_sources(stack: dict[str, Any], data_type: str) -> dict[str, dict[str, Any]]:
    return dict(stack.get("data", {}).get(data_type, {}))


def ref(resource_type: str, name: str, attribute: str) -> str:
    """The interpolation Terraform JSON uses for a resource attribute."""
    return f"${{{resource_type}.{name}.{attribute}}}"


def name_of(stack: dict[str, Any], resource_type: str, predicate: Any = None) -> str:
    """The Terraform name of the one resource of a type (matching `predicate`, if given)."""
    names = [n for n, r in resources(stack, resource_type).items() if predicate is None or predicate(r)]
    assert len(names) == 1, f"expected one matching {resource_type}, found {names}"
    return names[0]


def user_data(stack: dict[str, Any]) -> str:
    """The node boot script, decoded from the one launch template and gunzipped as cloud-init does."""
    import base64
    import gzip

    return gzip.decompress(base64.b64decode(only(stack, "aws_launch_template")["user_data"])).decode("utf-8")


def embedded_files(script: str) -> dict[str, str]:
    """Files the boot script writes with quoted heredocs (`cat > PATH <<'OBIAM_X'`), by path."""
    import re

    pattern = re.compile(r"^cat > (?P<path>\S+) <<'(?P<tag>OBIAM_[A-Z_]+)'\n(?P<body>.*?)^(?P=tag)$",
                         re.MULTILINE | re.DOTALL)
    return {m["path"].strip('"'): m["body"] for m in pattern.finditer(script)}


def deployment_overlay(stack: dict[str, Any]) -> dict[str, Any]:
    """This deployment's settings the node lays over the OB accelerator's deployment.toml."""
    import tomllib

    return tomllib.loads(embedded_files(user_data(stack))["/etc/obiam/deployment.overlay.toml"])


def policy_statements(stack: dict[str, Any], resource_type: str, attribute: str = "policy") -> list[dict[str, Any]]:
    """Every statement of every policy document of a resource type (policies are JSON strings)."""
    import json

    statements: list[dict[str, Any]] = []
    for resource in resources(stack, resource_type).values():
        document = json.loads(resource[attribute])
        found = document["Statement"]
        statements.extend(found if isinstance(found, list) else [found])
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
