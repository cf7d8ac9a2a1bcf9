"""Backups and stated objectives: the synthesized AWS Backup resources and the config rules behind them.

Cost: the synth tests read the session's one synthesis (no synthesis of their own); the config tests
parse dicts. About 0.3 s beyond the shared synthesis (pytest --durations).
"""

from __future__ import annotations

from typing import Any

import pytest
from configs import with_values

from conftest import ENVIRONMENTS_DIR, ROOT, Synth
from obiam.environments import EPHEMERAL_TEMPLATE, ConfigError, load_environment, parse_environment
from tfjson import name_of, only, ref, resources


def vaults_by_region(stack: dict[str, Any], home: str) -> dict[str, tuple[str, dict[str, Any]]]:
    return {vault.get("region", home): (name, vault) for name, vault in resources(stack, "aws_backup_vault").items()}


def lock_of(stack: dict[str, Any], vault_name: str) -> dict[str, Any]:
    (lock,) = [lock for lock in resources(stack, "aws_backup_vault_lock_configuration").values()
               if lock["backup_vault_name"] == ref("aws_backup_vault", vault_name, "name")]
    return lock


# --- production, as synthesized ------------------------------------------------------------------

@pytest.mark.synth
def test_prod_backs_up_the_database_and_the_artifact_file_system(prod: dict[str, Any]) -> None:
    selected = {arn for s in resources(prod, "aws_backup_selection").values() for arn in s["resources"]}
    assert selected == {ref("aws_db_instance", name_of(prod, "aws_db_instance"), "arn"),
                        ref("aws_efs_file_system", name_of(prod, "aws_efs_file_system"), "arn")}


@pytest.mark.synth
def test_prod_vaults_are_encrypted_each_with_its_own_customer_managed_key(prod: dict[str, Any]) -> None:
    keys = [vault["kms_key_arn"] for vault in resources(prod, "aws_backup_vault").values()]
    assert len(keys) == 2 and len(set(keys)) == 2
    assert all(key.startswith("${aws_kms_key.") for key in keys)
    for key in keys:
        assert resources(prod, "aws_kms_key")[key.split(".")[1]]["enable_key_rotation"] is True


@pytest.mark.synth
def test_prod_copies_every_snapshot_to_a_vault_in_its_copy_region(prod: dict[str, Any], synth: Synth) -> None:
    """Copy actions name the destination vault by ARN (Backup API Reference, CopyAction.DestinationBackupVaultArn);
    the copy vault lives in backup.copy_region through the provider's per-resource region (provider 6)."""
    config = synth.environments["prod"].config
    vaults = vaults_by_region(prod, config.region)
    assert set(vaults) == {config.region, config.backup.copy_region}
    copy_vault, copy_key_ref = vaults[config.backup.copy_region][0], vaults[config.backup.copy_region][1]["kms_key_arn"]
    assert resources(prod, "aws_kms_key")[copy_key_ref.split(".")[1]]["region"] == config.backup.copy_region
    snapshots = next(p for p in resources(prod, "aws_backup_plan").values() if p["name"].endswith("-snapshots"))
    (rule,) = snapshots["rule"]
    assert [c["destination_vault_arn"] for c in rule["copy_action"]] == [ref("aws_backup_vault", copy_vault, "arn")]
    assert rule["copy_action"][0]["lifecycle"]["delete_after"] >= config.backup.effective_copy_retention_days


@pytest.mark.synth
def test_prod_plan_runs_at_the_configured_interval_and_keeps_at_least_the_configured_retention(
        prod: dict[str, Any], synth: Synth) -> None:
    config = synth.environments["prod"].config
    plans = {p["name"].rsplit("-", 1)[1]: p["rule"][0] for p in resources(prod, "aws_backup_plan").values()}
    assert plans["snapshots"]["schedule"] == f"cron(0 */{config.backup.interval_hours} * * ? *)"
    assert plans["snapshots"]["lifecycle"]["delete_after"] >= config.backup.retention_days
    # Continuous backup (point-in-time recovery) of the database; AWS Backup then owns the instance's
    # automated-backup retention, so the two must agree (AWS Backup Developer Guide, continuous backups).
    assert plans["continuous"]["enable_continuous_backup"] is True
    assert plans["continuous"]["lifecycle"]["delete_after"] == only(prod, "aws_db_instance")["backup_retention_period"]


@pytest.mark.synth
def test_prod_locks_both_vaults_no_shorter_than_the_retention_that_enters_them(
        prod: dict[str, Any], synth: Synth) -> None:
    """A vault lock refuses recovery points retained less than min_retention_days (Backup API Reference,
    PutBackupVaultLockConfiguration), so the minimum is the shortest retention going in, and no shorter."""
    config = synth.environments["prod"].config
    vaults = vaults_by_region(prod, config.region)
    home_lock = lock_of(prod, vaults[config.region][0])
    copy_lock = lock_of(prod, vaults[config.backup.copy_region][0])
    assert home_lock["min_retention_days"] == min(config.backup.retention_days,
                                                  config.database.backup_retention_period)
    assert copy_lock["min_retention_days"] == config.backup.effective_copy_retention_days
    assert copy_lock["region"] == config.backup.copy_region
    # governance (prod.yaml): no lock date; compliance would need changeable_for_days.
    assert "changeable_for_days" not in home_lock and "changeable_for_days" not in copy_lock


@pytest.mark.synth
def test_prod_vaults_and_keys_survive_a_destroy(prod: dict[str, Any]) -> None:
    for vault in resources(prod, "aws_backup_vault").values():
        assert vault["lifecycle"]["prevent_destroy"] is True and vault["force_destroy"] is False
    backup_keys = {v["kms_key_arn"].split(".")[1] for v in resources(prod, "aws_backup_vault").values()}
    for key in backup_keys:
        assert resources(prod, "aws_kms_key")[key]["lifecycle"]["prevent_destroy"] is True


