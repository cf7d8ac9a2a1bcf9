"""The synthetic product pack: `wso2-obiam-3.0.0.zip` with the OB 3.0 IAM layout, built per session.

A real pack cannot be had here (it is IS 5.11 merged with the OB accelerator, built by the
bank). This one has the layout the boot path relies on: bin/wso2server.sh (the product
double), repository/conf, the accelerator's IS toml, real JKS keystores made by keytool
(password wso2carbon, as WSO2 ships them), the runtime artifact directories with non-empty
samples (IS 5.11 ships non-empty eventpublishers/*.xml and eventstreams/*.json), the
dbscripts (our own small CREATE TABLE scripts with WSO2's table names) and components/lib.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.rehearsal.tls import self_signed_pem

PACK_DIRECTORY = "wso2-obiam-3.0.0"
KEYTOOL_ARCHIVE = "keytool.jsa"  # next to the pack zip: the classes keytool loads, for the nodes' keytool
DOUBLES = Path(__file__).resolve().parent / "doubles"
REPOSITORY = Path(__file__).resolve().parents[2]

# Runtime artifacts WSO2's HA guide shares between nodes, with sample files like the pack's.
ARTIFACTS: dict[str, dict[str, str]] = {
    "eventpublishers": {
        "EmailPublisher.xml": '<eventPublisher name="EmailPublisher" xmlns="http://wso2.org/carbon/eventpublisher">'
                              '<from streamName="id_gov_notify_stream" version="1.0.0"/><to eventAdapterType="email"/>'
                              "</eventPublisher>\n",
        "SMSPublisher.xml": '<eventPublisher name="SMSPublisher" xmlns="http://wso2.org/carbon/eventpublisher">'
                            '<to eventAdapterType="http"/></eventPublisher>\n',
    },
    "eventstreams": {
        "id_gov_notify_stream_1.0.0.json": '{"name": "id_gov_notify_stream", "version": "1.0.0"}\n',
    },
    "userstores": {},
    "humantasks": {"README.txt": "Human tasks (BPS) artifacts go here.\n"},
    "bpel": {"README.txt": "BPEL artifacts go here.\n"},
}

_IS_TABLES = {  # WSO2 IS dbscripts/<dialect>.sql: registry and user management
    "REG_RESOURCE": "REG_PATH VARCHAR(255), REG_VERSION INTEGER, REG_NAME VARCHAR(256)",
    "UM_USER": "UM_ID INTEGER, UM_USER_NAME VARCHAR(255), UM_TENANT_ID INTEGER",
}
_APIMGT_TABLES = {  # APIM 4.0 dbscripts/apimgt/<dialect>.sql: identity and API-M tables
    "IDN_OAUTH2_ACCESS_TOKEN": "TOKEN_ID VARCHAR(255), ACCESS_TOKEN VARCHAR(2048), CONSUMER_KEY_ID INTEGER",
    "SP_METADATA": "ID INTEGER, SP_ID INTEGER, NAME VARCHAR(255), VALUE VARCHAR(255)",
    "AM_APPLICATION_REGISTRATION": "REG_ID INTEGER, SUBSCRIBER_ID INTEGER, INPUTS VARCHAR(1000)",
}
_CONSENT_TABLES = {  # OB 3.0 dbscripts/open-banking/consent/<dialect>.sql
    "OB_CONSENT": "CONSENT_ID VARCHAR(255), RECEIPT TEXT, CREATED_TIME INTEGER, CURRENT_STATUS VARCHAR(255)",
}
DBSCRIPTS: dict[str, dict[str, str]] = {
    "dbscripts/{dialect}.sql": _IS_TABLES,
    "dbscripts/open-banking/consent/{dialect}.sql": _CONSENT_TABLES,
    # Where the APIM 4.0 scripts travel: WSO2's own APIM layout, and the bank pack's dbscripts/apim/.
    "dbscripts/apimgt/{dialect}.sql": _APIMGT_TABLES,
    "dbscripts/apim/apimgt/{dialect}.sql": _APIMGT_TABLES,
    "dbscripts/apim/{dialect}.sql": _IS_TABLES,
}
ACCELERATOR_TOML = "repository/resources/wso2is-5.11.0-deployment.toml"
# The project's stand-in for the accelerator's IS 5.11 toml (its tables and placeholder tokens); the
# pack carries it where the accelerator zip puts it. A minimal one if the fixture is absent.
ACCELERATOR_FIXTURE = REPOSITORY / "tests/fixtures/ob-accelerator/wso2is-5.11.0-deployment.toml"
MINIMAL_ACCELERATOR_TOML = '[server]\nhostname = "IS_HOSTNAME"\nnode_ip = "127.0.0.1"\noffset = 3\n'


@dataclass(frozen=True)
class Pack:
    path: Path
    sha256: str

    @property
    def artifact_files(self) -> dict[str, dict[str, str]]:
        return ARTIFACTS


def _keytool(*args: str, jvm: tuple[str, ...] = ()) -> None:
    subprocess.run(["keytool", *jvm, *args, "-storepass", "wso2carbon", "-noprompt"], check=True,
                   capture_output=True, text=True)


def _wso2server_sh() -> str:
    return ("#!/bin/sh\n"
            "# Synthetic pack: the product double stands in for WSO2's launcher (tests/rehearsal).\n"
            f"OBIAM_REHEARSAL_REPOSITORY={REPOSITORY}\nOBIAM_REHEARSAL_PYTHON={REPOSITORY / '.venv/bin/python'}\n"
            "export OBIAM_REHEARSAL_REPOSITORY OBIAM_REHEARSAL_PYTHON\n"
            'exec /usr/bin/python3 "$(dirname "$0")/rehearsal-product.py" "$@"\n')


def build(directory: Path) -> Pack:
    """Writes the pack zip (and its keystores) under `directory`."""
    home = directory / "tree" / PACK_DIRECTORY
    if home.exists():
        shutil.rmtree(home)
    security = home / "repository/resources/security"
    security.mkdir(parents=True)
    _keytool("-genkeypair", "-alias", "wso2carbon", "-keyalg", "RSA", "-keysize", "2048", "-validity", "3650",
             "-dname", "CN=localhost, O=WSO2, L=Mountain View, ST=CA, C=US", "-keypass", "wso2carbon",
             "-storetype", "JKS", "-keystore", str(security / "wso2carbon.jks"))
    _keytool("-exportcert", "-alias", "wso2carbon", "-keystore", str(security / "wso2carbon.jks"),
             "-file", str(directory / "wso2carbon.cer"))
    # This run also records the classes keytool loads (a CDS archive: lab.KEYTOOL_ARCHIVE), so the
    # nodes' keytool starts from them.
    _keytool("-importcert", "-alias", "wso2carbon", "-file", str(directory / "wso2carbon.cer"),
             "-storetype", "JKS", "-keystore", str(security / "client-truststore.jks"),
             jvm=(f"-J-XX:ArchiveClassesAtExit={directory / KEYTOOL_ARCHIVE}", "-J-Xlog:disable", "-J-Xlog:all=off"))
    (security / "rehearsal-https.pem").write_bytes(self_signed_pem("localhost"))
    files: dict[str, str] = {
        "bin/wso2server.sh": _wso2server_sh(),
        "bin/rehearsal-product.py": (DOUBLES / "product.py").read_text(encoding="utf-8"),
        "repository/conf/deployment.toml": '[server]\nhostname = "localhost"\noffset = 3\n',
        ACCELERATOR_TOML: (ACCELERATOR_FIXTURE.read_text(encoding="utf-8") if ACCELERATOR_FIXTURE.exists()
                           else MINIMAL_ACCELERATOR_TOML),
        "repository/components/lib/README.txt": "JDBC drivers and extensions.\n",
        "repository/logs/README.txt": "Carbon logs.\n",
    }
    for directory_name, samples in ARTIFACTS.items():
        (home / "repository/deployment/server" / directory_name).mkdir(parents=True, exist_ok=True)
        for name, text in samples.items():
            files[f"repository/deployment/server/{directory_name}/{name}"] = text
    for template, tables in DBSCRIPTS.items():
        for dialect in ("mysql", "postgresql"):
            files[template.format(dialect=dialect)] = "".join(
                f"CREATE TABLE {table} ({columns});\n" for table, columns in tables.items())
    for relative, text in files.items():
        target = home / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    (home / "bin/wso2server.sh").chmod(0o755)
    zip_path = directory / "wso2-obiam-3.0.0.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(home.parent.rglob("*")):
            relative = path.relative_to(home.parent).as_posix()
            if path.is_dir():
                entry = zipfile.ZipInfo(relative + "/")
                entry.external_attr = (0o40755 << 16) | 0x10  # drwxr-xr-x, MS-DOS directory bit
                archive.writestr(entry, b"")
            else:
                info = zipfile.ZipInfo.from_file(path, relative)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    return Pack(zip_path, hashlib.sha256(zip_path.read_bytes()).hexdigest())


def tampered(pack: Pack, directory: Path) -> Path:
    """The same pack with one file added: a valid zip whose SHA-256 no longer matches the published one."""
    target = directory / "wso2-obiam-3.0.0-tampered.zip"
    shutil.copy(pack.path, target)
    with zipfile.ZipFile(target, "a") as archive:
        archive.writestr(f"{PACK_DIRECTORY}/bin/tampered.sh", "#!/bin/sh\necho tampered\n")
    return target
