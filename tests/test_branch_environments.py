"""Per-branch environments side by side (#18): each has its own name, URL, VPC range and databases,
and nothing identifies one by a name another shares. Config-level tests and one moto test
(preflight), plus checks on the session's synthesized branch stack: about 1 s."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

import pytest
from configs import with_values

from conftest import ROOT, Synth
from obiam import branch_scope, ephemeral, wso2
from obiam.environments import ConfigError, load_environment, parse_environment
from obiam.naming import Names

CREATED = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def template() -> Any:
    return load_environment(ROOT / "environments" / "ephemeral.yaml", ROOT)


def standalone_template() -> Any:
    """The template without a branch base: every branch brings its own VPC, database server and directory."""
    loaded = template()
    assert loaded.base is not None
    data = loaded.config.model_dump(exclude_none=True)
    data["ephemeral"].pop("base")
    data["ephemeral"]["vpc_cidr_pool"] = "10.128.0.0/12"
    return parse_environment("ephemeral", data, "environments/ephemeral.yaml (without a base)")


def test_two_branches_on_one_base_never_share_a_name_url_database_user_or_directory_account() -> None:
    """On the shared server and directory every name is the branch's own: databases and user
    eph_<stack name>_*, accounts ob-<hash>-bind/-admin, all within MySQL's 64/32 and AD's 20
    character limits (MySQL 8.0 reference manual, "Identifier Length Limits"; sAMAccountName)."""
    loaded = template()
    first, second = (ephemeral.from_template(loaded, branch, CREATED) for branch in ("feature/login", "feature/logout"))
    settings = loaded.config.ephemeral
    assert settings is not None and settings.domain and loaded.base is not None
    assert first.name != second.name and first.base == second.base == loaded.base
    owned = []
    for environment in (first, second):
        assert environment.config.load_balancer.hostname == f"{environment.name}.{settings.domain}"
        names = branch_scope.on_branch_base(environment.name)
        databases = {names.database(d.name) for d in wso2.PRODUCTS["3.0.0"].databases}
        assert all(d.startswith(branch_scope.BRANCH_DATABASE_PREFIX) and len(d) <= branch_scope.MAX_DATABASE_NAME
                   for d in databases)
        assert names.database_user.startswith(branch_scope.BRANCH_DATABASE_PREFIX)
        assert len(names.database_user) <= branch_scope.MAX_DATABASE_USER
        assert max(len(names.bind_account), len(names.super_admin_account)) <= branch_scope.MAX_ACCOUNT_NAME
        owned.append({*databases, names.database_user, names.bind_account, names.super_admin_account,
                      environment.config.load_balancer.hostname})
    assert not owned[0] & owned[1]
    # Stable: every push of a branch lands on the same names and URL.
    again = ephemeral.from_template(loaded, "feature/login", datetime(2026, 12, 1, tzinfo=UTC))
    assert branch_scope.on_branch_base(again.name) == branch_scope.on_branch_base(first.name)


def test_two_branches_with_their_own_network_never_share_a_vpc_range() -> None:
    loaded = standalone_template()
    first, second = (ephemeral.from_template(loaded, branch, CREATED) for branch in ("feature/login", "feature/logout"))
    settings = loaded.config.ephemeral
    assert settings is not None and settings.vpc_cidr_pool and first.base is None
    for environment in (first, second):
        network = ipaddress.IPv4Network(environment.config.network.cidr)
        assert network.prefixlen == 20 and network.subnet_of(ipaddress.IPv4Network(settings.vpc_cidr_pool))
    assert first.config.network.cidr != second.config.network.cidr
    assert Names(first.name).db_instance != Names(second.name).db_instance
    again = ephemeral.from_template(loaded, "feature/login", datetime(2026, 12, 1, tzinfo=UTC))
    assert again.config.network.cidr == first.config.network.cidr


@pytest.mark.synth
def test_a_branch_environment_owns_the_alias_record_of_its_own_url(synth: Synth) -> None:
    """Route 53 alias records to an ALB (Route 53 Developer Guide, "Routing traffic to an ELB load
    balancer"): type A, the ALB's DNS name and zone; destroyed with the branch's stack."""
    stack = synth.stack(synth.ephemeral_name)
    config = synth.environments[synth.ephemeral_name].config
    (record,) = stack["resource"]["aws_route53_record"].values()
    assert (record["name"], record["type"], record["zone_id"]) == (
        config.load_balancer.hostname, "A", config.load_balancer.hosted_zone_id)
    (alias,) = record["alias"] if isinstance(record["alias"], list) else [record["alias"]]
    assert alias["name"].startswith("${aws_lb.") and alias["zone_id"].startswith("${aws_lb.")
    assert "aws_route53_record" not in synth.stack("prod")["resource"]


@pytest.mark.parametrize(("ephemeral_section", "load_balancer", "expected"), [
    ({"domain": "eph.dev.bank.example.com"}, {},
     "load_balancer.hosted_zone_id: required with ephemeral.domain"),
    ({"vpc_cidr_pool": "10.128.0.0/18"}, {"hosted_zone_id": "Z04517273VCLIGBLZXMPE"},
     "ephemeral.vpc_cidr_pool = '10.128.0.0/18': allowed: a private range from /8 to /16"),
], ids=["url-without-zone", "pool-too-small"])
def test_branch_settings_that_cannot_work_are_refused(ephemeral_section: dict[str, Any],
                                                      load_balancer: dict[str, Any], expected: str) -> None:
    data = with_values(tier="ephemeral", ephemeral=ephemeral_section, load_balancer=load_balancer,
                       data_protection={"deletion_protection": False, "prevent_destroy": False,
                                        "final_snapshot": False},
                       backup={"enabled": False, "rpo_hours": 24})
    with pytest.raises(ConfigError) as caught:
        parse_environment("eph-x-000000", data, "environments/ephemeral.yaml")
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_pushes_keep_a_branch_environment_alive_but_never_past_its_maximum_lifetime() -> None:
    base = template()
    settings = base.config.ephemeral
    assert settings is not None
    opened = datetime(2026, 11, 1, tzinfo=UTC)
    early = ephemeral.from_template(base, "pr-7", datetime(2026, 11, 2, tzinfo=UTC), opened)
    assert early.expires_at == "2026-11-05T00:00:00Z"  # the push + ttl_hours (72)
    late = ephemeral.from_template(base, "pr-7", datetime(2026, 11, 14, tzinfo=UTC), opened)
    assert late.expires_at == "2026-11-15T00:00:00Z"  # opened + max_lifetime_hours (336), not the push + 72
    assert settings.max_lifetime_hours == 336


def test_an_unreadable_opening_time_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        ephemeral.opened_at({ephemeral.OPENED_AT_VARIABLE: "last tuesday"})
    assert caught.value.problems[0].startswith("OBIAM_EPHEMERAL_OPENED_AT = 'last tuesday': allowed: an ISO 8601")
    assert ephemeral.opened_at({ephemeral.OPENED_AT_VARIABLE: ""}) is None
