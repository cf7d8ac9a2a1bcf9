"""Synthetic stand-ins for the files a bank downloads from WSO2, with the real layouts and tiny contents.

No WSO2 file is in the repository: each archive is made here, with the top directory, the paths and the
modes the real distribution has (sources in obiam/pack/__init__.py) and a few bytes per file:
- wso2is-5.11.0.zip: bin/wso2server.sh (0755), repository/components/{dropins,lib,plugins},
  repository/resources/, repository/conf/deployment.toml, the five runtime-artifact directories
  (userstores empty, as shipped), dbscripts/<dialect>.sql, updates/product.txt (`wso2is-5.11.0`).
- wso2-obiam-accelerator-3.0.0.zip: bin/merge.sh, repository/resources/wso2is-5.11.0-deployment.toml,
  carbon-home/ with the pom's dropins and lib jars, the consentmgr webapp and the consent scripts.
- wso2is-extensions-1.2.10.zip: dropins/ and webapps/ as OB's "Setting up servers" names them.
- wso2am-4.0.0.zip: dbscripts/<dialect>.sql and dbscripts/apimgt/<dialect>.sql among other files.
- JDBC driver jars: a zip with the driver's class file.
The SQL holds CREATE TABLE statements for a few of WSO2's real table names per script, which the boot
rehearsal's database servers run.
"""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

DIALECTS = ("mysql", "postgresql", "mssql", "oracle")
ACCELERATOR = "wso2-obiam-accelerator-3.0.0"

IS_TABLES = {  # WSO2 IS and API Manager dbscripts/<dialect>.sql: registry and user management
    "REG_RESOURCE": "REG_PATH VARCHAR(255), REG_VERSION INTEGER, REG_NAME VARCHAR(256)",
    "UM_USER": "UM_ID INTEGER, UM_USER_NAME VARCHAR(255), UM_TENANT_ID INTEGER",
}
APIMGT_TABLES = {  # APIM 4.0 dbscripts/apimgt/<dialect>.sql: identity and API-M tables
    "IDN_OAUTH2_ACCESS_TOKEN": "TOKEN_ID VARCHAR(255), ACCESS_TOKEN VARCHAR(2048), CONSUMER_KEY_ID INTEGER",
    "SP_METADATA": "ID INTEGER, SP_ID INTEGER, NAME VARCHAR(255), VALUE VARCHAR(255)",
    "AM_APPLICATION_REGISTRATION": "REG_ID INTEGER, SUBSCRIBER_ID INTEGER, INPUTS VARCHAR(1000)",
}
CONSENT_TABLES = {  # OB 3.0 accelerator dbscripts/open-banking/consent/<dialect>.sql
    "OB_CONSENT": "CONSENT_ID VARCHAR(255), RECEIPT TEXT, CREATED_TIME INTEGER, CURRENT_STATUS VARCHAR(255)",
}
ARTIFACTS: dict[str, dict[str, str]] = {  # IS 5.11 ships non-empty eventpublishers and eventstreams
    "eventpublishers": {
        "EmailPublisher.xml": '<eventPublisher name="EmailPublisher" xmlns="http://wso2.org/carbon/eventpublisher">'
                              '<from streamName="id_gov_notify_stream" version="1.0.0"/><to eventAdapterType="email"/>'
                              "</eventPublisher>\n",
        "SMSPublisher.xml": '<eventPublisher name="SMSPublisher" xmlns="http://wso2.org/carbon/eventpublisher">'
                            '<to eventAdapterType="http"/></eventPublisher>\n',
    },
    "eventstreams": {"id_gov_notify_stream_1.0.0.json": '{"name": "id_gov_notify_stream", "version": "1.0.0"}\n'},
    "userstores": {},
    "humantasks": {"README.txt": "Human tasks (BPS) artifacts go here.\n"},
    "bpel": {"README.txt": "BPEL artifacts go here.\n"},
}
ACCELERATOR_DROPINS = ("identity", "common", "consent.service", "consent.extensions", "throttler.service",
                       "service.activator")
IDENTIFIER_HANDLER = "org.wso2.carbon.identity.application.authentication.handler.identifier-6.4.3.jar"
DRIVER_CLASSES = {"mysql": "com/mysql/cj/jdbc/Driver.class", "postgres": "org/postgresql/Driver.class",
                  "sqlserver-se": "com/microsoft/sqlserver/jdbc/SQLServerDriver.class",
                  "oracle-se2": "oracle/jdbc/OracleDriver.class"}
