"""Typed, validated environment configuration: `environments/<name>.yaml`.

Every field has a production-grade default, so a minimal file names only what
cannot be guessed (hostname, certificate, product pack, state bucket, owner).
Non-production files opt out of protections explicitly, which keeps the
difference from prod visible in review. Unknown keys are errors: a typo must
never silently fall back to a default.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from obiam import database_engines, directory_service, instance_types, tier_policy, wso2
from obiam.choices import (
    BackupLock,
    DirectoryEdition,
    DirectorySize,
    DirectoryType,
    EngineLifecycleSupport,
    MembershipScheme,
    MetadataHttpTokens,
    MutualAuthenticationMode,
    NatGateways,
    ScalingMetric,
    StateLock,
    StickinessType,
    WafMode,
)
from obiam.config_values import (
    ACCOUNT_ID,
    ACM_ARN,
    AMI_ID,
    DB_CLASS,
    DOMAIN,
    DYNAMODB_TABLE,
    ENVIRONMENT_NAME,
    HOSTED_ZONE_ID,
    HOSTNAME,
    JDK,
    KEY_PREFIX,
    KMS_KEY_ARN,
    NETBIOS,
    PARAMETER_NAME,
    ROLE_ARN,
    SHA256,
    VPC_ID,
    Cidr,
    Region,
    RuleViolations,
    SubnetId,
    TagValue,
    Violation,
    check,
    s3_uri,
    valid_bucket,
    valid_vpc_cidr,
    valid_vpc_cidr_pool,
)
from obiam.naming import (
    MAX_TAGS_PER_RESOURCE,
    RESERVED_TAG_KEYS,
    TOOLKIT_TAGS,
)
from obiam.tier_policy import TIERS
from obiam.wso2 import DEFAULT_JDK, KNOWN_BAD_JDKS, PRODUCT_JDKS

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)

# ALB policies that offer only TLS 1.2+ with forward-secret AES-GCM suites, which is
# what FAPI 1.0 Advanced (section 8.5) asks of an Open Banking authorization server.
FAPI_SSL_POLICIES = (
    "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
    "ELBSecurityPolicy-FS-1-2-Res-2020-10",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04",
)


DEFAULT_VPC_CIDR = "10.40.0.0/16"
DEFAULT_AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"

class Model(BaseModel):
    # strict: YAML's `8.0` (a float) or `off` (a bool) must not quietly become a string.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ExistingVpc(Model):
    vpc_id: Annotated[str, check(VPC_ID, "a VPC id such as vpc-0123456789abcdef0")]
    public_subnet_ids: list[SubnetId]
    app_subnet_ids: list[SubnetId]
    data_subnet_ids: list[SubnetId]


class NetworkConfig(Model):
    # For a new VPC only (default DEFAULT_VPC_CIDR); an existing VPC brings its own range.
    vpc_cidr: Annotated[str, AfterValidator(valid_vpc_cidr)] | None = None
    existing_vpc: ExistingVpc | None = None
    # One NAT gateway per AZ keeps egress (JDK/pack download, AWS APIs) alive when an AZ fails.
    nat_gateways: NatGateways = "per_az"
    flow_logs: bool = True

    @model_validator(mode="after")
    def _one_vpc(self) -> NetworkConfig:
        problems: list[Violation] = []
        if self.vpc_cidr is not None and self.existing_vpc is not None:
            problems.append((("vpc_cidr",), self.vpc_cidr,
                             "is for a new VPC, and existing_vpc is given too (the stack would use the existing "
                             "VPC's own range and ignore it); allowed: one of vpc_cidr or existing_vpc"))
        if self.existing_vpc is not None:
            seen: dict[str, str] = {}
            for field in ("public_subnet_ids", "app_subnet_ids", "data_subnet_ids"):
                for subnet in getattr(self.existing_vpc, field):
                    other = seen.setdefault(subnet, field)
                    if other != field:
                        problems.append((("existing_vpc", field), subnet,
                                         f"is also in existing_vpc.{other}; allowed: subnets of one tier each (the "
                                         "tiers' routes and security groups keep them apart)"))
        if problems:
            raise RuleViolations(problems)
        return self

    @property
    def cidr(self) -> str:
        """The new VPC's range (unused with existing_vpc)."""
        return self.vpc_cidr or DEFAULT_VPC_CIDR


class AmiConfig(Model):
    """The node image. Pinned (`id`), a new Amazon Linux image reaches the nodes only through a reviewed
    change of this line: `obiam ami latest --env ENV` prints the newest image of `ssm_parameter` and the
    line to write. `floating: true` instead resolves `ssm_parameter` at every plan, so every image AWS
    publishes makes a new launch template version on the next apply, whatever that apply was for."""

    id: Annotated[str, check(AMI_ID, "an AMI id such as ami-0123456789abcdef0")] | None = None
    floating: bool = False
    # Where newer images are published (Amazon Linux 2023's public parameter by default).
    ssm_parameter: Annotated[str, check(PARAMETER_NAME, "an SSM parameter name starting with /")] = (
        DEFAULT_AMI_PARAMETER)

    @model_validator(mode="after")
    def _pinned_or_floating_on_purpose(self) -> AmiConfig:
        if self.id is not None and self.floating:
            raise RuleViolations([(("floating",), True, "a pinned id never floats; remove one of id or floating")])
        if self.id is None and not self.floating:
            raise RuleViolations([(("id",), None, AMI_UNPINNED)])
        return self


AMI_UNPINNED = ("required: pin the node image (`obiam ami latest --env <env>` prints the newest and the line to "
                "write), or set floating: true to take the newest image at every plan")


class ClusteringConfig(Model):
    # wka: each node lists the running cluster members through the EC2 API (IMDSv2) when
    # WSO2 starts. aws: Hazelcast's own AWS discovery, which in OB 3.0's kernel needs IMDSv1.
    membership_scheme: MembershipScheme = "wka"
    # WSO2's AWS clustering examples use 5701 (Hazelcast's range 5701-5800).
    local_member_port: Annotated[int, Field(ge=1024, le=65535)] = 5701


