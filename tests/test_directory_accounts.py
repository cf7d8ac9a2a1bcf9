"""WSO2's own directory accounts: created before the nodes boot, renewed before AD expires them.

The function runs against botocore's Stubber: AWS Managed Microsoft AD and the Directory Service
Data API cannot run here and moto implements neither ds-data nor ResetUserPassword. The Stubber
checks every request against the service's published model (operation names, parameter names
and types), which is what a wrong call would get wrong. Cost: ~0.3 s (no synthesis) plus the
synth-backed checks, which reuse the session's one synthesis.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from conftest import Synth
from obiam import directory_accounts_function as function
from obiam import lambda_package
from tfjson import only, policy_statements, ref, resources

DIRECTORY = "d-9067a1b2c3"
BIND_SECRET = "arn:aws:secretsmanager:eu-west-2:111122223333:secret:obiam/prod/directory-wso2-bind-AbCdEf"
ADMIN_SECRET = "arn:aws:secretsmanager:eu-west-2:111122223333:secret:obiam/prod/directory-admin-GhIjKl"
PASSWORD = "Generated-Passw0rd.:=+_0123456789"


class Clients:
    def __init__(self) -> None:
        session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="eu-west-2")
        self.ds = session.client("ds")
        self.ds_data = session.client("ds-data")
        self.secretsmanager = session.client("secretsmanager")
        self.stubs = [Stubber(self.ds), Stubber(self.ds_data), Stubber(self.secretsmanager)]
        self.ds_stub, self.ds_data_stub, self.secrets_stub = self.stubs

    def secret(self, arn: str, username: str, password: str = PASSWORD) -> None:
        self.secrets_stub.add_response("get_secret_value", {
            "ARN": arn, "SecretString": json.dumps({"username": username, "password": password})},
            {"SecretId": arn})

    def reset(self, username: str, password: str = PASSWORD) -> None:
        self.ds_stub.add_response("reset_user_password", {},
                                  {"DirectoryId": DIRECTORY, "UserName": username, "NewPassword": password})

    def __enter__(self) -> Clients:
        for stub in self.stubs:
            stub.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        for stub in self.stubs:
            stub.deactivate()

    def assert_all_called(self) -> None:
        for stub in self.stubs:
            stub.assert_no_pending_responses()


def event(*accounts: tuple[str, str, bool]) -> dict[str, Any]:
    return {"directory_id": DIRECTORY, "accounts": [
        {"username": u, "secret_arn": s, "create": c} for u, s, c in accounts]}


def test_a_missing_wso2_account_is_created_then_given_its_secrets_password() -> None:
    """Directory Service Data creates users in Managed Microsoft AD once the directory's data access
    is Enabled (AWS Directory Service admin guide, "AWS Directory Service Data"); ResetUserPassword
    sets the password and enables the new user (Directory Service API reference, ResetUserPassword)."""
    clients = Clients()
    clients.ds_stub.add_response("describe_directory_data_access", {"DataAccessStatus": "Disabled"},
                                 {"DirectoryId": DIRECTORY})
    clients.ds_stub.add_response("enable_directory_data_access", {}, {"DirectoryId": DIRECTORY})
    clients.ds_stub.add_response("describe_directory_data_access", {"DataAccessStatus": "Enabled"},
                                 {"DirectoryId": DIRECTORY})
    clients.ds_data_stub.add_client_error("describe_user", service_error_code="ResourceNotFoundException",
                                          http_status_code=404)
    clients.ds_data_stub.add_response("create_user", {"DirectoryId": DIRECTORY, "SAMAccountName": "obiam-wso2-bind"})
    clients.secret(BIND_SECRET, "obiam-wso2-bind")
    clients.reset("obiam-wso2-bind")
    clients.secret(ADMIN_SECRET, "Admin", "Admin-Passw0rd.:=+_0123456789abc")
    clients.reset("Admin", "Admin-Passw0rd.:=+_0123456789abc")
    with clients:
        result = function._run(event(("obiam-wso2-bind", BIND_SECRET, True), ("Admin", ADMIN_SECRET, False)),
                               clients, sleep=lambda _: None)
    clients.assert_all_called()
    assert result == {"directory_id": DIRECTORY, "created": ["obiam-wso2-bind"],
                      "renewed": ["obiam-wso2-bind", "Admin"]}
    assert PASSWORD not in json.dumps(result)


def test_every_run_renews_existing_accounts_without_recreating_them() -> None:
    """AWS Managed Microsoft AD's default policy ends every password after 42 days, the Admin's too;
    a reset starts the age again and skips the history check, so the same value can be set again
    (AWS Directory Service admin guide, "Manage password policies for AWS Managed Microsoft AD")."""
    clients = Clients()
    clients.ds_stub.add_response("describe_directory_data_access", {"DataAccessStatus": "Enabled"},
                                 {"DirectoryId": DIRECTORY})
    clients.ds_data_stub.add_response("describe_user", {"DirectoryId": DIRECTORY, "SAMAccountName": "obiam-wso2-bind"},
                                      {"DirectoryId": DIRECTORY, "SAMAccountName": "obiam-wso2-bind"})
    clients.secret(BIND_SECRET, "obiam-wso2-bind")
    clients.reset("obiam-wso2-bind")
    with clients:
        result = function._run(event(("obiam-wso2-bind", BIND_SECRET, True)), clients, sleep=lambda _: None)
    clients.assert_all_called()
    assert result["created"] == [] and result["renewed"] == ["obiam-wso2-bind"]


def test_simple_ad_only_renews_its_administrator_and_never_calls_the_data_api() -> None:
    """Directory Service Data serves Managed Microsoft AD only; ResetUserPassword also serves Simple AD
    and may reset its administrator (Directory Service API reference, ResetUserPassword)."""
    clients = Clients()
    clients.secret(ADMIN_SECRET, "Administrator")
    clients.reset("Administrator")
    with clients:
        function._run(event(("Administrator", ADMIN_SECRET, False)), clients)
    clients.assert_all_called()


def test_a_secret_for_another_user_stops_the_run_without_showing_a_password() -> None:
    clients = Clients()
    clients.secret(ADMIN_SECRET, "someone-else")
    with clients, pytest.raises(function.DirectoryAccountsError) as error:
        function._run(event(("Admin", ADMIN_SECRET, False)), clients)
    assert ADMIN_SECRET in str(error.value) and "'someone-else'" in str(error.value)
    assert PASSWORD not in str(error.value)


def test_data_access_that_never_turns_on_is_an_error_naming_the_directory() -> None:
    clients = Clients()
    clients.ds_stub.add_response("describe_directory_data_access", {"DataAccessStatus": "Failed"},
                                 {"DirectoryId": DIRECTORY})
    with clients, pytest.raises(function.DirectoryAccountsError, match=f"directory {DIRECTORY}: data access is Failed"):
        function._run(event(("obiam-wso2-bind", BIND_SECRET, True)), clients, sleep=lambda _: None)


def test_the_package_is_the_same_bytes_on_every_build_and_holds_only_the_function() -> None:
    first, second = lambda_package.directory_accounts(), lambda_package.directory_accounts()
    assert first.content == second.content
    with zipfile.ZipFile(io.BytesIO(first.content)) as archive:
        assert archive.namelist() == ["index.py"]
        assert archive.read("index.py") == Path(function.__file__).read_bytes()
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert first.source_code_hash == base64.b64encode(hashlib.sha256(first.content).digest()).decode()


# --- the synthesized stacks ---------------------------------------------------------------------

@pytest.mark.synth
def test_the_function_runs_at_apply_before_the_nodes_and_every_day_after(prod: dict[str, Any]) -> None:
    """The nodes bind with these accounts, so the group waits for the apply-time run; the daily run
    leaves 41 days to fix a failure before AD's 42-day password age ends."""
    (invocation,) = resources(prod, "aws_lambda_invocation")
    assert only(prod, "aws_autoscaling_group")["depends_on"] == [f"aws_lambda_invocation.{invocation}"]
    target = only(prod, "aws_cloudwatch_event_target")
    assert target["input"] == only(prod, "aws_lambda_invocation")["input"]
    assert only(prod, "aws_cloudwatch_event_rule")["schedule_expression"] == "cron(0 12 * * ? *)"
    # The function's permissions exist before its first run.
    (policy,) = [n for n in resources(prod, "aws_iam_role_policy") if n.startswith("directory-accounts_")]
    assert only(prod, "aws_lambda_function")["depends_on"] == [f"aws_iam_role_policy.{policy}"]
    accounts = json.loads(target["input"])["accounts"]
    assert [(a["username"], a["create"]) for a in accounts] == [
        ("obiam-wso2-bind", True), ("obiam-wso2-admin", True), ("Admin", False)]


