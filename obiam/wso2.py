"""What the toolkit knows about WSO2 Open Banking IAM, keyed by product version.

One place for the facts the bootstrap templates and the stack both need: the
runtime artifact directories to share, the databases and the deployment.toml
section each maps to, the JDBC URL per engine, and the clustering properties.

Sources: WSO2 OB IAM HA deployment guide (shared/reference), WSO2 Open Banking
3.0 "Setting up databases" and "Configuring Identity Server for Open Banking",
WSO2 IS 5.11 "Deployment guide" (clustering, artifact synchronization).
"""

from __future__ import annotations

from dataclasses import dataclass

# WSO2's HA guide: runtime artifacts that must be shared between nodes.
ARTIFACT_DIRECTORIES = ("eventpublishers", "userstores", "eventstreams", "humantasks", "bpel")

HEALTH_CHECK_PATH = "/api/health-check/v1.0/health"
HTTPS_SERVLET_PORT = 9443

# The uid/gid WSO2's own container images run as; fixed so every node and every
# EFS access point agree on file ownership.
WSO2_UID = 802

# The header ALB mutual-TLS passthrough puts the client certificate in (URL-encoded PEM).
ALB_CLIENT_CERT_HEADER = "X-Amzn-Mtls-Clientcert"


@dataclass(frozen=True)
class Database:
    """One WSO2 database: its name, the deployment.toml table that points at it, and its schema scripts."""

    name: str
    # `database.identity_db` style table, or `datasource:<id>` for a [[datasource]] entry; None when the
    # IAM node does not use it (it is created for the API Manager side of Open Banking).
    toml: str | None
    # Scripts under the IAM pack that create the tables, `{dialect}` replaced per engine. Empty when
    # WSO2 creates the tables from the API Manager pack (its "Creating database tables" table).
    scripts: tuple[str, ...]


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


PRODUCTS: dict[str, Product] = {
    "3.0.0": Product(
        version="3.0.0",
        databases=(
            Database("openbank_apimgtdb", "database.identity_db", ()),
            Database("openbank_am_configdb", None, ()),
            Database("openbank_govdb", "database.shared_db", ()),
            Database("openbank_userdb", "database.user", ()),
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


@dataclass(frozen=True)
class Jdbc:
    """How WSO2 talks to one RDS engine."""

    dialect: str  # the dbscripts file name
    driver: str
    url: str  # with {host}, {port}, {database}; `&amp;` because WSO2 renders it into XML
    validation_query: str
    # Packs ship the MySQL driver only; other engines' drivers come from an S3 object in config.
    driver_in_pack: bool
    schema_tool: str | None  # the AL2023 client package the first-boot schema step uses


JDBC: dict[str, Jdbc] = {
    "mysql": Jdbc("mysql", "com.mysql.jdbc.Driver",
                  "jdbc:mysql://{host}:{port}/{database}?autoReconnect=true&amp;useSSL=true&amp;requireSSL=true"
                  "&amp;verifyServerCertificate=true",
                  "SELECT 1", True, "mariadb105"),
    "postgres": Jdbc("postgresql", "org.postgresql.Driver",
                     "jdbc:postgresql://{host}:{port}/{database}?sslmode=verify-full"
                     "&amp;sslrootcert=/opt/obiam/rds-ca-bundle.pem",
                     "SELECT 1", False, "postgresql15"),
    "sqlserver-se": Jdbc("mssql", "com.microsoft.sqlserver.jdbc.SQLServerDriver",
                         "jdbc:sqlserver://{host}:{port};databaseName={database};encrypt=true;"
                         "trustServerCertificate=false",
                         "SELECT 1", False, None),
    "sqlserver-ee": Jdbc("mssql", "com.microsoft.sqlserver.jdbc.SQLServerDriver",
                         "jdbc:sqlserver://{host}:{port};databaseName={database};encrypt=true;"
                         "trustServerCertificate=false",
                         "SELECT 1", False, None),
    "oracle-se2": Jdbc("oracle", "oracle.jdbc.OracleDriver", "jdbc:oracle:thin:@{host}:{port}/ORCL",
                       "SELECT 1 FROM DUAL", False, None),
    "oracle-ee": Jdbc("oracle", "oracle.jdbc.OracleDriver", "jdbc:oracle:thin:@{host}:{port}/ORCL",
                      "SELECT 1 FROM DUAL", False, None),
}


def toml_database_sections(product: Product) -> list[Database]:
    return [d for d in product.databases if d.toml is not None and d.toml.startswith("database.")]


def toml_datasources(product: Product) -> list[tuple[str, Database]]:
    return [(d.toml.split(":", 1)[1], d) for d in product.databases
            if d.toml is not None and d.toml.startswith("datasource:")]
