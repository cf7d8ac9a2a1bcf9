"""The node bootstrap (EC2 user data), rendered from the template files in `templates/`.

Everything here is known when the stack is synthesized, so the user data is a
static script: the launch template changes exactly when this output changes,
and reviewers see it in the synth diff. Values that exist only after deploy
(EFS, database and directory ids and addresses) are read at boot from one SSM
parameter that the stack writes (`Names.runtime_parameter`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import jinja2

from obiam import wso2
from obiam.config import jdk_major
from obiam.environments import Environment
from obiam.naming import CLUSTER_TAG_KEY, Names

# Characters that could end a double-quoted shell or TOML string, or expand in one.
_UNSAFE = ('"', "$", "`", "\\", "\n", "\r")
# EC2 refuses user data over 16 KiB.
USER_DATA_LIMIT = 16384
METRICS_NAMESPACE = "OBIAM/Nodes"


@dataclass(frozen=True)
class RenderedDatabase:
    name: str
    url: str
    scripts: tuple[str, ...]


@dataclass(frozen=True)
class LogFile:
    path: str
    group: str


@dataclass(frozen=True)
class BootstrapSettings:
    environment: str
    region: str
    product_version: str
    runtime_parameter: str
    pack_s3_uri: str
    jdbc_driver_s3_uri: str
    jdk: str
    jdk_major: int
    heap_mib: int
    uid: int
    artifact_directories: tuple[str, ...]
    artifact_mounts: tuple[str, ...]
    hostname: str
    port_offset: int
    admin_username: str
    user_store_type: str
    ldap_urls: str
    bind_dn: str
    user_base_dn: str
    membership_scheme: str
    cluster_domain: str
    cluster_port: int
    aws_clustering_properties: tuple[tuple[str, str], ...]
    cluster_tag_key: str
    cluster_tag_value: str
    node_security_group: str
    database_engine: str
    database_sections: tuple[tuple[str, RenderedDatabase], ...]
    datasources: tuple[tuple[str, RenderedDatabase], ...]
    databases: tuple[RenderedDatabase, ...]
    jdbc_driver: str
    validation_query: str
    schema_engine: str | None
    schema_tool: str | None
    mutual_tls_passthrough: bool
    client_cert_header: str
    log_files: tuple[LogFile, ...]
    metrics_namespace: str
    autoscaling_group: str


def domain_dn(domain: str) -> str:
    return ",".join(f"DC={part}" for part in domain.split("."))


def settings_for(environment: Environment) -> BootstrapSettings:
    """Everything the templates need, derived from one validated environment."""
    config = environment.config
    names = Names(environment.name)
    product = wso2.PRODUCTS[config.product.version]
    jdbc = wso2.JDBC[config.database.engine]

    def database(d: wso2.Database) -> RenderedDatabase:
        url = jdbc.url.format(host="@OBIAM_DB_HOST@", port="@OBIAM_DB_PORT@", database=d.name)
        return RenderedDatabase(d.name, url, tuple(s.format(dialect=jdbc.dialect) for s in d.scripts))

    directory = config.directory
    dc = domain_dn(directory.name)
    if directory.type == "MicrosoftAD":
        # Managed Microsoft AD keeps its delegated users in OU=Users,OU=<NetBIOS name>.
        admin, user_base = "Admin", f"OU=Users,OU={directory.netbios_name},{dc}"
        bind_dn = f"CN=Admin,{user_base}"
    else:
        admin, user_base = "Administrator", f"CN=Users,{dc}"
        bind_dn = f"CN=Administrator,{user_base}"
    scheme, port = ("ldaps", 636) if directory.ldaps else ("ldap", 389)
    # Both domain controllers, space-separated: JNDI fails over to the second.
    ldap_urls = f"{scheme}://@OBIAM_LDAP_HOST_1@:{port} {scheme}://@OBIAM_LDAP_HOST_2@:{port}"

    properties = product.aws_clustering_properties
    aws_properties = (
        (properties["region"], config.region),
        (properties["security_group"], names.node_security_group),
        (properties["tag_key"], CLUSTER_TAG_KEY),
        (properties["tag_value"], names.cluster_tag_value),
        (properties["iam_role"], names.node_role),
    )
    schema_engine = config.database.engine if jdbc.schema_tool else None
    settings = BootstrapSettings(
        environment=environment.name,
        region=config.region,
        product_version=config.product.version,
        runtime_parameter=names.runtime_parameter,
        pack_s3_uri=config.product.pack_s3_uri,
        jdbc_driver_s3_uri=config.database.jdbc_driver_s3_uri or "",
        jdk=config.jdk,
        jdk_major=jdk_major(config.jdk),
        heap_mib=config.nodes.jvm_heap_mib,
        uid=wso2.WSO2_UID,
        artifact_directories=wso2.ARTIFACT_DIRECTORIES,
        artifact_mounts=tuple(f"/mnt/obiam-artifacts/{d}" for d in wso2.ARTIFACT_DIRECTORIES),
        hostname=config.load_balancer.hostname,
        port_offset=config.product.port_offset,
        admin_username=admin,
        user_store_type=product.active_directory_user_store,
        ldap_urls=ldap_urls,
        bind_dn=bind_dn,
        user_base_dn=user_base,
        membership_scheme=config.product.clustering.membership_scheme,
        cluster_domain=f"wso2.obiam.{environment.name}.domain",
        cluster_port=config.product.clustering.local_member_port,
        aws_clustering_properties=aws_properties,
        cluster_tag_key=CLUSTER_TAG_KEY,
        cluster_tag_value=names.cluster_tag_value,
        node_security_group=names.node_security_group,
        database_engine=config.database.engine,
        database_sections=tuple((d.toml, database(d)) for d in wso2.toml_database_sections(product)
                                if d.toml is not None),
        datasources=tuple((ds_id, database(d)) for ds_id, d in wso2.toml_datasources(product)),
        databases=tuple(database(d) for d in product.databases),
        jdbc_driver=jdbc.driver,
        validation_query=jdbc.validation_query,
        schema_engine=schema_engine,
        schema_tool=jdbc.schema_tool,
        mutual_tls_passthrough=config.load_balancer.mutual_authentication.mode == "passthrough",
        client_cert_header=wso2.ALB_CLIENT_CERT_HEADER,
        log_files=tuple(LogFile(path, names.log_group(kind)) for kind, path in LOG_FILES),
        metrics_namespace=METRICS_NAMESPACE,
        autoscaling_group=names.autoscaling_group,
    )
    _refuse_unsafe_values(settings)
    return settings


LOG_FILES = (
    ("bootstrap", "/var/log/obiam-bootstrap.log"),
    ("carbon", "/opt/wso2/current/repository/logs/wso2carbon.log"),
    ("audit", "/opt/wso2/current/repository/logs/audit.log"),
    ("http-access", "/opt/wso2/current/repository/logs/http_access_*.log"),
)


def _refuse_unsafe_values(settings: BootstrapSettings) -> None:
    # Config validation already restricts these; this keeps a future field from slipping a
    # quote or `$(...)` into a root shell script or deployment.toml.
    for field, value in vars(settings).items():
        for text in _strings(value):
            if any(c in text for c in _UNSAFE):
                raise ValueError(f"bootstrap value {field}={text!r} holds a character that is unsafe in shell/TOML")


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, tuple | list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, RenderedDatabase | LogFile):
        return [s for item in vars(value).values() for s in _strings(item)]
    return []


_TEMPLATES = jinja2.Environment(  # noqa: S701 - renders shell, TOML and JSON, not HTML
    loader=jinja2.PackageLoader("obiam.bootstrap", "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    # `{#` opens a Jinja comment but is also bash's `${#array[@]}`.
    comment_start_string="<#",
    comment_end_string="#>",
)


def render(template: str, settings: BootstrapSettings, **extra: str) -> str:
    return _TEMPLATES.get_template(template).render(s=settings, **extra)


def render_deployment_toml(settings: BootstrapSettings) -> str:
    return render("deployment.toml.j2", settings)


def render_user_data(settings: BootstrapSettings) -> str:
    """The whole boot script, with its configuration files embedded as quoted heredocs."""
    script = render(
        "user-data.sh.j2", settings,
        deployment_toml=render_deployment_toml(settings),
        service_unit=render("wso2-obiam.service.j2", settings),
        refresh_members=render("refresh-cluster-members.sh.j2", settings),
        db_init=render("db-init.sh.j2", settings),
        cloudwatch_agent=render("cloudwatch-agent.json.j2", settings),
    )
    size = len(script.encode("utf-8"))
    if size > USER_DATA_LIMIT:
        raise ValueError(f"rendered user data is {size} bytes; EC2 accepts at most {USER_DATA_LIMIT}")
    return script


def user_data_base64(environment: Environment) -> str:
    return base64.b64encode(render_user_data(settings_for(environment)).encode("utf-8")).decode("ascii")