DRIVER_NAMES = {"mysql": "mysql-connector-j-8.4.0.jar", "postgres": "postgresql-42.7.4.jar",
                "sqlserver-se": "mssql-jdbc-12.8.1.jre11.jar", "oracle-se2": "ojdbc11.jar"}

Contents = dict[str, str | bytes]


def create_table_sql(tables: dict[str, str]) -> str:
    return "".join(f"CREATE TABLE {table} ({columns});\n" for table, columns in tables.items())


def zip_bytes(files: Contents, *, top: str = "", executables: tuple[str, ...] = (),
              directories: tuple[str, ...] = ()) -> bytes:
    """A zip as WSO2's assembly writes one: Unix modes, every file under `top/`, listed directories kept."""
    buffer = io.BytesIO()
    prefix = f"{top}/" if top else ""
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if top:
            info = zipfile.ZipInfo(prefix)
            info.external_attr = ((stat.S_IFDIR | 0o755) << 16) | 0x10
            archive.writestr(info, b"")
        for directory in directories:
            info = zipfile.ZipInfo(f"{prefix}{directory}/")
            info.external_attr = ((stat.S_IFDIR | 0o755) << 16) | 0x10
            archive.writestr(info, b"")
        for name, content in files.items():
            info = zipfile.ZipInfo(prefix + name)
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | (0o755 if name in executables else 0o644)) << 16
            archive.writestr(info, content.encode() if isinstance(content, str) else content,
                             zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def jar(entries: dict[str, bytes | str]) -> bytes:
    return zip_bytes({"META-INF/MANIFEST.MF": "Manifest-Version: 1.0\n", **entries})


def driver_jar(engine: str) -> bytes:
    return jar({DRIVER_CLASSES[engine]: b"\xca\xfe\xba\xbe synthetic driver class"})


@dataclass
class Downloads:
    """The paths of one set of synthetic downloads, and the `obiam pack build` arguments for them."""

    identity_server: Path
    accelerator: Path
    extensions: Path
    api_manager: Path
    drivers: list[Path] = field(default_factory=list)

    def arguments(self, output: Path) -> list[str]:
        return ["pack", "build", "--identity-server", str(self.identity_server), "--accelerator", str(self.accelerator),
                "--extensions", str(self.extensions), "--api-manager", str(self.api_manager),
                *[a for d in self.drivers for a in ("--jdbc-driver", str(d))], "--output", str(output)]


def identity_server_files() -> Contents:
    files: Contents = {
        "bin/wso2server.sh": "#!/bin/sh\necho 'WSO2 Carbon (synthetic)'\n",
        "bin/wso2update_linux": "#!/bin/sh\n",
        "repository/conf/deployment.toml": '[server]\nhostname = "localhost"\nnode_ip = "127.0.0.1"\n',
        "repository/resources/conf/default.json": '{"product.version": "5.11.0"}\n',
        "repository/components/plugins/org.wso2.carbon.core-4.6.1.jar": jar({"org/wso2/carbon/core/A.class": b"x"}),
        f"repository/components/dropins/{IDENTIFIER_HANDLER}": jar({"org/wso2/identifier/A.class": b"x"}),
        "repository/components/lib/README.txt": "JDBC drivers and extensions.\n",
        "repository/logs/README.txt": "Carbon logs.\n",
        "updates/product.txt": "wso2is-5.11.0\n",
        **{f"dbscripts/{d}.sql": create_table_sql(IS_TABLES) for d in (*DIALECTS, "h2")},
    }
    for directory, samples in ARTIFACTS.items():
        for name, text in samples.items():
            files[f"repository/deployment/server/{directory}/{name}"] = text
    return files


def accelerator_files(deployment_toml: str = '[server]\nhostname = "IS_HOSTNAME"\noffset = 3\n') -> Contents:
    consentmgr = "carbon-home/repository/deployment/server/webapps/consentmgr"
    return {
        "bin/merge.sh": "#!/bin/bash\n# copies carbon-home over the IS home\n",
        "bin/configure.sh": "#!/bin/bash\n",
        "README.md": "WSO2 Open Banking IS Accelerator 3.0.0\n",
        "repository/conf/configure.properties": "IS_PRODUCT=wso2is-5.11.0\n",
        "repository/resources/wso2is-5.11.0-deployment.toml": deployment_toml,
        "repository/resources/wso2is-6.0.0-deployment.toml": '[server]\nhostname = "IS_HOSTNAME"\n',
        **{f"carbon-home/repository/components/dropins/com.wso2.openbanking.accelerator.{name}-3.0.0.jar":
           jar({f"com/wso2/openbanking/{name.replace('.', '/')}/A.class": b"x"}) for name in ACCELERATOR_DROPINS},
        "carbon-home/repository/components/lib/com.wso2.openbanking.accelerator.consent.dao-3.0.0.jar":
            jar({"com/wso2/openbanking/consent/dao/A.class": b"x"}),
        "carbon-home/repository/conf/open-banking.xml": "<Server xmlns=\"http://wso2.org/projects/carbon/open-banking.xml\"/>\n",
        f"{consentmgr}/index.html": "<html>consent manager</html>\n",
        f"{consentmgr}/runtime-config.js": "window.env = {};\n",
        **{f"carbon-home/dbscripts/open-banking/consent/{d}.sql": create_table_sql(CONSENT_TABLES)
           for d in (*DIALECTS, "h2")},
    }


def api_manager_files() -> Contents:
    return {
        "bin/api-manager.sh": "#!/bin/sh\n",
        "repository/conf/deployment.toml": "[server]\nhostname = \"localhost\"\n",
        **{f"dbscripts/{d}.sql": create_table_sql(IS_TABLES) for d in (*DIALECTS, "h2")},
        **{f"dbscripts/apimgt/{d}.sql": create_table_sql(APIMGT_TABLES) for d in (*DIALECTS, "h2")},
        "dbscripts/mb-store/mysql-mb.sql": "CREATE TABLE MB_QUEUE (ID INTEGER);\n",
    }


def extensions_files() -> Contents:
    return {
        "dropins/wso2is.key.manager.core-1.2.10.jar": jar({"org/wso2/is/key/manager/core/A.class": b"x"}),
        "dropins/wso2is.notification.event.handlers-1.2.10.jar": jar({"org/wso2/is/notification/A.class": b"x"}),
        "webapps/keymanager-operations.war": jar({"WEB-INF/web.xml": "<web-app/>\n"}),
        "README.md": "WSO2 IS Connector\n",
    }


def write_downloads(directory: Path, *, identity_server: Contents | None = None, accelerator: Contents | None = None,
                    extensions: Contents | None = None, api_manager: Contents | None = None,
                    engines: tuple[str, ...] = ("mysql",), tops: dict[str, str] | None = None,
                    executables: tuple[str, ...] = ()) -> Downloads:
    """Writes the five kinds of download into `directory`; each `*_files` default can be replaced whole."""
    directory.mkdir(parents=True, exist_ok=True)
    tops = {"is": "wso2is-5.11.0", "ob": ACCELERATOR, "ext": "wso2is-extensions-1.2.10", "am": "wso2am-4.0.0",
            **(tops or {})}
    shell = tuple(n for n in [*identity_server_files(), *accelerator_files(), *api_manager_files()]
                  if n.endswith(".sh")) + executables
    artifact_dirs = tuple(f"repository/deployment/server/{d}" for d in ARTIFACTS)
    paths = {}
    for kind, files, extra_dirs in (
            ("is", identity_server if identity_server is not None else identity_server_files(), artifact_dirs),
            ("ob", accelerator if accelerator is not None else accelerator_files(), ()),
            ("ext", extensions if extensions is not None else extensions_files(), ()),
            ("am", api_manager if api_manager is not None else api_manager_files(), ())):
        path = directory / f"{tops[kind]}.zip"
        path.write_bytes(zip_bytes(files, top=tops[kind], executables=shell, directories=extra_dirs))
        paths[kind] = path
    drivers = []
    for engine in engines:
        driver = directory / DRIVER_NAMES[engine]
        driver.write_bytes(driver_jar(engine))
        drivers.append(driver)
    return Downloads(paths["is"], paths["ob"], paths["ext"], paths["am"], drivers)
