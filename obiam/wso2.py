"""What the toolkit knows about WSO2 Open Banking IAM, keyed by product version.

One place for the facts the bootstrap templates and the stack both need: the
runtime artifact directories to share, the databases and the deployment.toml
section each maps to, and the clustering properties (the JDBC URL per engine is obiam/database_engines.py's).

Sources: WSO2 OB IAM HA deployment guide (shared/reference), wso2/docs-open-banking 3.0.0
(install-and-setup/prerequisites, setting-up-databases, setting-up-servers),
wso2/financial-open-banking 3.0.0 (open-banking-accelerator/accelerators/ob-is), wso2/product-is
v5.11.0 and wso2/carbon-kernel v4.6.1 (repository/resources/conf: default.json, infer.json,
key-mappings.json, templates). tests/test_wso2_contract.py names the file behind each rule.
"""

from __future__ import annotations

from dataclasses import dataclass

# WSO2's HA guide: runtime artifacts that must be shared between nodes.
ARTIFACT_DIRECTORIES = ("eventpublishers", "userstores", "eventstreams", "humantasks", "bpel")

# The deep check: with [carbon_health_check] enabled it tests every datasource and the primary
# user store (carbon-health-check 1.2.5), so an RDS fail-over or a domain-controller blip turns
# every node red at once. It feeds an alarm, never the load balancer.
DEEP_HEALTH_CHECK_PATH = "/api/health-check/v1.0/health"
# The load balancer's liveness check: the management console's login page, which Tomcat serves
# only once Carbon has started its transports (after every OSGi service is up) and which needs no
# database or directory round trip to render.
LIVENESS_CHECK_PATH = "/carbon/admin/login.jsp"
HTTPS_SERVLET_PORT = 9443
# Ports a Carbon server listens on before [server] offset is added ("Default Product Ports": servlet
# transports, and JMX, which is on unless [monitoring.jmx] rmi_server_start = false).
CARBON_PORTS = {HTTPS_SERVLET_PORT: "HTTPS servlet port", 9763: "HTTP servlet port", 11111: "JMX RMI registry port",
                9999: "JMX RMI server port"}

# The OB accelerator's deployment.toml for IS 5.11, where the pack carries it (the accelerator zip's
# repository/resources/; its configure.sh copies it over repository/conf/deployment.toml).
ACCELERATOR_DEPLOYMENT_TOML = "repository/resources/wso2is-5.11.0-deployment.toml"
# WSO2 Open Banking IAM product versions the toolkit supports and the JDK majors each runs
# on. OB 3.0 on IS 5.11 runs on JDK 11 only: OB's prerequisites keep JDK 17 for IS 6.0 with
# API Manager 4.2, and IS 5.11 GA's wso2server.sh (kernel 4.6.1) knows JDKs up to 11. OB 2.0
# (Key Manager, JDK 8) is not supported: its datasource mapping is not in this module.
PRODUCT_JDKS: dict[str, tuple[int, ...]] = {"3.0.0": (11,)}
DEFAULT_JDK = {"3.0.0": "11"}

# WSO2's deployment guide: "There's a known issue with JDK1.8.0_151".
KNOWN_BAD_JDKS = ("1.8.0_151",)

# The least-privileged database user WSO2 connects as; the RDS master user is for schema set-up only.
APPLICATION_DB_USER = "obiam_wso2"


@dataclass(frozen=True)
class DirectoryAccounts:
    """Who WSO2 is in the directory: the account its user store binds as and its super admin."""

    directory_admin: str  # the directory's built-in administrator (break-glass, never WSO2's)
    bind_name: str  # what the user store binds with (connection_name)
    super_admin: str  # sAMAccountName; the read-only store finds it, it is never created
    dedicated: bool  # bind and super admin are their own accounts, created by the toolkit


# sAMAccountName allows at most 20 characters.
BIND_ACCOUNT = "obiam-wso2-bind"
SUPER_ADMIN_ACCOUNT = "obiam-wso2-admin"


def directory_accounts(directory_type: str, domain: str, bind_account: str = BIND_ACCOUNT,
                       super_admin_account: str = SUPER_ADMIN_ACCOUNT) -> DirectoryAccounts:
    """Managed Microsoft AD: dedicated accounts (Directory Service Data creates them). Simple AD
    offers no user-management API, so WSO2 binds as and is administered by its Administrator."""
    if directory_type == "MicrosoftAD":
        # AD accepts the implicit user principal name (sAMAccountName@DNS domain) as a simple-bind
        # name, so the bind does not depend on the OU the Data API puts the account in.
        return DirectoryAccounts("Admin", f"{bind_account}@{domain}", super_admin_account, dedicated=True)
    return DirectoryAccounts("Administrator", f"CN=Administrator,CN=Users,{domain_dn(domain)}", "Administrator",
                             dedicated=False)