class ApiManagerConfig(Model):
    """The OB API Manager this Key Manager serves: the accelerator's token-revocation notifier and
    its consent, DCR and portal links point at it (financial-open-banking 3.0.0 ob-is toml)."""

    hostname: Annotated[str, check(HOSTNAME, "a lower-case DNS name such as apim.bank.example.com")]
    # API Manager 4.0's defaults: management (internal data service) and gateway HTTPS ports.
    management_port: Annotated[int, Field(ge=1, le=65535)] = 9443
    gateway_port: Annotated[int, Field(ge=1, le=65535)] = 8243


class ProductConfig(Model):
    version: Literal[tuple(PRODUCT_JDKS)] = "3.0.0"  # type: ignore[valid-type]
    pack_s3_uri: Annotated[str, s3_uri("s3://<bucket>/<key>, the WSO2 OB IAM pack (.zip)")]
    # The pack, pinned: preflight checks the S3 object against it and every node refuses a pack with
    # another hash before unpacking it. `obiam pack build` and `obiam pack upload` print it.
    pack_sha256: Annotated[str, check(SHA256, "the pack's SHA-256 as 64 lower-case hex digits, as "
                                       "`obiam pack build` prints it")]
    # OB IAM packs ship with `[server] offset = 3`, so the HTTPS servlet port is 9443 + 3.
    port_offset: Annotated[int, Field(ge=0, le=1000)] = 3
    clustering: ClusteringConfig = ClusteringConfig()
    api_manager: ApiManagerConfig

    @model_validator(mode="after")
    def _pack_is_a_zip(self) -> ProductConfig:
        if not self.pack_s3_uri.endswith(".zip"):
            raise RuleViolations([(("pack_s3_uri",), self.pack_s3_uri,
                                   "allowed: the WSO2 product pack as a .zip object")])
        return self

    @property
    def https_port(self) -> int:
        return wso2.HTTPS_SERVLET_PORT + self.port_offset


class ScalingConfig(Model):
    metric: ScalingMetric = "cpu"
    target_value: Annotated[int, Field(ge=1, le=100_000)] = 60


class NodesConfig(Model):
    instance_type: str = "m6i.large"
    min_size: Annotated[int, Field(ge=1, le=50)] = 2
    desired_capacity: Annotated[int, Field(ge=1, le=50)] = 2
    max_size: Annotated[int, Field(ge=1, le=50)] = 4
    root_volume_size: Annotated[int, Field(le=1024)] = 20
    jvm_heap_mib: int = 2048
    jdk: str | None = None
    ami: AmiConfig | None = None
    # WSO2 OB IAM takes minutes to start (pack unzip, DB migrations, Hazelcast join).
    health_check_grace_period: Annotated[int, Field(ge=600, le=7200)] = 900
    instance_refresh_min_healthy_percentage: Annotated[int, Field(ge=50, le=100)] = 100
    scaling: ScalingConfig = ScalingConfig()
    # IMDSv2 only: a server-side request forgery cannot read the instance role's credentials.
    metadata_http_tokens: MetadataHttpTokens = "required"

    @model_validator(mode="after")
    def _sized_for_wso2(self) -> NodesConfig:
        problems: list[Violation] = []
        memory = instance_types.memory_mib(self.instance_type)
        if memory is None:
            problems.append((("instance_type",), self.instance_type,
                             f"unknown instance type; allowed: {instance_types.describe_known_types()}"))
        elif memory < instance_types.MIN_NODE_MEMORY_MIB:
            problems.append((("instance_type",), self.instance_type,
                             f"has {memory / 1024:g} GiB of memory; WSO2 needs at least 4 GiB per node "
                             "(2 GiB JVM heap + 2 GiB OS), e.g. t3.medium, m6i.large"))
        if self.root_volume_size < 10:
            problems.append((("root_volume_size",), self.root_volume_size,
                             "allowed: at least 10 GiB (WSO2's minimum disk per node)"))
        if self.jvm_heap_mib < instance_types.MIN_HEAP_MIB:
            problems.append((("jvm_heap_mib",), self.jvm_heap_mib,
                             "allowed: at least 2048 MiB (WSO2 asks for a 2 GB JVM heap)"))
        elif (memory is not None and memory >= instance_types.MIN_NODE_MEMORY_MIB
              and memory - self.jvm_heap_mib < instance_types.MIN_OS_MEMORY_MIB):
            problems.append((("jvm_heap_mib",), self.jvm_heap_mib,
                             f"leaves {memory - self.jvm_heap_mib} MiB of the {memory} MiB of "
                             f"{self.instance_type} to the OS; WSO2 asks for 2048 MiB, so the heap may be at "
                             f"most {memory - instance_types.MIN_OS_MEMORY_MIB} MiB"))
        if self.min_size > self.max_size:
            problems.append((("min_size",), self.min_size, f"must not exceed max_size ({self.max_size})"))
        elif not self.min_size <= self.desired_capacity <= self.max_size:
            problems.append((("desired_capacity",), self.desired_capacity,
                             f"allowed: between min_size ({self.min_size}) and max_size ({self.max_size})"))
        if self.jdk is not None:
            problems.extend(_jdk_problems(self.jdk))

        if problems:
            raise RuleViolations(problems)
        return self

    @property
    def memory_mib(self) -> int:
        return instance_types.MEMORY_MIB[self.instance_type]


def _jdk_problems(jdk: str) -> list[Violation]:
    if jdk in KNOWN_BAD_JDKS or jdk in ("8u151", "1.8.0-151"):
        return [(("jdk",), jdk, "WSO2's deployment guide names a known issue with JDK 1.8.0_151; "
                               "use another update, e.g. 1.8.0_402, or just 8 for the newest")]
    if not JDK.match(jdk):
        return [(("jdk",), jdk, "allowed: a JDK major (8, 11, 17) or a full version such as 1.8.0_402 or 11.0.25")]
    return []


