"""Account, partition and region of the stack, read once and passed to every construct."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from constructs import Construct


@dataclass(frozen=True)
class AccountContext:
    account_id: str
    partition: str
    region: str


def account_context(scope: Construct, region: str) -> AccountContext:
    """Tokens for the deploying account and partition; the region comes from config, not a lookup."""
    identity = DataAwsCallerIdentity(scope, "caller")
    partition = DataAwsPartition(scope, "partition")
    return AccountContext(account_id=identity.account_id, partition=partition.partition, region=region)
