"""Names and tags every environment's resources carry.

The stack sets them and `obiam verify` / `obiam reap` find resources by them, so
both sides call these functions instead of spelling names twice.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

PROJECT = "wso2-ob-iam"
MANAGED_BY = "cdktf"
# Hazelcast's AWS discovery finds cluster members by this instance tag.
CLUSTER_TAG_KEY = "obiam:cluster"
EPHEMERAL_TAG_KEY = "obiam:ephemeral"
EXPIRES_AT_TAG_KEY = "ExpiresAt"
BRANCH_TAG_KEY = "Branch"
# Set by `obiam keep`, outside Terraform (the provider ignores it, so an apply never removes it).
KEEP_UNTIL_TAG_KEY = "obiam:keep-until"
STANDARD_TAG_KEYS = ("Project", "Environment", "Owner", "CostCenter", "ManagedBy")
# Keys the toolkit sets itself and looks resources up by; config may not set them as extra tags.
RESERVED_TAG_KEYS = (*STANDARD_TAG_KEYS, BRANCH_TAG_KEY, EXPIRES_AT_TAG_KEY, CLUSTER_TAG_KEY, EPHEMERAL_TAG_KEY,
                     KEEP_UNTIL_TAG_KEY)


# AWS allows 50 user tags per resource (Tagging AWS Resources, "Tag naming limits and requirements").
# The toolkit puts up to TOOLKIT_TAGS on one resource: the five standard tags, Name, obiam:cluster and
# obiam:runtime-config-version, and on per-branch stacks obiam:ephemeral, Branch and ExpiresAt
# (tests/test_stack_foundation.py checks the synthesized stacks against it).
MAX_TAGS_PER_RESOURCE = 50
TOOLKIT_TAGS = 11

# AWS tag values: at most 256 Unicode characters from letters (\p{L}), separators (\p{Z}), digits
# (\p{N}) and these; no `aws:` prefix (EFS API Reference, "Tag" data type: pattern
# ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$; Tagging AWS Resources, "Tag naming limits and requirements").
TAG_VALUE_MAX_LENGTH = 256
TAG_VALUE_SYMBOLS = "_.:/=+-@"
TAG_VALUE_ALLOWED = (f"at most {TAG_VALUE_MAX_LENGTH} letters, digits, spaces and {' '.join(TAG_VALUE_SYMBOLS)}, "
                     "not starting with aws:")


def tag_value_problem(value: str) -> str | None:
    """What makes `value` a tag value AWS refuses, or None when it is a valid one."""
    if len(value) > TAG_VALUE_MAX_LENGTH:
        return f"{len(value)} characters"
    for character in value:
        if character not in TAG_VALUE_SYMBOLS and unicodedata.category(character)[0] not in "LZN":
            return f"character {character!r} (U+{ord(character):04X})"
    if value.lower().startswith("aws:"):
        return "the aws: prefix, which AWS keeps for itself"
    return None


@dataclass(frozen=True)
class Names:
    """Resource names for one environment; `prefix` is at most 26 characters."""

    environment: str

    @property
    def prefix(self) -> str:
        return f"obiam-{self.environment}"

    @property
    def load_balancer(self) -> str:
        return self.prefix

    @property
    def target_group(self) -> str:
        return f"{self.prefix}-nodes"

    @property
    def autoscaling_group(self) -> str:
        return f"{self.prefix}-nodes"

    @property
    def launch_template(self) -> str:
        return f"{self.prefix}-nodes"

    @property
    def node_security_group(self) -> str:
        return f"{self.prefix}-nodes"

    @property
    def alb_security_group(self) -> str:
        return f"{self.prefix}-alb"

    @property
    def node_role(self) -> str:
        return f"{self.prefix}-node"

    @property
    def db_instance(self) -> str:
        return f"{self.prefix}-db"

    @property
    def artifact_file_system(self) -> str:
        return f"{self.prefix}-artifacts"

    @property
    def runtime_parameter(self) -> str:
        return f"/obiam/{self.environment}/node-runtime"

    @property
    def directory_secret(self) -> str:
        return f"obiam/{self.environment}/directory-admin"

    @property
    def directory_bind_secret(self) -> str:
        return f"obiam/{self.environment}/directory-wso2-bind"

    @property
    def super_admin_secret(self) -> str:
        return f"obiam/{self.environment}/wso2-super-admin"

    @property
    def directory_accounts_function(self) -> str:
        return f"{self.prefix}-directory-accounts"

    @property
    def branch_databases_function(self) -> str:
        """A branch base's function that creates and drops each branch's databases."""
        return f"{self.prefix}-branch-databases"

    @property
    def wso2_db_secret(self) -> str:
        return f"obiam/{self.environment}/wso2-database-user"

    @property
    def node_secret(self) -> str:
        return f"obiam/{self.environment}/wso2-node"

    @property
    def log_group_prefix(self) -> str:
        return f"/obiam/{self.environment}"

    def log_group(self, kind: str) -> str:
        """CloudWatch log group for one kind of log: bootstrap, carbon, audit, http-access, vpc-flow-logs, ..."""
        return f"{self.log_group_prefix}/{kind}"

    @property
    def directory_log_group(self) -> str:
        # Directory Service forwards security logs only to groups under /aws/directoryservice/.
        return f"/aws/directoryservice/{self.prefix}"

    @property
    def directory_log_policy(self) -> str:
        # The CloudWatch Logs resource policy that lets Directory Service write to that group.
        return f"{self.prefix}-directory-logs"

    def key_alias(self, concern: str) -> str:
        """The KMS alias (without `alias/`) of the key for one concern: data, logs, ebs."""
        return f"{self.prefix}-{concern}"

    def access_log_bucket(self, account_id: str) -> str:
        # S3 bucket names are global: the account id keeps two accounts' environments of one name apart.
        return f"{self.prefix}-alb-logs-{account_id}"

    @property
    def waf_log_group(self) -> str:
        # WAF delivers logs only to groups whose name starts with aws-waf-logs-.
        return f"aws-waf-logs-{self.prefix}"

    @property
    def backup_vault(self) -> str:
        # The same name in the environment's region and in its backup copy region (vault names are regional).
        return f"{self.prefix}-backups"

    @property
    def backup_role(self) -> str:
        return f"{self.prefix}-backup"

    @property
    def cluster_tag_value(self) -> str:
        return self.prefix

    def state_key(self, key_prefix: str) -> str:
        return f"{key_prefix}/{self.environment}/terraform.tfstate"


def published_parameter(base_name: str) -> str:
    """The SSM parameter a branch base publishes its outputs in (stacks/branch_base_stack.py)."""
    return f"/obiam/{base_name}/branch-base"


def default_tags(*, environment: str, owner: str, cost_center: str, extra: Mapping[str, str],
                 branch: str | None = None, expires_at: str | None = None) -> dict[str, str]:
    """Tags the AWS provider puts on every resource of the environment (`Environment.default_tags`)."""
    tags = {
        "Project": PROJECT,
        "Environment": environment,
        "Owner": owner,
        "CostCenter": cost_center,
        "ManagedBy": MANAGED_BY,
    }
    if branch is not None:
        tags[EPHEMERAL_TAG_KEY] = "true"
        tags[BRANCH_TAG_KEY] = branch
    if expires_at is not None:
        tags[EXPIRES_AT_TAG_KEY] = expires_at
    # Extra tags may add to the set but never rename what tools look resources up by.
    return {**extra, **tags}