def jdk_major(jdk: str) -> int:
    match = JDK.match(jdk)
    if match is None:
        raise ValueError(f"not a JDK version: {jdk!r}")
    return 8 if match["major"] in ("1.8", "8") else int(match["major"])


class StickinessConfig(Model):
    # WSO2's load balancer examples stick on the application's JSESSIONID (NGINX `sticky learn`).
    type: StickinessType = "app_cookie"
    cookie_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")] = "JSESSIONID"
    cookie_duration: Annotated[int, Field(ge=1, le=604800)] = 86400


class MutualTlsConfig(Model):
    # passthrough: the ALB forwards the client certificate chain in X-Amzn-Mtls-Clientcert, URL-
    # encoded with `+`, `=` and `/` left as they are. WSO2 OB 3.0 cannot read that header (see
    # _passthrough_is_unreadable), so it is refused until the toolkit offers TLS passthrough to WSO2.
    mode: MutualAuthenticationMode = "off"

    @model_validator(mode="after")
    def _passthrough_is_unreadable(self) -> MutualTlsConfig:
        if self.mode == "passthrough":
            raise RuleViolations([(("mode",), "passthrough",
                                   "WSO2 OB 3.0 cannot read the certificate the ALB forwards: its TokenFilter "
                                   "URL-decodes X-Amzn-Mtls-Clientcert with Java's URLDecoder, which turns the '+' "
                                   "the ALB leaves unencoded into a space that its CertificateUtils then deletes, "
                                   "so the base64 certificate is corrupted; certificate-bound tokens need TLS "
                                   "passthrough to WSO2, which the toolkit does not build yet; use off")])
        return self


class LoadBalancerConfig(Model):
    hostname: Annotated[str, check(HOSTNAME, "a lower-case DNS name such as iam.bank.example.com")]
    certificate_arn: Annotated[str, check(ACM_ARN, "an ACM certificate ARN, "
                                           "arn:aws:acm:<region>:<account>:certificate/<uuid>")]
    # A Route 53 hosted zone for `hostname`: the stack then owns the alias record to the load balancer
    # (and a destroy removes it). Unset: point the name at the `alb_dns_name` output yourself.
    hosted_zone_id: Annotated[str, check(HOSTED_ZONE_ID, "a Route 53 hosted zone id such as "
                                         "Z0123456789ABCDEFGHIJ")] | None = None
    internal: bool = False
    ssl_policy: Literal[FAPI_SSL_POLICIES] = FAPI_SSL_POLICIES[0]  # type: ignore[valid-type]
    ingress_cidrs: Annotated[list[Cidr], Field(min_length=1)] = ["0.0.0.0/0"]
    stickiness: StickinessConfig = StickinessConfig()
    mutual_authentication: MutualTlsConfig = MutualTlsConfig()
    deregistration_delay: Annotated[int, Field(ge=0, le=3600)] = 60
    idle_timeout: Annotated[int, Field(ge=1, le=4000)] = 60
    access_logs: bool = True
    waf: bool = True
    # Requests per client IP per 5 minutes before the WAF blocks it (login and token brute force).
    waf_rate_limit: Annotated[int, Field(ge=100, le=2_000_000_000)] = 2000
    # Tor exits, VPNs and open proxies; false lets them through (counted, not blocked).
    waf_block_anonymous_ips: bool = True
    # count: every rule only counts (metrics and WAF logs show what it would block), to find false
    # positives on OAuth/FAPI traffic (JWT request objects, client assertions) before blocking.
    # Production blocks.
    waf_mode: WafMode = "block"


class DatabaseConfig(Model):
    engine: Literal[tuple(database_engines.ENGINES)] = "mysql"  # type: ignore[valid-type]
    engine_version: str | None = None
    instance_class: Annotated[str, check(DB_CLASS, "an RDS class such as db.m6i.large")] = "db.m6i.large"
    allocated_storage: Annotated[int, Field(ge=20, le=65536)] = 100
    max_allocated_storage: Annotated[int, Field(ge=20, le=65536)] = 500
    backup_retention_period: Annotated[int, Field(ge=1, le=35)] = 14
    performance_insights: bool = True
    monitoring_interval: Literal[0, 1, 5, 10, 15, 30, 60] = 60
    # IS 5.11 ships the H2 driver only: the engine's driver comes in the pack (`obiam pack build
    # --jdbc-driver`; the node refuses to boot without it). Only for a pack without it: a jar in S3,
    # which the node adds to the pack's components/lib.
    jdbc_driver_s3_uri: Annotated[str, s3_uri("s3://<bucket>/<key>.jar")] | None = None
    # MySQL and PostgreSQL only: what RDS does when the major leaves standard support. Extended
    # Support keeps the version (billed per vCPU-hour); disabled means RDS upgrades the major itself.
    # Set at create only. Production states it; a major already past standard support needs extended.
    engine_lifecycle_support: EngineLifecycleSupport | None = None
    # A restored database keeps the key of what it was restored from (RDS restores take no KmsKeyId):
    # name that key here so the stack adopts the instance (`terraform import`) instead of replacing it.
    restored_kms_key_arn: Annotated[str, check(KMS_KEY_ARN, "a KMS key ARN such as arn:aws:kms:eu-west-2:"
                                               "111111111111:key/<uuid>")] | None = None

    @model_validator(mode="after")
    def _version_and_storage(self) -> DatabaseConfig:
        problems: list[Violation] = []
        engine = database_engines.ENGINES[self.engine]
        if self.engine_version is not None and engine.major_of(self.engine_version) is None:
            problems.append((("engine_version",), self.engine_version,
                             f"allowed for {self.engine}: {', '.join(engine.versions)}, or a full RDS version of "
                             f"one such as {engine.example}"))
        if self.max_allocated_storage < self.allocated_storage:
            problems.append((("max_allocated_storage",), self.max_allocated_storage,
                             f"must be at least allocated_storage ({self.allocated_storage})"))
        if self.jdbc_driver_s3_uri is not None and not self.jdbc_driver_s3_uri.endswith(".jar"):
            problems.append((("jdbc_driver_s3_uri",), self.jdbc_driver_s3_uri, "allowed: a .jar object"))
        problems.extend(self._lifecycle_problems(engine))
        if problems:
            raise RuleViolations(problems)
        return self

    def _lifecycle_problems(self, engine: database_engines.DatabaseEngine) -> list[Violation]:
        choice = self.engine_lifecycle_support
        if not engine.lifecycle_choice_applies:
            return [] if choice is None else [(("engine_lifecycle_support",), choice,
                                               "applies to RDS for MySQL and PostgreSQL only; remove it")]
        major = engine.major_of(self.version)
        ends = engine.standard_support_ends.get(major or "")
        if ends is None or ends > database_engines.today() or choice == database_engines.EXTENDED_SUPPORT:
            return []
        consequence = ("RDS refuses to create it" if choice == database_engines.EXTENDED_SUPPORT_DISABLED
                       else "a new instance is enrolled in paid RDS Extended Support without anyone deciding it")
        return [(("engine_lifecycle_support",), choice,
                 f"{self.engine} {major} left RDS standard support on {ends.isoformat()}, so {consequence}; allowed: "
                 f"{database_engines.EXTENDED_SUPPORT} (the decision to pay for it) or a newer engine_version")]

    @property
    def version(self) -> str:
        return self.engine_version or database_engines.ENGINES[self.engine].default_version

    @property
    def port(self) -> int:
        return database_engines.ENGINES[self.engine].port


