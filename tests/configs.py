"""A minimal valid environment config, and a way to vary it, for config-level tests."""

from __future__ import annotations

import copy
from typing import Any

MINIMAL: dict[str, Any] = {
    "account": {"id": "111111111111"},
    "nodes": {"ami": {"id": "ami-0e5df6fd7455a69b3"}},
    "product": {"pack_s3_uri": "s3://example-bank-wso2/wso2-obiam-3.0.0.zip",
                "pack_sha256": "16d67b308763cb50b7fad336e8507680377c6ff6e36462ed9d82f60e97a8f509",
                "api_manager": {"hostname": "apim.bank.example.com"}},
    "database": {"jdbc_driver_s3_uri": "s3://example-bank-wso2/mysql-connector-j-8.4.0.jar",
                 "engine_lifecycle_support": "open-source-rds-extended-support"},
    "load_balancer": {
        "hostname": "iam.bank.example.com",
        "certificate_arn": "arn:aws:acm:eu-west-2:111111111111:certificate/0b7c2d6e-4a1f-4c3e-9d2b-5e6f7a8b9c0d",
    },
    "tags": {"owner": "identity-platform", "cost_center": "CC-1"},
    "state": {"bucket": "example-bank-tfstate"},
    # Production copies its backups to a second region, which is never guessed (data residency).
    "backup": {"copy_region": "eu-west-1"},
}


def with_values(changes: dict[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    """MINIMAL with sections replaced, or merged one level deep when both sides are mappings."""
    data = copy.deepcopy(MINIMAL)
    for key, value in {**(changes or {}), **sections}.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data
