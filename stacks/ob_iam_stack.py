"""The WSO2 OB IAM deployment of one environment, composed from its config."""

from __future__ import annotations

from cdktf import S3Backend, TerraformStack
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct

from obiam.environments import Environment
from obiam.naming import Names, default_tags

# Fully-qualified sources, so Terraform and OpenTofu resolve the same providers. The
# exact versions come from the prebuilt bindings pinned in pyproject.toml.
PROVIDER_SOURCES = {"aws": "hashicorp/aws"}
# S3-native state locking (`use_lockfile`) needs Terraform >= 1.10 or OpenTofu >= 1.10.
REQUIRED_VERSION = ">= 1.10.0"


class ObIamStack(TerraformStack):
    def __init__(self, scope: Construct, environment: Environment):
        super().__init__(scope, environment.name)
        self.environment = environment
        self.names = Names(environment.name)
        config = environment.config

        AwsProvider(self, "aws", region=config.region,
                    default_tags=[AwsProviderDefaultTags(tags=default_tags(environment))])
        self._remote_state()
        for name, source in PROVIDER_SOURCES.items():
            self.add_override(f"terraform.required_providers.{name}.source", source)
        self.add_override("terraform.required_version", REQUIRED_VERSION)

    def _remote_state(self) -> None:
        state = self.environment.config.state
        S3Backend(
            self,
            bucket=state.bucket,
            key=self.names.state_key(state.key_prefix),
            region=self.environment.config.state_region,
            encrypt=True,
            kms_key_id=state.kms_key_id,
            dynamodb_table=state.dynamodb_table if state.lock == "dynamodb" else None,
        )
        if state.lock == "s3_lockfile":
            # cdktf 0.21's S3Backend predates the argument; Terraform 1.10+ reads it from the JSON.
            self.add_override("terraform.backend.s3.use_lockfile", True)