class DirectoryConfig(Model):
    type: DirectoryType = "MicrosoftAD"
    edition: DirectoryEdition | None = None
    size: DirectorySize | None = None
    name: Annotated[str, check(DOMAIN, "a fully qualified domain name such as corp.obiam.internal")] = (
        "corp.obiam.internal")
    short_name: Annotated[str, check(NETBIOS, "a NetBIOS name of 1-15 letters, digits and -")] | None = None
    # LDAPS (636) would make the WSO2 user store read-write (AD takes password writes only over an
    # encrypted connection). It needs server-side LDAPS in Managed Microsoft AD (a certificate
    # authority in the domain), that CA in WSO2's client-truststore.jks and the directory's DNS name
    # resolvable from the nodes (the DCs' certificates name the domain, not their addresses); the
    # toolkit does not build the last two yet, so only false is accepted and the store is read-only.
    ldaps: bool = False

    @model_validator(mode="after")
    def _options_fit_type(self) -> DirectoryConfig:
        if self.type == "MicrosoftAD" and self.size is not None:
            raise RuleViolations([(("size",), self.size, "applies to SimpleAD only; MicrosoftAD takes `edition`")])
        if self.type == "SimpleAD" and self.edition is not None:
            raise RuleViolations([(("edition",), self.edition, "applies to MicrosoftAD only; SimpleAD takes `size`")])
        if self.type == "SimpleAD" and self.ldaps:
            raise RuleViolations([(("ldaps",), True, "Simple AD does not offer LDAPS; use MicrosoftAD for it")])
        if self.ldaps:
            raise RuleViolations([(("ldaps",), True,
                                   "not built yet: LDAPS needs the directory's certificate authority in WSO2's "
                                   "client-truststore.jks and the directory name resolvable from the nodes (the "
                                   "domain controllers' certificates name the domain, not their addresses); "
                                   "without it the WSO2 user store is read-only (README, user store write mode)")])
        return self

    @property
    def netbios_name(self) -> str:
        return self.short_name or self.name.split(".")[0].upper()[:15]

    @property
    def effective_edition(self) -> DirectoryEdition | None:
        return (self.edition or "Standard") if self.type == "MicrosoftAD" else None

    @property
    def effective_size(self) -> DirectorySize:
        return self.size or "Small"


class TagsConfig(Model):
    owner: TagValue
    cost_center: TagValue
    extra: dict[Annotated[str, Field(pattern=r"^[A-Za-z][\w.:/=+\-@]{0,127}$")], TagValue] = {}

    @model_validator(mode="after")
    def _no_reserved_keys(self) -> TagsConfig:
        clashes = [key for key in self.extra if key in RESERVED_TAG_KEYS or key.lower().startswith("aws:")]
        if clashes:
            raise RuleViolations([(("extra", key), self.extra[key],
                                   f"tag key is reserved; the toolkit sets {', '.join(RESERVED_TAG_KEYS)} itself "
                                   "and AWS owns aws:*") for key in clashes])
        room = MAX_TAGS_PER_RESOURCE - TOOLKIT_TAGS
        if len(self.extra) > room:
            raise RuleViolations([(("extra",), f"{len(self.extra)} tags",
                                   f"allowed: at most {room}: AWS allows {MAX_TAGS_PER_RESOURCE} tags per resource and "
                                   f"the toolkit puts up to {TOOLKIT_TAGS} of its own on some")])
        return self


class RemoteStateConfig(Model):
    bucket: Annotated[str, AfterValidator(valid_bucket)]
    key_prefix: Annotated[str, check(KEY_PREFIX, "an S3 key prefix without spaces")] = "wso2-ob-iam"
    region: Region | None = None
    # S3-native locking (Terraform >= 1.10, OpenTofu >= 1.10) needs no DynamoDB table.
    lock: StateLock = "s3_lockfile"
    dynamodb_table: Annotated[str, check(DYNAMODB_TABLE, "a DynamoDB table name")] | None = None
    kms_key_id: Annotated[str, Field(pattern=r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/|alias/)"
                                              r"[A-Za-z0-9/_-]+$")] | None = None

    @model_validator(mode="after")
    def _lock_table(self) -> RemoteStateConfig:
        if self.lock == "dynamodb" and self.dynamodb_table is None:
            raise RuleViolations([(("dynamodb_table",), None, "required when lock is dynamodb")])
        if self.lock == "s3_lockfile" and self.dynamodb_table is not None:
            raise RuleViolations([(("dynamodb_table",), self.dynamodb_table,
                                   "only used when lock is dynamodb; remove it or set lock: dynamodb")])
        return self


