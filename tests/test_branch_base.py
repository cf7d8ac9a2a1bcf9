"""Per-branch environments on a shared branch base (#18): what the base holds and publishes, what a
branch keeps for itself, how a branch's databases and directory accounts come and go with it, and
the config that cannot work. Reads the session's one synthesis (the base and the branch stack are
in it), plus botocore Stubber and moto checks: about 1.5 s of its own.
"""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from conftest import BRANCH_BASE, ROOT, Synth
from obiam import branch_scope, wso2
from obiam import directory_accounts_function as accounts_function
from obiam.environments import ConfigError, load_catalog, load_environment
from stacks.branch_base_stack import BASE_OUTPUTS
from tfjson import deployment_overlay, embedded_files, only, policy_statements, resources, user_data

PUBLISHED = "jsondecode(data.aws_ssm_parameter.branch-base.insecure_value)"
SHARED_KINDS = ("aws_vpc", "aws_subnet", "aws_nat_gateway", "aws_db_instance", "aws_directory_service_directory")


def published(name: str) -> str:
    return f"${{{PUBLISHED}.{name}}}"


# --- the base -------------------------------------------------------------------------------------

@pytest.mark.synth
def test_the_base_holds_the_slow_and_shared_servers_and_no_node(branch_base: dict[str, Any]) -> None:
    """A Managed AD takes 20-45 minutes to create (AWS Directory Service admin guide, "Create your
    AWS Managed Microsoft AD") and an RDS instance several: those are created once, in the base."""
    for kind in SHARED_KINDS:
        assert resources(branch_base, kind), kind
    directory = only(branch_base, "aws_directory_service_directory")
    assert (directory["type"], directory["edition"]) == ("MicrosoftAD", "Standard")
    for kind in ("aws_autoscaling_group", "aws_lb", "aws_efs_file_system", "aws_launch_template"):
        assert not resources(branch_base, kind), kind
    # It outlives every branch: a stray destroy does not take everyone's databases.
    assert only(branch_base, "aws_db_instance")["deletion_protection"] is True
    assert only(branch_base, "aws_db_instance")["lifecycle"]["prevent_destroy"] is True


@pytest.mark.synth
def test_the_base_publishes_its_outputs_without_a_secret(branch_base: dict[str, Any]) -> None:
    """Terraform docs, "The terraform_remote_state Data Source": reading outputs that way needs the
    whole state, secrets included, and HashiCorp recommends publishing them elsewhere; the base
    publishes ids and names as one SSM String parameter, which is all a branch reads."""
    parameter = only(branch_base, "aws_ssm_parameter")
    assert (parameter["name"], parameter["type"]) == ("/obiam/ephemeral-base/branch-base", "String")
    keys = re.findall(r'"(\w+)" = ', parameter["value"])
    assert keys == list(BASE_OUTPUTS)
    assert "random_password" not in parameter["value"] and "secret_string" not in parameter["value"]
    assert set(branch_base["output"]) == set(BASE_OUTPUTS)


@pytest.mark.synth
def test_only_the_base_function_holds_the_master_credential_and_only_for_branch_names(
        branch_base: dict[str, Any]) -> None:
    (function,) = [f for n, f in resources(branch_base, "aws_lambda_function").items()
                   if n.startswith("branch-databases_")]
    variables = function["environment"]["variables"]
    assert variables["NAME_PREFIX"] == branch_scope.BRANCH_DATABASE_PREFIX == "eph_"
    assert variables["CA_BUNDLE_URL"].startswith("https://truststore.pki.rds.amazonaws.com/")
    assert function["vpc_config"]["subnet_ids"]
    # Branches deploy in parallel: a synchronous invocation over the reserved concurrency is
    # throttled (Lambda developer guide, "Lambda function scaling"), so the cap is not 1.
    assert function["reserved_concurrent_executions"] > 1
    statements = {s["Sid"]: s for s in policy_statements(branch_base, "aws_iam_role_policy") if "Sid" in s}
    instance = next(iter(resources(branch_base, "aws_db_instance")))
    master = f"${{aws_db_instance.{instance}.master_user_secret[0].secret_arn}}"
    assert statements["Credentials"]["Resource"] == [master]
    assert statements["BranchUserPasswords"]["Resource"].endswith(":secret:obiam/eph-*/wso2-database-user-*")
    keys = statements["BranchUserPasswordKeys"]
    assert keys["Condition"]["StringLike"]["kms:EncryptionContext:SecretARN"] == (
        statements["BranchUserPasswords"]["Resource"])
    # The database accepts the function; each branch adds a rule for its own nodes.
    rules = [r for r in resources(branch_base, "aws_vpc_security_group_ingress_rule").values()
             if r.get("from_port") == 3306]
    assert [r["referenced_security_group_id"].split(".")[1] for r in rules] == [
        n for n, g in resources(branch_base, "aws_security_group").items() if g["name"].endswith("branch-databases")]


