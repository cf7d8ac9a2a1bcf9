"""What every stack of the toolkit starts with: the providers, pinned, and the S3 state backend.

An environment's stack and a branch base's stack both call it, so the account guard, the tags and
the state layout can never differ between them.
"""

from __future__ import annotations

from cdktf import S3Backend, TerraformStack
from cdktf_cdktf_provider_aws.provider import (
    AwsProvider,
    AwsProviderAssumeRole,
    AwsProviderDefaultTags,
    AwsProviderIgnoreTags,
)
from cdktf_cdktf_provider_random.provider import RandomProvider

from obiam.config import AccountConfig, RemoteStateConfig
from obiam.naming import KEEP_UNTIL_TAG_KEY

# Fully-qualified sources, so Terraform and OpenTofu resolve the same providers. The
# exact versions come from the prebuilt bindings pinned in pyproject.toml.
PROVIDER_SOURCES = {"aws": "hashicorp/aws", "random": "hashicorp/random"}
# S3-native state locking (`use_lockfile`) needs Terraform >= 1.10 or OpenTofu >= 1.10.
REQUIRED_VERSION = ">= 1.10.0"


def configure(stack: TerraformStack, *, name: str, account: AccountConfig, region: str,
              default_tags: dict[str, str], state: RemoteStateConfig, state_region: str, state_key: str) -> None:
    # The provider checks the account of the credentials it ends up with (after assume_role)
    # before it touches anything: a plan with staging's credentials for prod stops there.
    role = account.assume_role_arn
    AwsProvider(stack, "aws", region=region, allowed_account_ids=[account.id],
                assume_role=[AwsProviderAssumeRole(role_arn=role, session_name=f"obiam-{name}")] if role else None,
                default_tags=[AwsProviderDefaultTags(tags=default_tags)],
                # `obiam keep` sets it outside Terraform; an apply must not take it away again.
                ignore_tags=[AwsProviderIgnoreTags(keys=[KEEP_UNTIL_TAG_KEY])])
    RandomProvider(stack, "random")
    S3Backend(
        stack,
        bucket=state.bucket,
        key=state_key,
        region=state_region,
        encrypt=True,
        kms_key_id=state.kms_key_id,
        dynamodb_table=state.dynamodb_table if state.lock == "dynamodb" else None,
    )
    if state.lock == "s3_lockfile":
        # cdktf 0.21's S3Backend predates the argument; Terraform 1.10+ reads it from the JSON.
        stack.add_override("terraform.backend.s3.use_lockfile", True)
    for provider, source in PROVIDER_SOURCES.items():
        stack.add_override(f"terraform.required_providers.{provider}.source", source)
    stack.add_override("terraform.required_version", REQUIRED_VERSION)