@pytest.mark.synth
def test_backup_role_is_assumed_by_aws_backup_only(prod: dict[str, Any]) -> None:
    import json

    role = next(r for r in resources(prod, "aws_iam_role").values() if r["name"].endswith("-backup"))
    (statement,) = json.loads(role["assume_role_policy"])["Statement"]
    assert statement["Principal"] == {"Service": "backup.amazonaws.com"}


@pytest.mark.synth
def test_the_per_branch_environment_has_no_vault(cheapest: dict[str, Any]) -> None:
    """One destroy must remove a per-branch environment; a vault with recovery points cannot be deleted."""
    assert not resources(cheapest, "aws_backup_vault") and not resources(cheapest, "aws_backup_plan")


# --- the config rules ------------------------------------------------------------------------------

def problems(**sections: Any) -> str:
    with pytest.raises(ConfigError) as error:
        parse_environment("prod", with_values(sections), "environments/prod.yaml")
    return str(error.value)


def test_production_must_copy_to_a_second_region() -> None:
    assert "backup.copy_region: required in production" in problems(backup={"copy_region": None})
    assert "backup.copy_region = 'eu-west-2': is the environment's own region" in problems(
        backup={"copy_region": "eu-west-2"})


def test_production_must_lock_its_vaults_and_keep_backups_on() -> None:
    assert "backup.lock = 'none': production locks its vaults" in problems(
        backup={"copy_region": "eu-west-1", "lock": "none"})
    assert "backup.enabled = False: must stay true in production" in problems(
        backup={"copy_region": "eu-west-1", "enabled": False, "rpo_hours": 24})


def test_a_plan_slower_than_the_rpo_is_refused_naming_the_field() -> None:
    message = problems(backup={"copy_region": "eu-west-1", "rpo_hours": 4, "interval_hours": 24})
    assert "environments/prod.yaml: backup.interval_hours = 24: a backup every 24 h cannot meet " \
           "backup.rpo_hours = 4" in message
    assert "allowed: one of 1, 2, 3, 4" in message


def test_without_the_plan_an_rpo_under_a_day_is_refused() -> None:
    """Without the toolkit's plan the file system has EFS's automatic backups only, daily (EFS User Guide,
    "Automatic backups")."""
    with pytest.raises(ConfigError, match=r"backup.rpo_hours = 4: cannot be met with backup.enabled: false"):
        parse_environment("dev", with_values(tier="development", backup={"enabled": False, "rpo_hours": 4},
                                             data_protection={"deletion_protection": False,
                                                              "prevent_destroy": False, "final_snapshot": False}),
                          "environments/dev.yaml")


def test_compliance_lock_needs_a_stated_grace_period_of_at_least_three_days() -> None:
    """Compliance mode becomes immutable after ChangeableForDays, which must be 3 or more (the 72-hour
    cooling-off period; Backup API Reference, PutBackupVaultLockConfiguration)."""
    assert "backup.lock_changeable_for_days: required with lock: compliance" in problems(
        backup={"copy_region": "eu-west-1", "lock": "compliance"})
    assert "backup.lock_changeable_for_days" in problems(
        backup={"copy_region": "eu-west-1", "lock": "compliance", "lock_changeable_for_days": 2})
    config = parse_environment("prod", with_values(backup={
        "copy_region": "eu-west-1", "lock": "compliance", "lock_changeable_for_days": 7}),
        "environments/prod.yaml").config
    assert config.backup.lock_changeable_for_days == 7


def test_the_second_account_vault_must_be_in_another_account() -> None:
    own = with_values()["account"]["id"]
    message = problems(backup={"copy_region": "eu-west-1",
                               "copy_account_vault_arn": f"arn:aws:backup:eu-west-2:{own}:backup-vault:dr"})
    assert "a copy there does not survive a compromise of that account" in message


def test_ephemeral_environments_take_no_backups() -> None:
    loaded = load_environment(ENVIRONMENTS_DIR / f"{EPHEMERAL_TEMPLATE}.yaml", ROOT)
    assert loaded.config.backup.enabled is False
    data = loaded.config.model_dump(exclude_none=True)
    data["backup"] = {"enabled": True}
    with pytest.raises(ConfigError, match="ephemeral environments take no backups"):
        parse_environment("ephemeral", data, "environments/ephemeral.yaml")


@pytest.mark.synth
def test_wso2s_encryption_key_survives_a_region_and_is_never_rewritten(synth: Synth) -> None:
    """AWS Backup copies the database and file system, not Secrets Manager: the node secret (WSO2's
    [encryption] key, keystore password) is replicated to backup.copy_region, or a restore there could
    not read the data (Secrets Manager User Guide, "Replicate secrets across Regions"). Terraform writes
    its value once (ignore_changes), so `obiam restore` can put the source's key into a target."""
    for name, environment in synth.environments.items():
        stack = synth.stack(name)
        (secret,) = [s for s in stack["resource"]["aws_secretsmanager_secret"].values()
                     if s["name"] == f"obiam/{name}/wso2-node"]
        backup = environment.config.backup
        expected = [{"region": backup.copy_region}] if backup.enabled and backup.copy_region else None
        assert secret.get("replica") == expected, name
        (version,) = [v for k, v in stack["resource"]["aws_secretsmanager_secret_version"].items()
                      if k.startswith("node-secrets_node-secret-value_")]
        assert version["lifecycle"]["ignore_changes"] == ["secret_string"]
    assert synth.environments["prod"].config.backup.copy_region == "eu-west-1"
