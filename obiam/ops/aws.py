"""boto3 sessions for the operations commands, and AWS errors as one readable line.

boto3 reads the standard AWS environment (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...,
AWS_ENDPOINT_URL for any AWS-compatible endpoint), so nothing here re-implements it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.parsers import ResponseParserError

T = TypeVar("T")

# Codes that mean "you may not", not "it is not there": the command cannot judge, so it stops.
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException",
          "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "AuthFailure",
          "InvalidAccessKeyId", "SignatureDoesNotMatch"}
_RETRIES = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)


class OpsError(Exception):
    """A reason the command cannot run at all (credentials, permissions, endpoint); exit code 2."""


def session(region: str) -> boto3.session.Session:
    return boto3.session.Session(region_name=region)


def client(aws: boto3.session.Session, service: str, region: str | None = None) -> Any:
    return aws.client(service, region_name=region or aws.region_name, config=_RETRIES)


def require_account(aws: boto3.session.Session, account_id: str, source: str) -> str:
    """The credentials' account, if it is the environment's (account.id); else the command stops.

    The same rule as the provider's `allowed_account_ids`, so a read-only check cannot report on
    (or bootstrap-state create a bucket in) an account the environment does not own."""
    found = str(client(aws, "sts").get_caller_identity()["Account"])
    if found != account_id:
        raise OpsError(f"the AWS credentials in use belong to account {found}, but {source} allows only account "
                       f"{account_id} (account.id); use credentials for that account (e.g. its AWS_PROFILE)")
    return found


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextmanager
def translated_errors() -> Iterator[None]:
    """Turns credential, permission and connection failures into one-line OpsErrors."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        raise OpsError("no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                       "or run where an instance or OIDC role provides them") from None
    except NoRegionError:
        raise OpsError("no AWS region: pass --region or set region in the environment file") from None
    except EndpointConnectionError as error:
        raise OpsError(f"cannot reach the AWS endpoint {error.kwargs.get('endpoint_url', '')}: check network "
                       "access, the region, and AWS_ENDPOINT_URL if set") from None
    except ClientError as error:
        code = error_code(error)
        message = error.response.get("Error", {}).get("Message", "")
        operation = error.operation_name
        if code in DENIED:
            raise OpsError(f"AWS refused {operation} ({code}): {message}; the command needs read access to this "
                           "environment's resources") from None
        raise OpsError(f"{operation} failed ({code}): {message}") from None
    except BotoCoreError as error:
        raise OpsError(f"AWS call failed: {error}") from None
    except ResponseParserError as error:
        raise OpsError(f"the endpoint's answer could not be read as AWS's ({error.__class__.__name__}); check "
                       "AWS_ENDPOINT_URL if set") from None


def lookup(call: Callable[[], T], *, missing: set[str]) -> T | None:
    """The call's result, or None when AWS says the thing does not exist (one of `missing`)."""
    try:
        return call()
    except ClientError as error:
        if error_code(error) in missing:
            return None
        raise
