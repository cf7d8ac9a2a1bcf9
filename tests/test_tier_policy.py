"""Production's rules are one table (obiam/tier_policy.py) over fields the schema has.

Cost: validates a handful of configurations; no synthesis, ~0.2 s.
"""

from __future__ import annotations

from typing import Any

import pytest

from conftest import load_repo_environments, with_changes
from obiam.config import DataProtectionConfig, EnvironmentConfig
from obiam.environments import ConfigError
from obiam.tier_policy import DATA_PROTECTION, PRODUCTION, Requirement


def test_every_data_protection_switch_is_kept_on_in_production() -> None:
    # A switch added to the schema and not to the table would be one production could turn off.
    assert tuple(DataProtectionConfig.model_fields) == DATA_PROTECTION


def test_every_rule_names_a_field_of_the_schema() -> None:
    for requirement in PRODUCTION:
        model: Any = EnvironmentConfig
        for part in requirement.path:
            assert part in model.model_fields, requirement.path
            model = model.model_fields[part].annotation
            model = getattr(model, "__origin__", model)


def _breaking(requirement: Requirement, value: Any) -> dict[str, Any]:
    section, field = requirement.path
    return {section: {field: value}}


# A value production refuses and a lower tier accepts, per rule.
REFUSED: dict[tuple[str, ...], Any] = {
    ("nodes", "min_size"): 1, ("load_balancer", "waf"): False, ("load_balancer", "access_logs"): False,
    ("network", "flow_logs"): False, ("database", "performance_insights"): False,
    ("database", "monitoring_interval"): 0, ("observability", "log_retention_days"): 90,
    ("nodes", "metadata_http_tokens"): "optional", ("database", "backup_retention_period"): 3,
    **{("data_protection", switch): False for switch in DATA_PROTECTION},
}


@pytest.mark.parametrize("requirement", PRODUCTION, ids=lambda r: ".".join(r.path))
def test_production_refuses_what_the_table_forbids_and_staging_accepts_it(requirement: Requirement) -> None:
    environments = load_repo_environments()
    value = REFUSED[requirement.path]
    assert not requirement.allowed(value)
    with pytest.raises(ConfigError, match=".".join(requirement.path)):
        with_changes(environments["prod"], **_breaking(requirement, value))
    changes = _breaking(requirement, value)
    if requirement.path == ("nodes", "min_size"):
        changes["nodes"] = {"min_size": 1, "desired_capacity": 1}
    assert with_changes(environments["staging"], **changes).config.tier == "staging"
