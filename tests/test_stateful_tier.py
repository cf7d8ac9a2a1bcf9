"""The HA stateful tier: shared artifacts on EFS, Multi-AZ RDS, managed directory, and their protection."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from conftest import Synth
from tfjson import as_list, deployment_overlay, embedded_files, only, policy_statements, ref, resources, user_data

pytestmark = pytest.mark.synth

ARTIFACT_DIRECTORIES = ("eventpublishers", "userstores", "eventstreams", "humantasks", "bpel")


def name_of(stack: dict[str, Any], resource_type: str) -> str:
    (name,) = resources(stack, resource_type)
    return name


def subnet_names(stack: dict[str, Any], tier: str) -> list[str]:
    return sorted(n for n, s in resources(stack, "aws_subnet").items() if s["tags"]["obiam:tier"] == tier)


def az_of_subnet_ref(stack: dict[str, Any], subnet_ref: str) -> str:
    return resources(stack, "aws_subnet")[subnet_ref.split(".")[1]]["availability_zone"]


# --- artifact file system ----------------------------------------------------------------------

def test_every_node_az_has_an_efs_mount_target(own_servers: dict[str, Any]) -> None:
    stack = own_servers
    node_azs = {az_of_subnet_ref(stack, s) for s in only(stack, "aws_autoscaling_group")["vpc_zone_identifier"]}
    mount_azs = [az_of_subnet_ref(stack, m["subnet_id"]) for m in resources(stack, "aws_efs_mount_target").values()]
    assert sorted(mount_azs) == sorted(node_azs)


def test_efs_is_encrypted_with_a_customer_managed_key(stack: dict[str, Any]) -> None:
    fs = only(stack, "aws_efs_file_system")
    assert fs["encrypted"] is True and fs["kms_key_id"].startswith("${aws_kms_key.")


def test_efs_backups_are_on(stack: dict[str, Any]) -> None:
    """Either the toolkit's AWS Backup plan selects the file system (and EFS's automatic backups, an
    unlocked and uncopied second series, are off) or, without that plan, EFS's automatic backups are on."""
    fs_arn = ref("aws_efs_file_system", name_of(stack, "aws_efs_file_system"), "arn")
    selected = any(fs_arn in s["resources"] for s in resources(stack, "aws_backup_selection").values())
    expected = "DISABLED" if selected else "ENABLED"
    assert only(stack, "aws_efs_backup_policy")["backup_policy"] == {"status": expected}


def test_efs_accepts_nfs_from_the_nodes_only(stack: dict[str, Any]) -> None:
    fs_sg = next(n for n, g in resources(stack, "aws_security_group").items() if g["name"].endswith("-nfs"))
    nodes_sg = next(n for n, g in resources(stack, "aws_security_group").items() if g["name"].endswith("-nodes"))
    rules = [r for r in resources(stack, "aws_vpc_security_group_ingress_rule").values()
             if r["security_group_id"] == ref("aws_security_group", fs_sg, "id")]
    assert [(r["referenced_security_group_id"], r["from_port"], r["to_port"]) for r in rules] == [
        (ref("aws_security_group", nodes_sg, "id"), 2049, 2049)]
    for mount in resources(stack, "aws_efs_mount_target").values():
        assert mount["security_groups"] == [ref("aws_security_group", fs_sg, "id")]


def test_efs_has_an_access_point_per_artifact_directory(stack: dict[str, Any]) -> None:
    paths = sorted(p["root_directory"]["path"] for p in resources(stack, "aws_efs_access_point").values())
    assert paths == sorted([f"/wso2/{d}" for d in ARTIFACT_DIRECTORIES] + ["/wso2/control"])
    for point in resources(stack, "aws_efs_access_point").values():
        assert point["posix_user"] == {"uid": 802, "gid": 802}