@pytest.mark.synth
def test_the_base_keeps_its_directory_admin_from_expiring_and_creates_no_wso2_account(
        branch_base: dict[str, Any]) -> None:
    """AWS Managed Microsoft AD ends every password after 42 days, the Admin's too (AWS Directory Service
    admin guide, "Manage password policies"): the base renews its Admin daily like every environment,
    and creates no WSO2 account (each branch brings its own)."""
    invocation = only(branch_base, "aws_lambda_invocation")
    assert [(a["username"], a["create"]) for a in json.loads(invocation["input"])["accounts"]] == [("Admin", False)]
    assert only(branch_base, "aws_cloudwatch_event_rule")["schedule_expression"] == "cron(0 12 * * ? *)"
    sids = {s.get("Sid") for s in policy_statements(branch_base, "aws_iam_role_policy")}
    assert "RenewPasswords" in sids and "CreateAccounts" not in sids
    assert [s["name"] for s in resources(branch_base, "aws_secretsmanager_secret").values()] == [
        "obiam/ephemeral-base/directory-admin"]


# --- a branch on the base -----------------------------------------------------------------------

@pytest.mark.synth
def test_a_branch_keeps_only_what_must_be_its_own(cheapest: dict[str, Any]) -> None:
    for kind in SHARED_KINDS:
        assert not resources(cheapest, kind), kind
    for kind in ("aws_autoscaling_group", "aws_lb", "aws_efs_file_system", "aws_kms_key", "aws_route53_record"):
        assert resources(cheapest, kind), kind
    assert cheapest["data"]["aws_ssm_parameter"]["branch-base"]["name"] == "/obiam/ephemeral-base/branch-base"
    assert "terraform_remote_state" not in cheapest["data"]


@pytest.mark.synth
def test_a_branchs_databases_and_user_come_and_go_with_it(cheapest: dict[str, Any], synth: Synth) -> None:
    """aws_lambda_invocation with lifecycle_scope CRUD invokes the function on create, update and
    destroy, adding tf.action (hashicorp/terraform-provider-aws, internal/service/lambda/invocation.go):
    the branch's destroy drops its databases. The nodes boot after the create."""
    names = branch_scope.on_branch_base(synth.ephemeral_name)
    invocations = {n: i for n, i in resources(cheapest, "aws_lambda_invocation").items()
                   if n.startswith("branch-databases_")}
    ((name, invocation),) = invocations.items()
    assert invocation["lifecycle_scope"] == "CRUD" and "triggers" not in invocation
    assert invocation["function_name"] == published("branch_databases_function_name")
    event = json.loads(invocation["input"])
    assert event["databases"] == [names.database(d.name) for d in wso2.PRODUCTS["3.0.0"].databases]
    assert event["user"] == names.database_user
    assert event["password_secret_arn"].startswith("${aws_secretsmanager_secret.node-secrets_database-secret_")
    assert "password_version" in event  # a new password is an update, never a replacement
    assert f"aws_lambda_invocation.{name}" in only(cheapest, "aws_autoscaling_group")["depends_on"]


@pytest.mark.synth
def test_a_branchs_directory_accounts_are_its_own_and_removed_with_it(cheapest: dict[str, Any],
                                                                       synth: Synth) -> None:
    names = branch_scope.on_branch_base(synth.ephemeral_name)
    (invocation,) = [i for n, i in resources(cheapest, "aws_lambda_invocation").items()
                     if n.startswith("directory-accounts_")]
    assert invocation["lifecycle_scope"] == "CRUD" and "triggers" not in invocation
    event = json.loads(invocation["input"])
    assert event["directory_id"] == published("directory_id")
    # Never the shared directory's admin: a branch does not read or renew it.
    assert [(a["username"], a["create"]) for a in event["accounts"]] == [
        (names.bind_account, True), (names.super_admin_account, True)]
    statements = {s.get("Sid"): s for s in policy_statements(cheapest, "aws_iam_role_policy")}
    assert "ds-data:DeleteUser" in statements["CreateAccounts"]["Action"]