class DataProtectionConfig(Model):
    deletion_protection: bool = True
    prevent_destroy: bool = True
    final_snapshot: bool = True


# A backup vault ARN: arn:<partition>:backup:<region>:<account>:backup-vault:<name> (AWS Backup API
# Reference, BackupVaultName: letters, digits, - and _, 2-50 characters).
_BACKUP_VAULT_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:backup:(?P<region>[a-z]{2}(-gov)?-[a-z]+-\d):"
                               r"(?P<account>\d{12}):backup-vault:[A-Za-z0-9_-]{2,50}$")
# AWS Backup schedules at most hourly (Developer Guide, "Backup frequency"); the interval must divide a day
# so that every day's backups fall at the same hours (cron(0 */N * * ? *)).
BACKUP_INTERVAL_HOURS = (1, 2, 3, 4, 6, 8, 12, 24)
# RDS uploads transaction logs to S3 every 5 minutes, so the latest restorable time of a continuous backup
# (AWS Backup) or of automated backups (RDS) trails by about 5 minutes (RDS User Guide, "Restoring a DB
# instance to a specified time").
RDS_LOG_UPLOAD_MINUTES = 5
# AWS Backup Vault Lock in compliance mode: ChangeableForDays must be at least 3 (the 72-hour cooling-off
# period, Backup API Reference, PutBackupVaultLockConfiguration).
MIN_LOCK_GRACE_DAYS = 3


