"""The node bootstrap (EC2 user data), rendered from the template files in `templates/`.

Everything here is known when the stack is synthesized, so the user data is a static
script: the launch template changes exactly when this output changes, and reviewers see
it in the synth diff (and, file by file, in `obiam node-config`). Values that exist only
after deploy (EFS, database and directory ids and addresses, the ARNs of the secrets) are
read on the node from one SSM parameter that the stack writes (`Names.runtime_parameter`).

The node's deployment.toml is not written here: `node/obiam_config.py` merges the OB
accelerator's file from the pack with the overlay rendered here, before every WSO2 start.
The user data is gzip-compressed (cloud-init unpacks it), which leaves room under EC2's
16 KiB limit for the embedded files.
"""

from __future__ import annotations

import base64
import gzip
from dataclasses import dataclass
from pathlib import Path

import jinja2

from obiam import branch_scope, database_engines, wso2
from obiam.bootstrap import shipping
from obiam.config import jdk_major
from obiam.environments import Environment
from obiam.naming import CLUSTER_TAG_KEY, Names

# Characters that could end a double-quoted shell or TOML string, or expand in one.
_UNSAFE = ('"', "$", "`", "\\", "\n", "\r")
# EC2 refuses user data over 16 KiB (before base64).
USER_DATA_LIMIT = 16384
METRICS_NAMESPACE = "OBIAM/Nodes"
CONFIG_TOOL = Path(__file__).parent / "node" / "obiam_config.py"


class UserDataTooLarge(ValueError):
    """The compressed user data would not fit EC2's limit."""


@dataclass(frozen=True)
class RenderedDatabase:
    name: str
    url: str
    user: str
    scripts: tuple[str, ...]
    alterations: str


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
    pack_sha256: str
    jdbc_driver_s3_uri: str
    accelerator_toml: str
    jdk: str
    jdk_major: int
    heap_mib: int
    uid: int
    artifact_directories: tuple[str, ...]
    artifact_mounts: tuple[str, ...]
    hostname: str
    api_manager_hostname: str
    api_manager_management_port: int
    api_manager_gateway_port: int
    port_offset: int
    https_port: int
    directory_admin_username: str
    super_admin_username: str
    user_store_type: str
    user_store_read_only_reason: str
    ldap_urls: str
    bind_name: str
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
    app_db_user: str
    db_user_from_base: bool
    jdbc_driver: str
    # The driver's class inside its jar, which the node looks for in the pack's components/lib.
    jdbc_driver_class_file: str
    validation_query: str
    pool_max_active: int
    schema_engine: str | None
    schema_tool: str | None
    log_files: tuple[LogFile, ...]
    metrics_namespace: str
    autoscaling_group: str
    deep_health_path: str


def settings_for(environment: Environment) -> BootstrapSettings:
    """Everything the templates need, derived from one validated environment."""
    config = environment.config
    names = Names(environment.name)
    product = wso2.PRODUCTS[config.product.version]
    jdbc = database_engines.ENGINES[config.database.engine].jdbc

    scope = branch_scope.names_for(environment.name, on_base=environment.base is not None)

    def database(d: wso2.Database) -> RenderedDatabase:
        name = scope.database(d.name)
        url = jdbc.url.format(host="@OBIAM_DB_HOST@", port="@OBIAM_DB_PORT@", database=name)
        # Oracle: one schema (user) per WSO2 database, named after it, as OB's guide sets them up.
        user = name if jdbc.user_per_database else scope.database_user
        alterations = dict(d.alterations).get(jdbc.dialect, "")
        return RenderedDatabase(name, url, user, tuple(s.format(dialect=jdbc.dialect) for s in d.scripts),
                                alterations)

    directory = config.directory
    dc = wso2.domain_dn(directory.name)
    accounts = wso2.directory_accounts(directory.type, directory.name, scope.bind_account, scope.super_admin_account)
    # Managed Microsoft AD keeps its delegated users (and those the Data API creates) in
    # OU=Users,OU=<NetBIOS name>; Simple AD in CN=Users.
    user_base = f"OU=Users,OU={directory.netbios_name},{dc}" if directory.type == "MicrosoftAD" else f"CN=Users,{dc}"
    # Both domain controllers, space-separated: JNDI fails over to the second. Read-only: without
    # LDAPS, Active Directory refuses password writes (unicodePwd needs an encrypted connection),
    # so WSO2 must not offer user or password changes (config refuses directory.ldaps until the
    # toolkit can make LDAPS work end to end).
    ldap_urls = "ldap://@OBIAM_LDAP_1_IP@:389 ldap://@OBIAM_LDAP_2_IP@:389"
    reason = ("Read-only: without LDAPS, Active Directory refuses password writes (unicodePwd needs an "
              "encrypted connection), so WSO2 must not offer user or password changes.")

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
        pack_sha256=config.product.pack_sha256,
        jdbc_driver_s3_uri=config.database.jdbc_driver_s3_uri or "",
        accelerator_toml=wso2.ACCELERATOR_DEPLOYMENT_TOML,
        jdk=config.jdk,
        jdk_major=jdk_major(config.jdk),
        heap_mib=config.nodes.jvm_heap_mib,
        uid=wso2.WSO2_UID,
        artifact_directories=wso2.ARTIFACT_DIRECTORIES,
        artifact_mounts=tuple(f"/mnt/obiam-artifacts/{d}" for d in wso2.ARTIFACT_DIRECTORIES),
        hostname=config.load_balancer.hostname,
        api_manager_hostname=config.product.api_manager.hostname,
        api_manager_management_port=config.product.api_manager.management_port,
        api_manager_gateway_port=config.product.api_manager.gateway_port,
        port_offset=config.product.port_offset,
        https_port=config.product.https_port,
        directory_admin_username=accounts.directory_admin,
        super_admin_username=accounts.super_admin,
        user_store_type="read_only_ldap_unique_id",
        user_store_read_only_reason=reason,
        ldap_urls=ldap_urls,
        bind_name=accounts.bind_name,
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
        app_db_user=scope.database_user,
        # On a branch base the base's function made the user, with every right on the branch's databases only.
        db_user_from_base=environment.base is not None,
        jdbc_driver=jdbc.driver, jdbc_driver_class_file=jdbc.driver.replace('.', '/') + ".class",
        validation_query=jdbc.validation_query,
        # OB 3.0 "Setting up databases": 150 connections, 300 on SQL Server.
        pool_max_active=jdbc.pool_max_active,
        schema_engine=schema_engine,
        schema_tool=jdbc.schema_tool,
        log_files=tuple(LogFile(path, names.log_group(kind)) for kind, path in LOG_FILES),
        metrics_namespace=METRICS_NAMESPACE,
        autoscaling_group=names.autoscaling_group,
        deep_health_path=wso2.DEEP_HEALTH_CHECK_PATH,
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
    # quote or `$(...)` into a root shell script or the overlay.
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