@pytest.mark.synth
def test_branch_nodes_use_their_own_database_user_and_never_the_master(cheapest: dict[str, Any],
                                                                       synth: Synth) -> None:
    names = branch_scope.on_branch_base(synth.ephemeral_name)
    node_policy = next(p for n, p in resources(cheapest, "aws_iam_role_policy").items() if n.startswith("nodes_"))
    read = [s for s in json.loads(node_policy["policy"])["Statement"] if s.get("Sid") == "Credentials"]
    assert "master_user_secret" not in json.dumps(read) and "directory_admin" not in json.dumps(read)
    overlay = deployment_overlay(cheapest)
    for section in [*overlay["database"].values(), *overlay["datasource"]]:
        assert section["username"] == names.database_user
        assert re.search(r"/eph_\w+\?", section["url"]), section["url"]
    db_init = embedded_files(user_data(cheapest))["/opt/obiam/bin/db-init"]
    assert "CREATE USER" not in db_init and "GRANT" not in db_init
    for database in wso2.PRODUCTS["3.0.0"].databases:
        assert f"CREATE DATABASE IF NOT EXISTS {names.database(database.name)} CHARACTER SET latin1" in db_init
    runtime = only(cheapest, "aws_ssm_parameter")["value"]
    assert '"db_secret_arn" = aws_secretsmanager_secret.node-secrets_database-secret_' in runtime
    # The branch's own rule into the base's database, removed with it.
    (rule,) = [r for r in resources(cheapest, "aws_vpc_security_group_ingress_rule").values()
               if r["security_group_id"] == published("db_security_group_id")]
    assert rule["from_port"] == 3306 and rule["referenced_security_group_id"].startswith("${aws_security_group.nodes_")


# --- the directory-accounts function on a destroy -----------------------------------------------

def test_a_destroy_deletes_the_branchs_accounts_and_nothing_else() -> None:
    """ds-data DeleteUser (Directory Service Data API reference): a user already gone is
    ResourceNotFoundException, counted as deleted so a retried destroy succeeds; accounts the
    toolkit did not create (create: false) are never deleted."""
    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="eu-west-2")

    class Clients:
        ds_data = session.client("ds-data")

    stub = Stubber(Clients.ds_data)
    stub.add_response("delete_user", {}, {"DirectoryId": "d-1", "SAMAccountName": "ob-12345678-bind"})
    stub.add_client_error("delete_user", service_error_code="ResourceNotFoundException", http_status_code=404,
                          expected_params={"DirectoryId": "d-1", "SAMAccountName": "ob-12345678-admin"})
    event = {"directory_id": "d-1", "tf": {"action": "delete", "prev_input": None}, "accounts": [
        {"username": "ob-12345678-bind", "secret_arn": "arn:b", "create": True},
        {"username": "ob-12345678-admin", "secret_arn": "arn:a", "create": True},
        {"username": "Admin", "secret_arn": "arn:admin", "create": False}]}
    with stub:
        result = accounts_function._run(event, Clients())
    stub.assert_no_pending_responses()
    assert result == {"directory_id": "d-1", "deleted": ["ob-12345678-bind"]}


# --- config that cannot work --------------------------------------------------------------------

def _directory_with(tmp_path: Any, template: dict[str, Any] | None = None,
                    base: dict[str, Any] | None = None) -> Any:
    directory = tmp_path / "environments"
    directory.mkdir()
    loaded_template = yaml.safe_load((ROOT / "environments" / "ephemeral.yaml").read_text())
    loaded_base = yaml.safe_load((ROOT / "environments" / f"{BRANCH_BASE}.yaml").read_text())
    for target, changes in ((loaded_template, template or {}), (loaded_base, base or {})):
        for key, value in changes.items():
            if value is None:
                target.pop(key, None)
            elif isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key] = {**target[key], **value}
            else:
                target[key] = value
    (directory / "ephemeral.yaml").write_text(yaml.safe_dump(loaded_template))
    (directory / f"{BRANCH_BASE}.yaml").write_text(yaml.safe_dump(loaded_base))
    return directory


@pytest.mark.parametrize(("template", "base", "expected"), [
    ({"database": {"instance_class": "db.t3.micro"}}, {},
     "environments/ephemeral.yaml: database: comes from the branch base environments/ephemeral-base.yaml"),
    ({"ephemeral": {"base": "elsewhere"}}, {},
     "environments/ephemeral.yaml: ephemeral.base = 'elsewhere': no such branch base"),
    ({}, {"account": {"id": "444444444444"}},
     "ephemeral.base = 'ephemeral-base': the base is in account 444444444444"),
    ({}, {"region": "eu-west-1"}, "the base is in eu-west-1, this file in eu-west-2"),
    ({}, {"directory": {"type": "SimpleAD", "edition": None, "name": "corp.x.example.com"}},
     "environments/ephemeral-base.yaml: directory.type = 'SimpleAD': a branch base uses MicrosoftAD"),
    ({}, {"database": {"engine": "postgres", "engine_lifecycle_support": "open-source-rds-extended-support"}},
     "environments/ephemeral-base.yaml: database.engine = 'postgres': the function that creates and drops"),
    ({"ephemeral": {"vpc_cidr_pool": "10.128.0.0/12"}}, {},
     "ephemeral.vpc_cidr_pool = '10.128.0.0/12': branch environments on the base ephemeral-base live in its VPC"),
], ids=["template-sets-database", "missing-base", "other-account", "other-region", "simple-ad", "postgres",
        "own-cidr-pool"])
