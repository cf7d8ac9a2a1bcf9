"""The product pack a bank deploys: WSO2's downloads merged into one zip, its manifest, its checks.

OB 3.0 IAM is not a WSO2 download. It is WSO2 Identity Server 5.11.0 with the Open Banking IS
accelerator 3.0.0 merged over it (the accelerator's bin/merge.sh), the IS Connector for API Manager
4.0 (`wso2is-extensions-1.2.10`), a JDBC driver (IS ships H2's only) and the API Manager 4.0
database scripts IS's databases need. `obiam pack build` does that merge reproducibly,
`obiam pack verify` checks a pack has what the boot path relies on, and the environment pins the
result by SHA-256 (`product.pack_sha256`), which preflight, upload and every node check.

Facts here, and where they come from (the tests name the same sources):
- wso2/financial-open-banking 3.0.0, open-banking-accelerator/accelerators/ob-is: bin/merge.sh
  (what is merged), src/assembly/bin.xml (the zip's layout: bin/, carbon-home/, repository/),
  pom.xml (the jars it puts in carbon-home's dropins and lib), repository/resources/ (the
  per-IS-version deployment.toml, which merge.sh leaves in the accelerator and configure.sh copies).
- wso2/docs-open-banking 3.0.0: install-and-setup/prerequisites.md (component versions: the
  accelerator named wso2ob-is-accelerator-3.0.0, wso2is-extensions-1.2.10), setting-up-servers.md
  (the accelerator named wso2-obiam-accelerator-3.x.0; which extension files go where),
  setting-up-databases.md (which API Manager and IS scripts fill which database).
- wso2/product-is v5.11.0, modules/distribution: src/assembly/bin.xml (the wso2is-5.11.0/ top
  directory, updates/product.txt, *.sh mode 755) and src/assembly/filter.properties (product.txt
  reads `wso2is-5.11.0`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from obiam import database_engines, wso2

MANIFEST_FORMAT = "obiam-pack/1"
MANIFEST_NAME = "obiam-pack-manifest.json"  # inside the pack, under its top directory; written last
# The accelerator's IS 5.11 configuration, where the nodes read it (obiam.wso2).
ACCELERATOR_TOML = wso2.ACCELERATOR_DEPLOYMENT_TOML
ARTIFACT_ROOT = "repository/deployment/server"
DROPINS = "repository/components/dropins"
LIB = "repository/components/lib"
WEBAPPS = "repository/deployment/server/webapps"


class PackError(Exception):
    """Inputs or a pack that cannot be used: one line per problem; the command exits 2."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Distribution:
    """What one OB IAM version is made of, as WSO2 ships the parts."""

    version: str
    directory: str  # the pack's own top directory
    identity_server: str  # top directory of the IS zip, and its updates/product.txt
    accelerator: tuple[str, ...]  # the accelerator zip's top directory, under each name WSO2 uses
    extensions: str
    api_manager: str
    # Jars the accelerator's pom puts in carbon-home's dropins (name prefixes; versions follow the build).
    accelerator_dropins: tuple[str, ...]
    # merge.sh deletes this IS dropin: the accelerator replaces the identifier-first handler.
    replaced_dropin: str
    # The IS Connector files OB's "Setting up servers" step 5 copies, by path in its zip -> pack path.
    extension_files: tuple[tuple[str, str], ...]


# One entry per supported product version (obiam.wso2.PRODUCT_JDKS).
DISTRIBUTIONS: dict[str, Distribution] = {
    "3.0.0": Distribution(
        version="3.0.0",
        directory="wso2-obiam-3.0.0",
        identity_server="wso2is-5.11.0",
        # bin.xml's baseDirectory and setting-up-servers.md say wso2-obiam-accelerator; prerequisites.md
        # lists wso2ob-is-accelerator. Both name the same zip.
        accelerator=("wso2-obiam-accelerator-3.0.0", "wso2ob-is-accelerator-3.0.0"),
        extensions="wso2is-extensions-1.2.10",
        api_manager="wso2am-4.0.0",
        accelerator_dropins=("com.wso2.openbanking.accelerator.identity-",
                             "com.wso2.openbanking.accelerator.common-",
                             "com.wso2.openbanking.accelerator.consent.service-",
                             "com.wso2.openbanking.accelerator.consent.extensions-"),
        replaced_dropin="org.wso2.carbon.identity.application.authentication.handler.identifier-",
        extension_files=(
            ("dropins/wso2is.key.manager.core-", DROPINS),
            ("dropins/wso2is.notification.event.handlers-", DROPINS),
            ("webapps/keymanager-operations.war", WEBAPPS),
        ),
    ),
}

PRODUCT_NAMES = {"wso2is": "WSO2 Identity Server", "wso2am": "WSO2 API Manager", "wso2ei": "WSO2 Enterprise Integrator",
                 "wso2mi": "WSO2 Micro Integrator", "wso2si": "WSO2 Streaming Integrator",
                 "wso2is-extensions": "the WSO2 IS Connector (wso2is-extensions)",
                 "wso2-obiam-accelerator": "the OB IS accelerator", "wso2ob-is-accelerator": "the OB IS accelerator",
                 "wso2-obam-accelerator": "the OB API Manager accelerator",
                 "wso2ob-apim-accelerator": "the OB API Manager accelerator",
                 "wso2-obbi-accelerator": "the OB BI accelerator", "wso2ob-bi-accelerator": "the OB BI accelerator"}
_NAME_VERSION = re.compile(r"^(?P<name>[a-z0-9-]+?)-(?P<version>\d+(\.\d+)*)$")


def describe_directory(directory: str) -> str:
    """`wso2am-4.0.0` -> `WSO2 API Manager 4.0.0`, or the name as it is."""
    match = _NAME_VERSION.match(directory)
    if match and match["name"] in PRODUCT_NAMES:
        return f"{PRODUCT_NAMES[match['name']]} {match['version']}"
    return f"'{directory}'"


def dialects() -> list[str]:
    """The dbscripts dialect of every engine the toolkit deploys (mysql, postgresql, mssql, oracle)."""
    return sorted({engine.jdbc.dialect for engine in database_engines.ENGINES.values()})


def database_scripts(version: str, dialect: str) -> list[str]:
    """Pack-relative scripts the nodes' schema step loads for one dialect (obiam.wso2 databases)."""
    return sorted({script.format(dialect=dialect) for database in wso2.PRODUCTS[version].databases
                   for script in database.scripts})


def driver_class_path(engine: str) -> str:
    """The class file a driver jar for the engine carries: `com/mysql/cj/jdbc/Driver.class`."""
    return database_engines.ENGINES[engine].jdbc.driver.replace(".", "/") + ".class"


def file_sha256(path: Path) -> str:
    """A file's SHA-256, read a MiB at a time (packs are hundreds of MiB)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_json(manifest: dict[str, object]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def beside_manifest_name(pack_name: str) -> str:
    """`wso2-obiam-3.0.0.zip` -> `wso2-obiam-3.0.0.manifest.json`."""
    return pack_name.removesuffix(".zip") + ".manifest.json"