# Every file the node writes from the user data, by its path on the node, and the template it comes from.
NODE_FILES = {
    "/etc/obiam/deployment.overlay.toml": "deployment.overlay.toml.j2",
    "/opt/obiam/bin/node-runtime": "node-runtime.sh.j2",
    "/opt/obiam/bin/prepare-start": "prepare-start.sh.j2",
    "/opt/obiam/bin/db-init": "db-init.sh.j2",
    "/opt/obiam/bin/deep-health": "deep-health.sh.j2",
    "/etc/systemd/system/wso2-obiam.service": "wso2-obiam.service.j2",
    "/etc/systemd/system/obiam-deep-health.service": "deep-health.service.j2",
    "/etc/systemd/system/obiam-deep-health.timer": "deep-health.timer.j2",
    "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json": "cloudwatch-agent.json.j2",
}
CONFIG_TOOL_PATH = "/opt/obiam/lib/obiam_config.py"


def node_files(settings: BootstrapSettings) -> dict[str, str]:
    """Every file the boot script writes, by path on the node, as it writes it."""
    files = {path: render(template, settings) for path, template in NODE_FILES.items()}
    files[CONFIG_TOOL_PATH] = shipping.without_comments(CONFIG_TOOL.read_text(encoding="utf-8"))
    return files


def render_user_data(settings: BootstrapSettings) -> str:
    """The whole boot script, with the node's files embedded as quoted heredocs."""
    files = node_files(settings)
    return render(
        "user-data.sh.j2", settings,
        config_tool=files[CONFIG_TOOL_PATH],
        deployment_overlay=files["/etc/obiam/deployment.overlay.toml"],
        node_runtime=files["/opt/obiam/bin/node-runtime"],
        prepare_start=files["/opt/obiam/bin/prepare-start"],
        db_init=files["/opt/obiam/bin/db-init"],
        deep_health=files["/opt/obiam/bin/deep-health"],
        service_unit=files["/etc/systemd/system/wso2-obiam.service"],
        deep_health_service=files["/etc/systemd/system/obiam-deep-health.service"],
        deep_health_timer=files["/etc/systemd/system/obiam-deep-health.timer"],
        cloudwatch_agent=files["/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"],
    )


def compress(script: str) -> bytes:
    """gzip with no name and no timestamp, so the same script gives the same bytes."""
    return gzip.compress(script.encode("utf-8"), compresslevel=9, mtime=0)


def user_data_base64(environment: Environment) -> str:
    script = render_user_data(settings_for(environment))
    packed = compress(script)
    if len(packed) > USER_DATA_LIMIT:
        heaviest = ", ".join(f"{field} ({count} x {size} bytes)"
                             for field, count, size in config_weight_in(script, environment)[:3])
        raise UserDataTooLarge(
            f"environments/{environment.name}: the node boot script is {len(packed)} bytes gzip-compressed "
            f"({len(script.encode('utf-8'))} uncompressed); EC2 accepts at most {USER_DATA_LIMIT}. "
            f"The values of {environment.source} that weigh most in it: {heaviest or 'none'}. Shorten those; "
            "if they are small, the boot script itself (obiam/bootstrap/templates) has outgrown the limit.")
    return base64.b64encode(packed).decode("ascii")


def config_weight_in(script: str, environment: Environment) -> list[tuple[str, int, int]]:
    """(dotted config field, times its value appears in `script`, value size), heaviest first."""
    weights: list[tuple[str, int, int]] = []

    def walk(value: object, path: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*path, str(key)))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(item, (*path, str(index)))
        elif isinstance(value, str) and len(value) >= 4 and (count := script.count(value)):
            weights.append((".".join(path), count, len(value.encode("utf-8"))))

    walk(environment.config.model_dump(mode="json"), ())
    return sorted(weights, key=lambda weight: (-weight[1] * weight[2], weight[0]))