class BackupConfig(Model):
    """AWS Backup for the stateful tier (database and artifact file system), with stated objectives.

    rpo_hours / rto_hours are the objectives the bank states for the environment; the toolkit refuses a
    plan that cannot meet the RPO and the README shows the RTO arithmetic.
    """

    enabled: bool = True
    rpo_hours: Annotated[int, Field(ge=1, le=720)] = 24
    rto_hours: Annotated[int, Field(ge=1, le=720)] = 24
    # A snapshot of every resource each interval (UTC, on the hour), kept retention_days.
    interval_hours: Literal[BACKUP_INTERVAL_HOURS] = 24  # type: ignore[valid-type]
    retention_days: Annotated[int, Field(ge=1, le=36500)] = 35
    # Point-in-time recovery of the database through AWS Backup (continuous backup): RPO of minutes. Its
    # retention is database.backup_retention_period: AWS Backup takes over the instance's automated-backup
    # retention, so any other value would make Terraform and AWS Backup undo each other's change.
    continuous: bool = True
    # Where every backup is copied (region loss); must differ from the environment's region. Never guessed:
    # which region may hold a bank's data is a data-residency decision.
    copy_region: Region | None = None
    copy_retention_days: Annotated[int, Field(ge=1, le=36500)] | None = None
    # A vault in another account (account compromise). Cross-account copies need AWS Organizations with
    # cross-account backup turned on in the management account, and that vault's access policy allowing
    # backup:CopyIntoBackupVault from this account (README, "Backups and disaster recovery").
    copy_account_vault_arn: Annotated[str, check(_BACKUP_VAULT_ARN, "a backup vault ARN, arn:aws:backup:"
                                                   "<region>:<account>:backup-vault:<name>")] | None = None
    # Vault Lock on both vaults. governance: recovery points cannot be deleted early nor their retention
    # cut, but a principal with backup:DeleteBackupVaultLockConfiguration can remove the lock. compliance:
    # after lock_changeable_for_days nobody (not the root user, not AWS) can remove the lock, delete the
    # vault or a recovery point before its retention ends; it is irreversible, so it is never a default.
    lock: BackupLock = "governance"
    lock_changeable_for_days: Annotated[int, Field(ge=MIN_LOCK_GRACE_DAYS, le=36500)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> BackupConfig:
        problems: list[Violation] = []
        if self.lock == "compliance" and self.lock_changeable_for_days is None:
            problems.append((("lock_changeable_for_days",), None,
                             "required with lock: compliance: the days (3 or more) during which the lock can "
                             "still be removed; after them it is immutable (no one can delete the vault or "
                             "shorten a retention), so the grace period is a decision the file must state"))
        if self.lock != "compliance" and self.lock_changeable_for_days is not None:
            problems.append((("lock_changeable_for_days",), self.lock_changeable_for_days,
                             "only used with lock: compliance (a governance lock can be removed at any time)"))
        if self.copy_retention_days is not None and self.copy_region is None and self.copy_account_vault_arn is None:
            problems.append((("copy_retention_days",), self.copy_retention_days,
                             "only used with copy_region or copy_account_vault_arn"))
        if problems:
            raise RuleViolations(problems)
        return self

    @property
    def effective_copy_retention_days(self) -> int:
        return self.copy_retention_days or self.retention_days


class ObservabilityConfig(Model):
    log_retention_days: Literal[LOG_RETENTION_DAYS] = 365  # type: ignore[valid-type]
    alarm_email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")] | None = None


class EphemeralConfig(Model):
    ttl_hours: Annotated[int, Field(ge=1, le=24 * 14)] = 72
    # `obiam keep` may hold an environment past its ExpiresAt by at most this much; the reaper caps
    # any obiam:keep-until tag there.
    max_keep_hours: Annotated[int, Field(ge=0, le=24 * 30)] = 24 * 7
    # Every push moves ExpiresAt to ttl_hours later, but never past the pull request's opening time
    # (OBIAM_EPHEMERAL_OPENED_AT, which the CI workflow sets) plus this.
    max_lifetime_hours: Annotated[int, Field(ge=1, le=24 * 90)] = 24 * 14
    # Each branch environment answers at <its name>.<domain> (load_balancer.hosted_zone_id holds the
    # zone; load_balancer.certificate_arn must cover *.<domain>). Unset: all share the template's hostname.
    domain: Annotated[str, check(HOSTNAME, "a lower-case DNS name such as eph.dev.bank.example.com")] | None = None
    # Each branch environment gets its own /20 of this range (by a hash of the branch), so no two share
    # a CIDR by design; `obiam preflight --branch` refuses one that collides with a live branch's VPC.
    vpc_cidr_pool: Annotated[str, AfterValidator(valid_vpc_cidr_pool)] | None = None
    # The branch base (environments/<base>.yaml, `kind: branch-base`) the branch environments stand
    # on: its VPC, directory and database server. Unset: every branch builds all of it itself.
    base: Annotated[str, check(ENVIRONMENT_NAME, "the name of a branch-base file in environments/, such as "
                                                 "ephemeral-base")] | None = None

    @model_validator(mode="after")
    def _lifetime_covers_one_ttl(self) -> EphemeralConfig:
        if self.max_lifetime_hours < self.ttl_hours:
            raise RuleViolations([(("max_lifetime_hours",), self.max_lifetime_hours,
                                   f"allowed: at least ttl_hours ({self.ttl_hours})")])
        if self.base is not None and self.vpc_cidr_pool is not None:
            raise RuleViolations([(("vpc_cidr_pool",), self.vpc_cidr_pool,
                                   f"branch environments on the base {self.base} live in its VPC and have no range "
                                   "of their own; remove vpc_cidr_pool (or ephemeral.base)")])
        return self


class AccountConfig(Model):
    """The one AWS account the environment lives in. The provider refuses every other
    (`allowed_account_ids`), and so do `obiam preflight`, `verify` and `bootstrap-state`: a
    credential mix-up stops at the first API call instead of planning prod into staging."""

    # Quoted in YAML: an unquoted id with a leading zero would be read as a number.
    id: Annotated[str, check(ACCOUNT_ID, "a 12-digit AWS account id, quoted, such as '111111111111'")]
    # A role in that account for Terraform to assume (the provider's assume_role), e.g. when people
    # deploy from a tooling account. Unset (the examples): the caller's credentials are used as they
    # are, which is how CI works: its OIDC step already assumes the plan or deploy role of the stage.
    assume_role_arn: Annotated[str, check(ROLE_ARN, "an IAM role ARN such as "
                                           "arn:aws:iam::111111111111:role/obiam-deploy")] | None = None

    @model_validator(mode="after")
    def _role_in_account(self) -> AccountConfig:
        role = ROLE_ARN.match(self.assume_role_arn or "")
        if role and role["account"] != self.id:
            raise RuleViolations([(("assume_role_arn",), self.assume_role_arn,
                                   f"allowed: a role in the environment's own account {self.id}")])
        return self


class EnvironmentConfig(Model):
    tier: Literal[TIERS] = "production"  # type: ignore[valid-type]
    account: AccountConfig
    region: Region = "eu-west-2"
    availability_zone_count: Annotated[int, Field(ge=2, le=6)] = 3
    # Pinned by name so the set never shifts when AWS adds or impairs a zone (which would
    # replace subnets); default: the region's zones a, b, c, ... in order.
    availability_zones: list[Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$")]] | None = None
    network: NetworkConfig = NetworkConfig()
    product: ProductConfig
    nodes: NodesConfig = NodesConfig()
    load_balancer: LoadBalancerConfig
    database: DatabaseConfig
    directory: DirectoryConfig = DirectoryConfig()
    tags: TagsConfig
    state: RemoteStateConfig
    data_protection: DataProtectionConfig = DataProtectionConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    ephemeral: EphemeralConfig | None = None
    backup: BackupConfig = BackupConfig()

    @model_validator(mode="after")
    def _environment_rules(self) -> EnvironmentConfig:
        problems = [*self._product_problems(), *self._port_problems(), *self._placement_problems(),
                    *self._tier_problems(), *self._backup_problems()]
        if problems:
            raise RuleViolations(problems)
        return self

    def _product_problems(self) -> list[Violation]:
        problems: list[Violation] = []
        if self.nodes.ami is None:
            problems.append((("nodes", "ami", "id"), None, AMI_UNPINNED))
        jdk = self.nodes.jdk
        if jdk is not None and JDK.match(jdk):
            supported = PRODUCT_JDKS[self.product.version]
            if jdk_major(jdk) not in supported:
                problems.append((("nodes", "jdk"), jdk,
                                 f"WSO2 OB {self.product.version} runs on JDK "
                                 f"{' or '.join(map(str, supported))}"))
        product = wso2.PRODUCTS[self.product.version]
        if (self.product.clustering.membership_scheme == "aws" and product.hazelcast_aws_needs_imdsv1
                and self.nodes.metadata_http_tokens == "required"):
            problems.append((("product", "clustering", "membership_scheme"), "aws",
                             f"the Hazelcast in WSO2 OB {self.product.version} fetches AWS credentials through "
                             "IMDSv1 only (IMDSv2 came in Hazelcast 5.2.3), so with nodes.metadata_http_tokens: "
                             "required nodes would never find each other; keep the default wka (members listed "
                             "through the EC2 API with IMDSv2) or, outside production, set metadata_http_tokens: "
                             "optional"))
        return problems

    def _port_problems(self) -> list[Violation]:
        member_port = self.product.clustering.local_member_port
        offset = self.product.port_offset
        for port, what in wso2.CARBON_PORTS.items():
            if member_port == port + offset:
                return [(("product", "clustering", "local_member_port"), member_port,
                         f"is WSO2's {what} ({port} + product.port_offset {offset}) on the same node, so one of "
                         "them could not listen; allowed: a port WSO2 does not use, e.g. the default 5701")]
        if member_port == self.database.port:
            return [(("product", "clustering", "local_member_port"), member_port,
                     f"is the {self.database.engine} database port; allowed: a port of its own, e.g. the default "
                     "5701 (one purpose per port keeps the security-group rules and flow logs unambiguous)")]
        return []

    def _placement_problems(self) -> list[Violation]:
        problems: list[Violation] = []
        certificate = ACM_ARN.match(self.load_balancer.certificate_arn)
        if certificate and certificate["region"] != self.region:
            problems.append((("load_balancer", "certificate_arn"), self.load_balancer.certificate_arn,
                             f"an ALB can only use an ACM certificate from its own region ({self.region})"))
        elif certificate and certificate["account"] != self.account.id:
            problems.append((("load_balancer", "certificate_arn"), self.load_balancer.certificate_arn,
                             f"an ALB can only use an ACM certificate of its own account ({self.account.id}, "
                             "account.id)"))
        problems.extend(zone_problems(self.availability_zones, self.availability_zone_count, self.region))
        if self.network.existing_vpc is not None:
            problems.extend(subnet_count_problems(self.network.existing_vpc, self.availability_zone_count))
        return problems

    def _tier_problems(self) -> list[Violation]:
        problems = self._production_problems() if self.tier == "production" else []
        directory = self.directory
        if directory.type == "SimpleAD" and not directory_service.simple_ad_offered_in(self.region):
            problems.append((("directory", "type"), "SimpleAD",
                             f"AWS does not offer Simple AD in {self.region} (Directory Service \"Region "
                             "availability\": only " + ", ".join(sorted(directory_service.SIMPLE_AD_REGIONS))
                             + "); allowed here: MicrosoftAD (edition Standard is the small one)"))
        if self.tier == "ephemeral" and any(v for _, v in self.data_protection):
            problems.append((("data_protection",), self.data_protection.model_dump(),
                             "ephemeral environments switch every protection off so that one destroy removes them"))
        if self.ephemeral is not None and self.ephemeral.domain and self.load_balancer.hosted_zone_id is None:
            problems.append((("load_balancer", "hosted_zone_id"), None,
                             f"required with ephemeral.domain: each branch environment gets its record "
                             f"<name>.{self.ephemeral.domain} in that zone"))
        if (self.tier == "ephemeral") != (self.ephemeral is not None):
            problems.append((("ephemeral",), None if self.ephemeral is None else "set",
                             "required for tier ephemeral (its ttl_hours) and allowed only there"))
        return problems

    def _production_problems(self) -> list[Violation]:
        problems = self._production_choices()
        for requirement in tier_policy.PRODUCTION:
            value: Any = self
            for part in requirement.path:
                value = getattr(value, part)
            if not requirement.allowed(value):
                problems.append((requirement.path, value, requirement.reason))
        return problems

    def _production_choices(self) -> list[Violation]:
        """Production's choices among options every tier has: the directory, the WAF's mode, the engine."""
        problems: list[Violation] = []
        if self.directory.type != "MicrosoftAD":
            problems.append((("directory", "type"), self.directory.type,
                             "production uses MicrosoftAD: Simple AD has no API for WSO2's own bind account (WSO2 "
                             "would bind as the domain Administrator) and no LDAPS"))
        if self.load_balancer.waf_mode != "block":
            problems.append((("load_balancer", "waf_mode"), self.load_balancer.waf_mode,
                             "production blocks; find false positives with count in staging first"))
        engine = database_engines.ENGINES[self.database.engine]
        if engine.lifecycle_choice_applies and self.database.engine_lifecycle_support is None:
            problems.append((("database", "engine_lifecycle_support"), None,
                             f"production states what RDS does when {self.database.engine} "
                             f"{engine.major_of(self.database.version)} leaves standard support: "
                             f"{database_engines.EXTENDED_SUPPORT} (keep it, paid) or "
                             f"{database_engines.EXTENDED_SUPPORT_DISABLED} (RDS upgrades the major itself)"))
        if engine.major_of(self.database.version) not in (None, engine.default_version):
            problems.append((("database", "engine_version"), self.database.engine_version,
                             f"production runs the {self.database.engine} major WSO2 tested OB "
                             f"{self.product.version} on ({engine.default_version}; docs-open-banking 3.0.0 "
                             "prerequisites.md, \"Tested DBMSs\")"))
        return problems

    def _backup_problems(self) -> list[Violation]:
        backup = self.backup
        problems: list[Violation] = []
        if self.tier == "ephemeral":
            if backup.enabled:
                problems.append((("backup", "enabled"), True,
                                 "ephemeral environments take no backups: one destroy must remove everything, and "
                                 "a vault holding recovery points (locked ones above all) cannot be destroyed"))
            return problems
        if self.tier == "production":
            if not backup.enabled:
                problems.append((("backup", "enabled"), False, "must stay true in production"))
            if backup.copy_region is None:
                problems.append((("backup", "copy_region"), None,
                                 "required in production: the region every backup is copied to, so the data "
                                 "survives the loss of " + self.region + " (choose it for data residency, e.g. "
                                 "another region of the same jurisdiction)"))
            if backup.lock == "none":
                problems.append((("backup", "lock"), "none",
                                 "production locks its vaults: governance or compliance (README, vault lock)"))
            if backup.retention_days < 7:
                problems.append((("backup", "retention_days"), backup.retention_days,
                                 "production keeps at least 7 days of backups"))
        if backup.copy_region is not None and backup.copy_region == self.region:
            problems.append((("backup", "copy_region"), backup.copy_region,
                             f"is the environment's own region; a copy there does not survive the loss of "
                             f"{self.region}: allowed: another region"))
        vault = _BACKUP_VAULT_ARN.match(backup.copy_account_vault_arn or "")
        if vault and vault["account"] == self.account.id:
            problems.append((("backup", "copy_account_vault_arn"), backup.copy_account_vault_arn,
                             f"is in the environment's own account {self.account.id}; a copy there does not "
                             "survive a compromise of that account: allowed: a vault in another account"))
        problems.extend(self._rpo_problems())
        return problems

    def _rpo_problems(self) -> list[Violation]:
        """Can the backups meet the stated RPO? The worst case of each tier of data decides."""
        backup = self.backup
        if not backup.enabled:
            # Left only with RDS automated backups (PITR, minutes) and EFS's automatic daily backup.
            if backup.rpo_hours < 24:
                return [(("backup", "rpo_hours"), backup.rpo_hours,
                         "cannot be met with backup.enabled: false: the artifact file system then has only "
                         "EFS's automatic backup, taken once a day (RPO 24 h); enable backup with "
                         f"interval_hours <= {backup.rpo_hours}, or state rpo_hours: 24 or more")]
            return []
        if backup.interval_hours > backup.rpo_hours:
            continuous = (f"; the database alone would meet it (continuous backup, about {RDS_LOG_UPLOAD_MINUTES} "
                          "minutes in-region), but snapshots are the only kind of EFS backup and the only kind "
                          "copied to another region" if backup.continuous else "")
            return [(("backup", "interval_hours"), backup.interval_hours,
                     f"a backup every {backup.interval_hours} h cannot meet backup.rpo_hours = {backup.rpo_hours}: "
                     f"data written just after one backup is lost until the next{continuous}; allowed: one of "
                     f"{', '.join(str(h) for h in BACKUP_INTERVAL_HOURS if h <= backup.rpo_hours)}")]
        return []

    @property
    def backup_lock_min_retention_days(self) -> int:
        """The vault lock's minimum retention: the shortest retention any recovery point enters the primary
        vault with (a lock refuses recovery points with less, so it may not be longer)."""
        backup = self.backup
        shortest = backup.retention_days
        if backup.continuous:
            shortest = min(shortest, self.database.backup_retention_period)
        return shortest

    @property
    def jdk(self) -> str:
        return self.nodes.jdk or DEFAULT_JDK[self.product.version]

    @property
    def zone_names(self) -> list[str]:
        return self.availability_zones or [self.region + letter for letter in "abcdef"[:self.availability_zone_count]]

    @property
    def state_region(self) -> str:
        return self.state.region or self.region


class BranchBaseConfig(Model):
    """`environments/<name>.yaml` with `kind: branch-base`: what every per-branch environment of one
    account stands on, deployed once as its own stack. It holds what is slow to create (a Managed AD
    takes the better part of an hour, a Multi-AZ database tens of minutes) and safe to share: the VPC,
    the directory and one database server. Each branch brings its own nodes, load balancer, file
    system, keys and secrets, and gets its own databases, database user and directory accounts on the
    shared servers (README, "Per-branch environments")."""

    kind: Literal["branch-base"]
    account: AccountConfig
    region: Region = "eu-west-2"
    availability_zone_count: Annotated[int, Field(ge=2, le=6)] = 2
    availability_zones: list[Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$")]] | None = None
    network: NetworkConfig = NetworkConfig()
    database: DatabaseConfig
    directory: DirectoryConfig = DirectoryConfig()
    tags: TagsConfig
    state: RemoteStateConfig
    data_protection: DataProtectionConfig = DataProtectionConfig()
    observability: ObservabilityConfig = ObservabilityConfig()

    @model_validator(mode="after")
    def _base_rules(self) -> BranchBaseConfig:
        problems = zone_problems(self.availability_zones, self.availability_zone_count, self.region)
        if self.network.existing_vpc is not None:
            problems.extend(subnet_count_problems(self.network.existing_vpc, self.availability_zone_count))
        if self.directory.type != "MicrosoftAD":
            problems.append((("directory", "type"), self.directory.type,
                             "a branch base uses MicrosoftAD: each branch gets its own directory accounts through "
                             "the Directory Service Data API, which Simple AD does not offer"))
        if self.database.engine not in BRANCH_BASE_ENGINES:
            problems.append((("database", "engine"), self.database.engine,
                             "the function that creates and drops each branch's databases speaks "
                             f"{', '.join(BRANCH_BASE_ENGINES)} only; allowed: {', '.join(BRANCH_BASE_ENGINES)}"))
        if problems:
            raise RuleViolations(problems)
        return self

    @property
    def zone_names(self) -> list[str]:
        return self.availability_zones or [self.region + letter for letter in "abcdef"[:self.availability_zone_count]]

    @property
    def state_region(self) -> str:
        return self.state.region or self.region

    @property
    def tier(self) -> str:
        """What the security gate's per-tier skips judge it as: a long-lived development stack (protected,
        cheap settings, the development account), not a per-branch one it outlives."""
        return "development"


# Engines the branch-databases function (obiam/branch_databases_function.py) has a client for.
BRANCH_BASE_ENGINES = ("mysql",)
# What a branch environment takes from its base instead of its own file.
FROM_BRANCH_BASE = ("availability_zone_count", "availability_zones", "network", "database", "directory")


def zone_problems(zones: list[str] | None, count: int, region: str) -> list[Violation]:
    if zones is None:
        return []
    if len(zones) != count or len(set(zones)) != len(zones):
        return [(("availability_zones",), zones,
                 f"allowed: {count} distinct zone names (availability_zone_count)")]
    if any(not zone.startswith(region) for zone in zones):
        return [(("availability_zones",), zones, f"allowed: zones of {region} only")]
    return []


def subnet_count_problems(existing: ExistingVpc, count: int) -> list[Violation]:
    problems: list[Violation] = []
    for field in ("public_subnet_ids", "app_subnet_ids", "data_subnet_ids"):
        ids = getattr(existing, field)
        if len(ids) != count or len(set(ids)) != len(ids):
            problems.append((("network", "existing_vpc", field), ids,
                             f"allowed: {count} distinct subnet ids, one per AZ (availability_zone_count)"))
    return problems
