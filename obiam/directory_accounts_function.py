"""The directory-accounts Lambda function: WSO2's own directory accounts, created and kept valid.

Runs in AWS Lambda (Python 3.13 runtime: standard library and the runtime's boto3 only; packaged
by obiam.lambda_package). Terraform invokes it once at apply, before the nodes boot, and
EventBridge every day after that. For each account in the event it:

1. creates the user if it is missing (`create: true`), through the Directory Service Data API,
   which works only on AWS Managed Microsoft AD and only inside the directory's own OU; it turns
   on the directory's data access first if it is off;
2. resets the user's password to the value in the account's Secrets Manager secret
   (`ds:ResetUserPassword`, Managed Microsoft AD and Simple AD).

Why a daily reset to the same password: AWS Managed Microsoft AD's default domain policy ends
every password (the Admin's included) after 42 days, and an expired bind password takes WSO2's
whole user store down at once. A reset starts the password's age again, and AD checks neither
password history nor minimum age on a reset, so the value the nodes hold stays valid without a
restart (AWS Directory Service admin guide, "Manage password policies for AWS Managed Microsoft
AD"). A reset also enables a disabled user, so an account someone disabled heals on the next run.

The event (built by constructs/wso2_on_aws/directory_accounts.py):
    {"directory_id": "d-...", "accounts": [{"username": "...", "secret_arn": "...", "create": true}]}
A branch environment on a shared directory invokes it through Terraform with lifecycle_scope
CRUD, which adds {"tf": {"action": "create" | "update" | "delete", ...}}: on "delete" it deletes
the accounts it created (ds-data DeleteUser) and renews nothing.
It never logs or returns a password.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3

DATA_ACCESS_WAIT_SECONDS = 120


class DirectoryAccountsError(Exception):
    """A problem the operator must fix; the message names the account and what to do."""


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda's entry point (index.handler)."""
    return _run(event, _Clients())


def _run(event: dict[str, Any], clients: Any, sleep: Any = time.sleep) -> dict[str, Any]:
    """Create missing accounts, then renew every account's password; returns what it did. Invoked
    by a destroy (`tf.action` "delete", a branch environment on a shared directory), delete the
    accounts it created instead."""
    directory_id = event["directory_id"]
    accounts = event["accounts"]
    if (event.get("tf") or {}).get("action") == "delete":
        return _delete(clients.ds_data, directory_id, [a["username"] for a in accounts if a["create"]])
    created: list[str] = []
    if any(account["create"] for account in accounts):
        _ensure_data_access(clients.ds, directory_id, sleep)
    for account in accounts:
        username = account["username"]
        if account["create"] and _ensure_user(clients.ds_data, directory_id, username):
            created.append(username)
        password = _password(clients.secretsmanager, account["secret_arn"], username)
        clients.ds.reset_user_password(DirectoryId=directory_id, UserName=username, NewPassword=password)
    return {"directory_id": directory_id, "created": created, "renewed": [a["username"] for a in accounts]}


class _Clients:
    def __init__(self) -> None:
        self.ds = boto3.client("ds")
        self.secretsmanager = boto3.client("secretsmanager")
        self._ds_data: Any = None

    @property
    def ds_data(self) -> Any:
        if self._ds_data is None:
            self._ds_data = boto3.client("ds-data")
        return self._ds_data


def _ensure_data_access(ds: Any, directory_id: str, sleep: Any) -> None:
    """The Directory Service Data API answers only once the directory's data access is Enabled."""
    status = ds.describe_directory_data_access(DirectoryId=directory_id)["DataAccessStatus"]
    if status == "Disabled":
        ds.enable_directory_data_access(DirectoryId=directory_id)
    waited = 0
    while status != "Enabled":
        if status == "Failed" or waited >= DATA_ACCESS_WAIT_SECONDS:
            raise DirectoryAccountsError(
                f"directory {directory_id}: data access is {status}; the Directory Service Data API is "
                "needed to create WSO2's accounts (Directory Service console: Directory data access)")
        sleep(5)
        waited += 5
        status = ds.describe_directory_data_access(DirectoryId=directory_id)["DataAccessStatus"]


def _ensure_user(ds_data: Any, directory_id: str, username: str) -> bool:
    """True if the user had to be created."""
    try:
        ds_data.describe_user(DirectoryId=directory_id, SAMAccountName=username)
        return False
    except ds_data.exceptions.ResourceNotFoundException:
        pass
    # The client token makes a retried create (Terraform or EventBridge retry) a no-op.
    ds_data.create_user(DirectoryId=directory_id, SAMAccountName=username,
                        Surname="Service", GivenName=username, ClientToken=f"obiam-{directory_id}-{username}"[:128])
    return True


def _delete(ds_data: Any, directory_id: str, usernames: list[str]) -> dict[str, Any]:
    """Deletes the accounts this toolkit created; one already gone counts as deleted, so a retried
    destroy succeeds. Never the directory's own admin (it is not `create`)."""
    deleted = []
    for username in usernames:
        try:
            ds_data.delete_user(DirectoryId=directory_id, SAMAccountName=username)
            deleted.append(username)
        except ds_data.exceptions.ResourceNotFoundException:
            pass
    return {"directory_id": directory_id, "deleted": deleted}


def _password(secretsmanager: Any, secret_arn: str, username: str) -> str:
    document = json.loads(secretsmanager.get_secret_value(SecretId=secret_arn)["SecretString"])
    if document.get("username") != username or not document.get("password"):
        raise DirectoryAccountsError(
            f"secret {secret_arn} must hold the password of {username}; it names "
            f"{document.get('username')!r} (the secret belongs to this stack: re-apply it)")
    return str(document["password"])