def test_a_base_and_template_that_cannot_work_together_are_refused(tmp_path: Any, template: dict[str, Any],
                                                                  base: dict[str, Any], expected: str) -> None:
    directory = _directory_with(tmp_path, template, base)
    with pytest.raises(ConfigError) as caught:
        load_catalog(directory, tmp_path)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_a_branch_base_is_not_an_environment_for_obiam_env(tmp_path: Any) -> None:
    directory = _directory_with(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_environment(directory / f"{BRANCH_BASE}.yaml", tmp_path)
    assert caught.value.problems == [
        "environments/ephemeral-base.yaml: is a branch base (kind: branch-base), not an environment; allowed here: "
        "an environment name (a branch base is deployed with cdktf deploy ephemeral-base and used through "
        "ephemeral.base)"]


# --- what a branch costs (README, "Per-branch environments": the table of billed units) --------------

def billed_units(stack: dict[str, Any], nodes: int) -> dict[str, int]:
    """What AWS bills by the hour (or month) in a stack, counted from the synthesized JSON."""
    found = stack.get("resource", {})

    def count(kind: str) -> int:
        return len(found.get(kind, {}))

    return {
        "nodes": nodes,
        "load balancers": count("aws_lb"),
        "NAT gateways": count("aws_nat_gateway"),
        "interface endpoint-AZs": sum(len(e.get("subnet_ids", [])) for e in found.get("aws_vpc_endpoint", {}).values()
                                      if e.get("vpc_endpoint_type") == "Interface"),
        "directories": count("aws_directory_service_directory"),
        "database instances": sum(2 if d.get("multi_az") else 1 for d in found.get("aws_db_instance", {}).values()),
        "KMS keys": count("aws_kms_key"),
        "secrets": count("aws_secretsmanager_secret"),
        "file systems": count("aws_efs_file_system"),
    }


@pytest.mark.synth
def test_a_branch_pays_for_its_nodes_and_load_balancer_and_the_base_once_for_the_rest(
        synth: Synth, cheapest: dict[str, Any], branch_base: dict[str, Any]) -> None:
    """The README's cost table, counted from the stacks: NAT gateways and interface endpoints are
    billed per hour (per AZ for an endpoint: AWS PrivateLink pricing), a Managed AD per directory-hour,
    a Multi-AZ database as two instances (RDS User Guide, "Multi-AZ DB instance deployments")."""
    branch = billed_units(cheapest, synth.environments[synth.ephemeral_name].config.nodes.desired_capacity)
    assert branch == {"nodes": 2, "load balancers": 1, "NAT gateways": 0, "interface endpoint-AZs": 0,
                      "directories": 0, "database instances": 0, "KMS keys": 3, "secrets": 4, "file systems": 1}
    assert billed_units(branch_base, 0) == {
        "nodes": 0, "load balancers": 0, "NAT gateways": 1, "interface endpoint-AZs": 12, "directories": 1,
        "database instances": 2, "KMS keys": 2, "secrets": 1, "file systems": 0}
    # A branch with servers of its own (the template without ephemeral.base) is dev's shape: all of it.
    assert billed_units(synth.stack("dev"), 2) == {
        "nodes": 2, "load balancers": 1, "NAT gateways": 1, "interface endpoint-AZs": 12, "directories": 1,
        "database instances": 2, "KMS keys": 3, "secrets": 5, "file systems": 1}


def test_an_environment_naming_a_base_is_never_built_without_it() -> None:
    """The stack builds a branch on `Environment.base` and its user data from the config's names: an
    environment whose config names a base it was not read with would mix the two, so it is refused."""
    from obiam.environments import parse_environment

    template = load_environment(ROOT / "environments" / "ephemeral.yaml", ROOT)
    data = template.config.model_dump(exclude_none=True)
    with pytest.raises(ConfigError) as caught:
        parse_environment("ephemeral", data, "environments/ephemeral.yaml")
    assert caught.value.problems == [
        "environments/ephemeral.yaml: ephemeral.base = 'ephemeral-base', but the branch base read with it is None; "
        "allowed: read the file with load_file, which reads the base it names from beside it"]
    assert parse_environment("ephemeral", data, "environments/ephemeral.yaml", base=template.base).base == template.base
