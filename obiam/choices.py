"""The closed sets of choices, shared by the config (which validates them) and the constructs (whose props
take them): one `Literal` per choice, so a value that config accepts and a construct does not is a type
error (mypy strict covers obiam/, constructs/wso2_on_aws and stacks/)."""

from __future__ import annotations

from typing import Literal

NatGateways = Literal["per_az", "single"]
MembershipScheme = Literal["wka", "aws"]
ScalingMetric = Literal["cpu", "requests_per_target"]
MetadataHttpTokens = Literal["required", "optional"]
StickinessType = Literal["app_cookie", "lb_cookie"]
MutualAuthenticationMode = Literal["off", "passthrough"]
WafMode = Literal["block", "count"]
DirectoryType = Literal["MicrosoftAD", "SimpleAD"]
DirectoryEdition = Literal["Standard", "Enterprise"]
DirectorySize = Literal["Small", "Large"]
StateLock = Literal["s3_lockfile", "dynamodb"]
VaultLockMode = Literal["governance", "compliance"]
BackupLock = Literal["none", VaultLockMode]
# RDS CreateDBInstance EngineLifecycleSupport (MySQL and PostgreSQL); obiam/database_engines.py names them.
EngineLifecycleSupport = Literal["open-source-rds-extended-support", "open-source-rds-extended-support-disabled"]