@pytest.mark.synth
def test_simple_ad_environments_keep_their_administrator_renewed(variants: dict[str, dict[str, Any]]) -> None:
    simple_ad = variants["simple-ad"]
    accounts = json.loads(only(simple_ad, "aws_lambda_invocation")["input"])["accounts"]
    assert [(a["username"], a["create"]) for a in accounts] == [("Administrator", False)]
    permissions = [s for s in policy_statements(simple_ad, "aws_iam_role_policy")
                   if s.get("Sid") == "CreateAccounts"]
    assert permissions == []


@pytest.mark.synth
def test_the_function_may_touch_only_this_directory(prod: dict[str, Any]) -> None:
    directory = ref("aws_directory_service_directory", next(iter(resources(prod, "aws_directory_service_directory"))),
                    "id")
    statements = {s.get("Sid"): s for s in policy_statements(prod, "aws_iam_role_policy")}
    for sid in ("RenewPasswords", "CreateAccounts"):
        assert statements[sid]["Resource"].endswith(f":directory/{directory}")
    assert statements["RenewPasswords"]["Action"] == "ds:ResetUserPassword"


@pytest.mark.synth
def test_the_deployed_package_is_the_one_built_from_this_source(synth: Synth, prod: dict[str, Any]) -> None:
    package = lambda_package.directory_accounts()
    code = only(prod, "aws_lambda_function")
    assert code["source_code_hash"] == package.source_code_hash
    assert code["handler"] == "index.handler" and code["runtime"] == "python3.13"
    # The asset path is relative to the stack's folder, where Terraform runs.
    assert (synth.path("prod").parent / code["filename"]).read_bytes() == package.content