def domain_dn(domain: str) -> str:
    """corp.example.com -> DC=corp,DC=example,DC=com"""
    return ",".join(f"DC={label}" for label in domain.split("."))

# The uid/gid WSO2's own container images run as; fixed so every node and every
# EFS access point agree on file ownership.
WSO2_UID = 802



@dataclass(frozen=True)
class Database:
    """One WSO2 database: its name, the deployment.toml table that points at it, and its schema scripts."""

    name: str
    # `database.identity_db` style table, or `datasource:<id>` for a [[datasource]] entry; None when the
    # IAM node does not use it (it is created for the API Manager side of Open Banking).
    toml: str | None
    # Scripts under the pack that create the tables, `{dialect}` replaced per engine. The API
    # Manager 4.0 scripts OB's "Setting up databases" names travel in the pack under dbscripts/apim/.
    scripts: tuple[str, ...]
    # Column changes OB's "Setting up databases" asks for after the scripts, per dialect.
    alterations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Product:
    version: str
    databases: tuple[Database, ...]
    # [clustering.properties] names for Hazelcast AWS discovery in this product's Carbon kernel.
    aws_clustering_properties: dict[str, str]
    # [user_store] type for an Active Directory read-write user store in this product.
    active_directory_user_store: str
    # Hazelcast shipped with this kernel fetches AWS credentials through IMDSv1 only
    # (IMDSv2 arrived in Hazelcast 5.2.3), so `membership_scheme = "aws"` needs IMDSv1.
    hazelcast_aws_needs_imdsv1: bool


# OB 3.0 "Setting up databases": SP_METADATA.VALUE and AM_APPLICATION_REGISTRATION.INPUTS are too
# short in the API Manager script for OB's service-provider metadata and DCR requests.
APIMGT_ALTERATIONS = (
    ("mysql", "ALTER TABLE SP_METADATA MODIFY VALUE VARCHAR(4096); "
              "ALTER TABLE AM_APPLICATION_REGISTRATION MODIFY INPUTS VARCHAR(7500);"),
    ("postgresql", "ALTER TABLE SP_METADATA ALTER COLUMN VALUE TYPE VARCHAR(4096); "
                   "ALTER TABLE AM_APPLICATION_REGISTRATION ALTER COLUMN INPUTS TYPE VARCHAR(7500);"),
    ("mssql", "ALTER TABLE SP_METADATA ALTER COLUMN VALUE VARCHAR(4096); "
              "ALTER TABLE AM_APPLICATION_REGISTRATION ALTER COLUMN INPUTS VARCHAR(7500);"),
    ("oracle", "ALTER TABLE SP_METADATA MODIFY VALUE VARCHAR2(4000); "
               "ALTER TABLE AM_APPLICATION_REGISTRATION MODIFY INPUTS VARCHAR2(4000);"),
)

PRODUCTS: dict[str, Product] = {
    "3.0.0": Product(
        version="3.0.0",
        databases=(
            Database("openbank_apimgtdb", "database.identity_db", ("dbscripts/apim/apimgt/{dialect}.sql",),
                     alterations=APIMGT_ALTERATIONS),
            Database("openbank_am_configdb", None, ("dbscripts/apim/{dialect}.sql",)),
            Database("openbank_govdb", "database.shared_db", ("dbscripts/apim/{dialect}.sql",)),
            Database("openbank_userdb", "database.user", ("dbscripts/apim/{dialect}.sql",)),
            Database("openbank_iskm_configdb", "database.config", ("dbscripts/{dialect}.sql",)),
            Database("openbank_openbankingdb", "datasource:WSO2OB_DB",
                     ("dbscripts/open-banking/consent/{dialect}.sql",)),
        ),
        # Carbon 4.6 (IS 5.11) reads these names (AWSBasedMembershipScheme / AWSConstants).
        aws_clustering_properties={
            "region": "region", "security_group": "securityGroup", "tag_key": "tagKey",
            "tag_value": "tagValue", "iam_role": "iamRole",
        },
        active_directory_user_store="active_directory_unique_id",
        hazelcast_aws_needs_imdsv1=True,
    ),
}


def toml_database_sections(product: Product) -> list[Database]:
    return [d for d in product.databases if d.toml is not None and d.toml.startswith("database.")]


def toml_datasources(product: Product) -> list[tuple[str, Database]]:
    return [(d.toml.split(":", 1)[1], d) for d in product.databases
            if d.toml is not None and d.toml.startswith("datasource:")]