def test_efs_policy_denies_access_without_tls_and_admits_only_the_node_role(stack: dict[str, Any]) -> None:
    statements = policy_statements(stack, "aws_efs_file_system_policy")
    deny = [s for s in statements if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and deny[0]["Action"] == "*"
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    node_role = next(n for n, r in resources(stack, "aws_iam_role").items() if r["name"].endswith("-node"))
    assert allow["Principal"] == {"AWS": ref("aws_iam_role", node_role, "arn")}


def test_all_five_artifact_dirs_are_mounted_over_tls(stack: dict[str, Any]) -> None:
    script = user_data(stack)
    assert re.search(r"^readonly ARTIFACT_DIRECTORIES=\((.*)\)$", script, re.M).group(1).split() == list(  # type: ignore[union-attr]
        ARTIFACT_DIRECTORIES)
    fstab = re.search(r'echo "(\$EFS_ID:/ \$2 efs [^"]*)" >> /etc/fstab', script)
    assert fstab and "tls" in fstab.group(1).split()[3].split(",")
    assert "iam" in fstab.group(1).split()[3].split(",")
    # Each directory WSO2 reads under repository/deployment/server/ becomes a link into the share.
    assert 'local_dir="$CARBON_HOME/repository/deployment/server/$dir"' in script
    assert 'ln -sfn "$shared" "$local_dir"' in script


# --- database ----------------------------------------------------------------------------------

def test_db_is_multi_az_and_private(servers_stack: dict[str, Any]) -> None:
    db = only(servers_stack, "aws_db_instance")
    assert db["multi_az"] is True and db["publicly_accessible"] is False
    subnet_group = only(servers_stack, "aws_db_subnet_group")
    assert sorted(s.split(".")[1] for s in subnet_group["subnet_ids"]) == subnet_names(servers_stack, "data")


def test_every_environment_database_is_multi_az(synth: Synth) -> None:
    """Each environment's database server, its own or its branch base's."""
    servers = [n for n, e in synth.environments.items() if e.base is None] + list(synth.bases)
    assert len(servers) < len(synth.environments) + len(synth.bases)  # the branch environment has none
    for name in servers:
        assert only(synth.stack(name), "aws_db_instance")["multi_az"] is True, name


def test_db_is_encrypted_with_kms_and_its_password_is_managed_by_secrets_manager(
        servers_stack: dict[str, Any]) -> None:
    db = only(servers_stack, "aws_db_instance")
    assert db["storage_encrypted"] is True and db["kms_key_id"].startswith("${aws_kms_key.")
    assert db["manage_master_user_password"] is True
    assert "password" not in db and "password_wo" not in db
    assert db["master_user_secret_kms_key_id"].startswith("${aws_kms_key.")


def test_mysql_8_0_is_the_default_engine(servers_stack: dict[str, Any]) -> None:
    db = only(servers_stack, "aws_db_instance")
    assert (db["engine"], db["engine_version"]) == ("mysql", "8.0")


def test_prod_db_keeps_backups_deletion_protection_and_a_final_snapshot(prod: dict[str, Any]) -> None:
    db = only(prod, "aws_db_instance")
    assert db["backup_retention_period"] >= 7
    assert db["deletion_protection"] is True
    assert db["skip_final_snapshot"] is False and db["final_snapshot_identifier"] == "obiam-prod-db-final"


def test_prod_db_has_performance_insights_and_enhanced_monitoring(prod: dict[str, Any]) -> None:
    db = only(prod, "aws_db_instance")
    assert db["performance_insights_enabled"] is True
    assert db["monitoring_interval"] > 0 and db["monitoring_role_arn"].startswith("${aws_iam_role.")


def test_db_exports_its_logs(servers_stack: dict[str, Any]) -> None:
    exports = only(servers_stack, "aws_db_instance")["enabled_cloudwatch_logs_exports"]
    assert {"error", "slowquery"} <= set(exports)


def test_db_parameter_group_enforces_tls_and_wso2s_character_set(servers_stack: dict[str, Any]) -> None:
    group = only(servers_stack, "aws_db_parameter_group")
    assert group["family"] == "mysql8.0"
    parameters = {p["name"]: p["value"] for p in group["parameter"]}
    assert parameters["require_secure_transport"] == "1"
    assert parameters["character_set_server"] == "latin1"
    assert only(servers_stack, "aws_db_instance")["parameter_group_name"] == ref(
        "aws_db_parameter_group", name_of(servers_stack, "aws_db_parameter_group"), "name")


def test_postgres_environment_gets_its_family_tls_and_jdbc_url(variants: dict[str, dict[str, Any]]) -> None:
    stack = variants["postgres"]
    group = only(stack, "aws_db_parameter_group")
    assert group["family"] == "postgres13"
    assert {p["name"]: p["value"] for p in group["parameter"]}["rds.force_ssl"] == "1"
    identity = deployment_overlay(stack)["database"]["identity_db"]
    assert identity["url"].startswith("jdbc:postgresql://@OBIAM_DB_HOST@:@OBIAM_DB_PORT@/openbank_apimgtdb?")
    assert identity["driver"] == "org.postgresql.Driver"
    # The pack brings PostgreSQL's driver; the node refuses to boot without its class in components/lib.
    assert "grep -xF 'org/postgresql/Driver.class'" in user_data(stack)


def test_db_accepts_its_port_from_the_nodes_only(own_servers: dict[str, Any]) -> None:
    db_sg = next(n for n, g in resources(own_servers, "aws_security_group").items() if g["name"].endswith("-db"))
    nodes_sg = next(n for n, g in resources(own_servers, "aws_security_group").items() if g["name"].endswith("-nodes"))
    rules = [r for r in resources(own_servers, "aws_vpc_security_group_ingress_rule").values()
             if r["security_group_id"] == ref("aws_security_group", db_sg, "id")]
    assert [(r["referenced_security_group_id"], r["from_port"]) for r in rules] == [
        (ref("aws_security_group", nodes_sg, "id"), 3306)]


def test_node_role_reads_exactly_the_db_wso2_and_its_directory_account_secrets(own_servers: dict[str, Any]) -> None:
    """On Managed Microsoft AD the nodes read WSO2's own bind and super-admin secrets, never the directory
    Admin's (review finding 13); Simple AD has no user API, so there the Admin is WSO2's account."""
    node_policy = next(p for n, p in resources(own_servers, "aws_iam_role_policy").items() if n.startswith("nodes_"))
    (statement,) = [s for s in json.loads(node_policy["policy"])["Statement"]
                    if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    secrets = {n.split("_")[1]: ref("aws_secretsmanager_secret", n, "arn")
               for n in resources(own_servers, "aws_secretsmanager_secret")}
    directory_type = only(own_servers, "aws_directory_service_directory")["type"]
    wso2_accounts = (["bind-secret", "super-admin-secret"] if directory_type == "MicrosoftAD" else ["admin-secret"])
    assert sorted(as_list(statement["Resource"])) == sorted([
        "${aws_db_instance." + name_of(own_servers, "aws_db_instance") + ".master_user_secret[0].secret_arn}",
        secrets["database-secret"], secrets["node-secret"], *(secrets[name] for name in wso2_accounts)])
    if directory_type == "MicrosoftAD":
        assert secrets["admin-secret"] not in as_list(statement["Resource"])


def test_wso2_connects_with_tls_as_its_own_least_privileged_user(own_servers: dict[str, Any]) -> None:
    """RDS rotates the master secret every 7 days (RDS User Guide, "Password management with
    Amazon RDS and Secrets Manager"); Secrets Manager recommends a least-privileged application user."""
    overlay = deployment_overlay(own_servers)
    for section in [*overlay["database"].values(), *overlay["datasource"]]:
        assert section["url"].startswith("jdbc:mysql://@OBIAM_DB_HOST@:@OBIAM_DB_PORT@/")
        assert "sslMode=VERIFY_IDENTITY" in section["url"]
        assert (section["username"], section["password"]) == ("obiam_wso2", "@OBIAM_DB_PASSWORD@")
        assert section["driver"] == "com.mysql.cj.jdbc.Driver"
    db_init = embedded_files(user_data(own_servers))["/opt/obiam/bin/db-init"]
    grants = re.findall(r"GRANT (.*?) ON (\w+)\.\* TO '\$APP_USER'", db_init)
    assert {privileges for privileges, _ in grants} == {"SELECT, INSERT, UPDATE, DELETE, EXECUTE, "
                                                         "CREATE TEMPORARY TABLES"}
    assert len(grants) == 6


def test_schemas_are_created_once_per_environment_under_a_lock(own_servers: dict[str, Any]) -> None:
    """docs-open-banking 3.0.0 setting-up-databases.md: the tables of apimgtdb, am_configdb, govdb
    and userdb come from the API Manager 4.0 scripts, iskm_configdb from IS's, openbankingdb from
    the accelerator's consent script; then SP_METADATA.VALUE and AM_APPLICATION_REGISTRATION.INPUTS
    are widened."""
    db_init = embedded_files(user_data(own_servers))["/opt/obiam/bin/db-init"]
    assert 'exec 9>"$CONTROL/db-init.lock"' in db_init and "flock 9" in db_init
    assert db_init.index("if [[ ! -f $SCHEMA_MARKER ]]") < db_init.index("CREATE DATABASE")
    for database in ("openbank_apimgtdb", "openbank_am_configdb", "openbank_govdb", "openbank_userdb",
                     "openbank_iskm_configdb", "openbank_openbankingdb"):
        assert f"CREATE DATABASE IF NOT EXISTS {database} CHARACTER SET latin1" in db_init
    assert 'sql openbank_apimgtdb < "$(script dbscripts/apim/apimgt/mysql.sql)"' in db_init
    for database in ("openbank_am_configdb", "openbank_govdb", "openbank_userdb"):
        assert f'sql {database} < "$(script dbscripts/apim/mysql.sql)"' in db_init
    assert 'sql openbank_iskm_configdb < "$(script dbscripts/mysql.sql)"' in db_init
    assert 'sql openbank_openbankingdb < "$(script dbscripts/open-banking/consent/mysql.sql)"' in db_init
    assert "ALTER TABLE SP_METADATA MODIFY VALUE VARCHAR(4096)" in db_init
    assert "ALTER TABLE AM_APPLICATION_REGISTRATION MODIFY INPUTS VARCHAR(7500)" in db_init


def test_mysql_lets_consent_attributes_past_1024_characters(prod: dict[str, Any]) -> None:
    """docs-open-banking 3.0.0 setting-up-databases.md: group_concat_max_len = 10000 for MySQL."""
    group = only(prod, "aws_db_parameter_group")
    assert {p["name"]: p["value"] for p in group["parameter"]}["group_concat_max_len"] == "10000"


# --- directory ---------------------------------------------------------------------------------

def test_directory_spans_two_azs(servers_stack: dict[str, Any]) -> None:
    settings = only(servers_stack, "aws_directory_service_directory")["vpc_settings"]
    assert len(settings["subnet_ids"]) == 2
    assert len({az_of_subnet_ref(servers_stack, s) for s in settings["subnet_ids"]}) == 2
    assert {s.split(".")[1] for s in settings["subnet_ids"]} <= set(subnet_names(servers_stack, "data"))


def test_prod_directory_is_managed_microsoft_ad_with_logs_in_cloudwatch(prod: dict[str, Any]) -> None:
    directory = only(prod, "aws_directory_service_directory")
    assert (directory["type"], directory["edition"]) == ("MicrosoftAD", "Enterprise")
    subscription = only(prod, "aws_directory_service_log_subscription")
    assert subscription["log_group_name"].startswith("${aws_cloudwatch_log_group.")


def test_cheapest_directory_is_the_small_managed_microsoft_ad(branch_base: dict[str, Any]) -> None:
    """Simple AD is not offered in eu-west-2 (tests/test_day_two.py has the rule), so the per-branch
    environments' base there runs the Standard edition of AWS Managed Microsoft AD."""
    directory = only(branch_base, "aws_directory_service_directory")
    assert (directory["type"], directory["edition"]) == ("MicrosoftAD", "Standard")
    assert "size" not in directory


def test_directory_password_is_generated_and_kept_only_in_secrets_manager(own_servers: dict[str, Any]) -> None:
    stack = own_servers
    (directory_password,) = [n for n in resources(stack, "random_password") if n.startswith("directory_")]
    password = ref("random_password", directory_password, "result")
    assert only(stack, "aws_directory_service_directory")["password"] == password
    (secret_value,) = [json.loads(v["secret_string"]) for v in resources(stack, "aws_secretsmanager_secret_version")
                       .values() if v["secret_id"].startswith("${aws_secretsmanager_secret.directory_")]
    assert secret_value["password"] == password
    assert all(secret["kms_key_id"].startswith("${aws_kms_key.")
               for secret in resources(stack, "aws_secretsmanager_secret").values())
    assert "random_password" not in json.dumps(stack.get("output", {}))
    assert "random_password" not in json.dumps(resources(stack, "aws_ssm_parameter"))
    assert "random_password" not in user_data(stack)


def test_user_store_binds_to_both_domain_controllers(stack: dict[str, Any]) -> None:
    user_store = deployment_overlay(stack)["user_store"]
    assert user_store["connection_url"] == "ldap://@OBIAM_LDAP_1_IP@:389 ldap://@OBIAM_LDAP_2_IP@:389"
    assert user_store["connection_password"] == "@OBIAM_DIRECTORY_BIND_PASSWORD@"
    assert user_store["type"] == "read_only_ldap_unique_id"


def test_prod_user_store_binds_as_wso2s_own_account_not_the_directory_admin(prod: dict[str, Any]) -> None:
    """Review finding 13: a dedicated bind account, not the directory's Admin and not WSO2's super admin
    (a lockout or expiry of one account must not take the store, the console and break-glass down)."""
    overlay = deployment_overlay(prod)
    assert overlay["user_store"]["connection_name"] == "obiam-wso2-bind@corp.obiam.bank.example.com"
    assert overlay["super_admin"]["username"] == "obiam-wso2-admin"
    assert overlay["super_admin"]["password"] == "@OBIAM_SUPER_ADMIN_PASSWORD@"


def test_runtime_parameter_carries_addresses_and_secret_arns_but_no_secret(stack: dict[str, Any]) -> None:
    value = only(stack, "aws_ssm_parameter")["value"]
    for key in ("efs_file_system_id", "efs_access_points", "db_host", "db_port", "db_secret_arn",
                "wso2_db_secret_arn", "node_secret_arn", "directory_dns_ips", "directory_bind_secret_arn",
                "super_admin_secret_arn"):
        assert f'"{key}" = ' in value
    assert "random_password" not in value and "secret_string" not in value


# --- data protection ---------------------------------------------------------------------------

STATEFUL = ("aws_db_instance", "aws_efs_file_system", "aws_directory_service_directory", "aws_kms_key",
            "aws_s3_bucket", "aws_secretsmanager_secret", "aws_cloudwatch_log_group")


def test_prod_stateful_resources_cannot_be_destroyed(prod: dict[str, Any]) -> None:
    for resource_type in STATEFUL:
        found = resources(prod, resource_type)
        assert found, resource_type
        for name, resource in found.items():
            assert resource.get("lifecycle", {}).get("prevent_destroy") is True, f"{resource_type}.{name}"
    assert only(prod, "aws_db_instance")["deletion_protection"] is True
    assert only(prod, "aws_lb")["enable_deletion_protection"] is True
    assert only(prod, "aws_s3_bucket")["force_destroy"] is False
    assert {s["recovery_window_in_days"] for s in resources(prod, "aws_secretsmanager_secret").values()} == {30}


def test_ephemeral_environment_is_removed_by_one_destroy(cheapest: dict[str, Any]) -> None:
    for resource_type, found in cheapest["resource"].items():
        for name, resource in found.items():
            assert not resource.get("lifecycle", {}).get("prevent_destroy"), f"{resource_type}.{name}"
    assert only(cheapest, "aws_lb")["enable_deletion_protection"] is False
    # Its databases and directory accounts are on the base: the destroy invokes their removal.
    assert not resources(cheapest, "aws_db_instance")
    assert {i["lifecycle_scope"] for i in resources(cheapest, "aws_lambda_invocation").values()} == {"CRUD"}
    assert {s["recovery_window_in_days"] for s in resources(cheapest, "aws_secretsmanager_secret").values()} == {0}
    assert all(g.get("deletion_protection_enabled") is not True
               for g in resources(cheapest, "aws_cloudwatch_log_group").values())


def test_outputs_name_what_operators_and_verify_need(stack: dict[str, Any]) -> None:
    assert set(stack["output"]) == {"alb_dns_name", "db_endpoint", "db_secret_arn", "efs_file_system_id",
                                    "directory_id", "directory_dns_ips", "autoscaling_group_name"}
    assert all(output.get("description") for output in stack["output"].values())
