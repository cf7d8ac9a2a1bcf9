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
