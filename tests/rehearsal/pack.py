"""The rehearsal's product pack: `obiam pack build` run on synthetic WSO2 downloads, once per session.

A real pack cannot be had here (IS 5.11 merged with the OB accelerator, from WSO2's downloads). The
downloads are made by tests/wso2_downloads.py with the real layouts; the IS zip additionally carries
what the rehearsal needs of the product: bin/wso2server.sh (the product double), real JKS keystores
made by keytool (password wso2carbon, as WSO2 ships them) and the HTTPS certificate the double serves.
The accelerator's IS 5.11 toml is the project's stand-in fixture. Then the toolkit's own command
merges them, exactly as a bank would run it, and the nodes get its output.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests import wso2_downloads as downloads
from tests.rehearsal.tls import self_signed_pem

PACK_DIRECTORY = "wso2-obiam-3.0.0"
KEYTOOL_ARCHIVE = "keytool.jsa"  # next to the pack zip: the classes keytool loads, for the nodes' keytool
DOUBLES = Path(__file__).resolve().parent / "doubles"
REPOSITORY = Path(__file__).resolve().parents[2]

# Runtime artifacts WSO2's HA guide shares between nodes, with the samples the synthetic IS zip ships.
ARTIFACTS: dict[str, dict[str, str]] = downloads.ARTIFACTS
ACCELERATOR_TOML = "repository/resources/wso2is-5.11.0-deployment.toml"
# The project's stand-in for the accelerator's IS 5.11 toml (its tables and placeholder tokens); the
# accelerator zip carries it where WSO2's does. A minimal one if the fixture is absent.
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
    """Makes the synthetic downloads under `directory`, then the pack with `obiam pack build`."""
    security = directory / "security"
    if security.exists():
        shutil.rmtree(security)
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
    identity_server = downloads.identity_server_files()
    identity_server.update({
        "bin/wso2server.sh": _wso2server_sh(),
        "bin/rehearsal-product.py": (DOUBLES / "product.py").read_text(encoding="utf-8"),
        "repository/conf/deployment.toml": '[server]\nhostname = "localhost"\noffset = 3\n',
        "repository/resources/security/wso2carbon.jks": (security / "wso2carbon.jks").read_bytes(),
        "repository/resources/security/client-truststore.jks": (security / "client-truststore.jks").read_bytes(),
        "repository/resources/security/rehearsal-https.pem": self_signed_pem("localhost"),
    })
    toml = (ACCELERATOR_FIXTURE.read_text(encoding="utf-8") if ACCELERATOR_FIXTURE.exists()
            else MINIMAL_ACCELERATOR_TOML)
    inputs = downloads.write_downloads(directory / "downloads", identity_server=identity_server,
                                       accelerator=downloads.accelerator_files(toml), engines=("mysql", "postgres"))
    zip_path = directory / f"{PACK_DIRECTORY}.zip"
    result = subprocess.run([sys.executable, "-m", "obiam.cli", *inputs.arguments(zip_path)], capture_output=True,
                            text=True, check=False, cwd=REPOSITORY)
    if result.returncode != 0:
        raise RuntimeError(f"obiam pack build failed ({result.returncode}):\n{result.stderr}{result.stdout}")
    return Pack(zip_path, hashlib.sha256(zip_path.read_bytes()).hexdigest())


def tampered(pack: Pack, directory: Path) -> Path:
    """The same pack with one file added: a valid zip whose SHA-256 is not the one the environment pins."""
    target = directory / "wso2-obiam-3.0.0-tampered.zip"
    shutil.copy(pack.path, target)
    with zipfile.ZipFile(target, "a") as archive:
        archive.writestr(f"{PACK_DIRECTORY}/bin/tampered.sh", "#!/bin/sh\necho tampered\n")
    return target
