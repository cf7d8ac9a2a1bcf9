"""What each tier demands of an environment, as data: the rules production adds to every field's own.

A lower tier may switch a protection off to save money or to trial something; production may not.
One row per rule: the field, what production allows, and the reason the error gives. Rules that weigh
several fields against each other (the directory type, the WAF's mode, the engine's major and its
support lifecycle, the backup copies) stay beside the schema in obiam/config.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TIERS = ("production", "staging", "development", "ephemeral")
# data_protection's switches, in the order the schema declares them.
DATA_PROTECTION = ("deletion_protection", "prevent_destroy", "final_snapshot")
KEPT_ON = "must stay true in production"


@dataclass(frozen=True)
class Requirement:
    path: tuple[str, ...]
    allowed: Callable[[Any], bool]
    reason: str


def _on(value: Any) -> bool:
    return value is True


PRODUCTION: tuple[Requirement, ...] = (
    Requirement(("nodes", "min_size"), lambda n: n >= 2,
                "production needs at least 2 nodes (WSO2's HA pattern scales from 2 to N)"),
    *(Requirement(("data_protection", switch), _on, KEPT_ON) for switch in DATA_PROTECTION),
    # What lower tiers may switch off to save money, production keeps (and checkov checks).
    Requirement(("load_balancer", "waf"), _on, KEPT_ON),
    Requirement(("load_balancer", "access_logs"), _on, KEPT_ON),
    Requirement(("network", "flow_logs"), _on, KEPT_ON),
    Requirement(("database", "performance_insights"), _on, KEPT_ON),
    Requirement(("database", "monitoring_interval"), lambda seconds: seconds != 0,
                "production keeps RDS enhanced monitoring on (1-60 seconds)"),
    Requirement(("observability", "log_retention_days"), lambda days: days >= 365,
                "production keeps logs for at least a year (365 or more)"),
    Requirement(("nodes", "metadata_http_tokens"), lambda tokens: tokens == "required",
                "production nodes require IMDSv2 (SSRF protection for the instance role)"),
    Requirement(("database", "backup_retention_period"), lambda days: days >= 7,
                "production keeps at least 7 days of backups"),
)
