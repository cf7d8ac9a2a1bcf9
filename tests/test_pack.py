"""`obiam pack build`, `verify` and `upload` on small synthetic WSO2 downloads (tests/wso2_downloads.py).

Each test that encodes a WSO2 rule names its source. No synthesis, no cdktf; upload runs against moto.
Cost: about 2 s on the 2-core machine (`pytest tests/test_pack.py --durations=0`: every test under 0.4 s,
most under 0.05 s).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from obiam import pack
from obiam.cli import app
from obiam.ops import aws
from obiam.pack.verify import verify_pack
from tests import wso2_downloads as downloads

TOP = "wso2-obiam-3.0.0"


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def build(directory: Path, name: str = "wso2-obiam-3.0.0.zip", **changes: Any) -> tuple[Any, Path]:
    inputs = downloads.write_downloads(directory / "downloads", **changes)
    output = directory / name
    return run(*inputs.arguments(output)), output


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result, output = build(tmp_path_factory.mktemp("pack"), engines=("mysql", "postgres"))
    assert result.exit_code == 0, result.output
    return output


def entries(path: Path) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(path) as archive:
        return {i.filename.removeprefix(TOP + "/"): i for i in archive.infolist()}


def read(path: Path, relative: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(f"{TOP}/{relative}")


def failed(checks: list[Any]) -> dict[str, str]:
    return {c.name: c.detail for c in checks if not c.passed}


# --- build: what WSO2's merge step and OB's set-up guides do ------------------------------------------

def test_build_merges_the_accelerator_over_identity_server_as_merge_sh_does(built: Path) -> None:
    """financial-open-banking 3.0.0, open-banking-accelerator/accelerators/ob-is/bin/merge.sh: carbon-home/* is
    copied over the IS home, and the IS identifier-first handler dropin is deleted. The accelerator's
    wso2is-5.11.0-deployment.toml stays in its repository/resources/ (configure.sh copies it); the pack
    carries it at repository/resources/ for the nodes (obiam.wso2.ACCELERATOR_DEPLOYMENT_TOML)."""
    found = entries(built)
    dropins = {p.rsplit("/", 1)[-1] for p in found if p.startswith(pack.DROPINS + "/") and p.endswith(".jar")}
    assert {f"com.wso2.openbanking.accelerator.{n}-3.0.0.jar" for n in downloads.ACCELERATOR_DROPINS} <= dropins
    assert downloads.IDENTIFIER_HANDLER not in dropins
    assert "repository/components/lib/com.wso2.openbanking.accelerator.consent.dao-3.0.0.jar" in found
    assert "repository/conf/open-banking.xml" in found
    assert "dbscripts/open-banking/consent/mysql.sql" in found
    assert read(built, pack.ACCELERATOR_TOML) == downloads.accelerator_files()[
        "repository/resources/wso2is-5.11.0-deployment.toml"].encode()
    # IS's own files stay, and nothing of the accelerator outside carbon-home lands in the IS home.
    assert "repository/components/plugins/org.wso2.carbon.core-4.6.1.jar" in found
    assert not any(p.startswith(("carbon-home/", "bin/merge.sh", "repository/resources/wso2is-6.0.0")) for p in found)


def test_build_adds_the_is_connector_drivers_and_api_manager_scripts_where_the_nodes_read_them(built: Path) -> None:
    """docs-open-banking 3.0.0 install-and-setup/setting-up-servers.md, "Setting up Accelerator" step 5: the
    wso2is.key.manager.core and wso2is.notification.event.handlers jars into dropins and keymanager-operations.war
    into webapps. setting-up-databases.md: a JDBC driver in <IS_HOME>/repository/components/lib; the tables of
    openbank_apimgtdb from <APIM_HOME>/dbscripts/apimgt, of am_configdb, govdb and userdb from <APIM_HOME>/dbscripts
    (here under dbscripts/apim/, where obiam.wso2's schema step reads them)."""
    found = entries(built)
    assert "repository/components/dropins/wso2is.key.manager.core-1.2.10.jar" in found
    assert "repository/components/dropins/wso2is.notification.event.handlers-1.2.10.jar" in found
    assert "repository/deployment/server/webapps/keymanager-operations.war" in found
    assert {"repository/components/lib/mysql-connector-j-8.4.0.jar",
            "repository/components/lib/postgresql-42.7.4.jar"} <= set(found)
    for dialect in downloads.DIALECTS:
        assert set(pack.database_scripts("3.0.0", dialect)) <= set(found), dialect
    apimgt = downloads.create_table_sql(downloads.APIMGT_TABLES).encode()
    assert read(built, "dbscripts/apim/apimgt/mysql.sql") == apimgt
    assert not any(p.startswith("dbscripts/apim/mb-store") for p in found)  # only what the schema step loads
    for directory in ("eventpublishers", "userstores", "eventstreams", "humantasks", "bpel"):
        assert f"repository/deployment/server/{directory}/" in found  # userstores ships empty


def test_build_replaces_consentmgr_and_unpacks_its_war_keeping_runtime_config(tmp_path: Path) -> None:
    """financial-open-banking 3.0.0 ob-is bin/merge.sh: an existing consentmgr webapp is deleted with its
    runtime-config.js kept aside and restored, and consentmgr.war is unpacked into consentmgr/ and deleted."""
    webapps = "repository/deployment/server/webapps"
    identity_server = {**downloads.identity_server_files(),
                       f"{webapps}/consentmgr/runtime-config.js": "window.env = {bank: 'own settings'};\n",
                       f"{webapps}/consentmgr/old.js": "old\n"}
    accelerator = {k: v for k, v in downloads.accelerator_files().items() if "/consentmgr/" not in k}
    accelerator[f"carbon-home/{webapps}/consentmgr.war"] = downloads.jar({"index.html": "new\n",
                                                                           "runtime-config.js": "window.env = {};\n"})
    result, output = build(tmp_path, identity_server=identity_server, accelerator=accelerator)
    assert result.exit_code == 0, result.output
    found = entries(output)
    assert read(output, f"{webapps}/consentmgr/index.html") == b"new\n"
    assert read(output, f"{webapps}/consentmgr/runtime-config.js") == b"window.env = {bank: 'own settings'};\n"
    assert f"{webapps}/consentmgr/old.js" not in found
    assert f"{webapps}/consentmgr.war" not in found


def test_build_is_reproducible_byte_for_byte(tmp_path: Path) -> None:
    """The same inputs give the same pack: fixed timestamps, sorted entries, fixed modes, and inputs named by
    their content, so the pinned SHA-256 can be rebuilt and checked by anyone."""
    first, first_output = build(tmp_path / "a")
    assert first.exit_code == 0, first.output
    # The same bytes, elsewhere, written later, the distribution zips under other names (a driver's file
    # name is its name in repository/components/lib, so it stays).
    second_dir = tmp_path / "b" / "downloads"
    shutil.copytree(tmp_path / "a" / "downloads", second_dir)
    for path in second_dir.glob("*.zip"):
        path.rename(path.with_name("copy-of-" + path.name))
    renamed = {p.name.removeprefix("copy-of-"): p for p in second_dir.iterdir()}
    inputs = downloads.Downloads(renamed["wso2is-5.11.0.zip"], renamed[f"{downloads.ACCELERATOR}.zip"],
                                 renamed["wso2is-extensions-1.2.10.zip"], renamed["wso2am-4.0.0.zip"],
                                 [renamed["mysql-connector-j-8.4.0.jar"]])
    second_output = tmp_path / "b" / "wso2-obiam-3.0.0.zip"
    second = run(*inputs.arguments(second_output))
    assert second.exit_code == 0, second.output
    assert first_output.read_bytes() == second_output.read_bytes()
    infos = entries(first_output)
    names = [n for n in infos if n != pack.MANIFEST_NAME]
    assert names == sorted(names) and list(infos)[-1] == pack.MANIFEST_NAME
    assert {i.date_time for i in infos.values()} == {(1980, 1, 1, 0, 0, 0)}
    modes = {n: (i.external_attr >> 16) & 0o7777 for n, i in infos.items()}
    assert modes["bin/wso2server.sh"] == 0o755 and modes["repository/conf/deployment.toml"] == 0o644
    assert set(modes.values()) == {0o755, 0o644}


def test_build_writes_a_manifest_inside_and_beside_the_pack(built: Path) -> None:
    inside = json.loads(read(built, pack.MANIFEST_NAME))
    beside = json.loads((built.parent / "wso2-obiam-3.0.0.manifest.json").read_text())
    assert beside["pack"] == {"file": built.name, "sha256": hashlib.sha256(built.read_bytes()).hexdigest(),
                              "size": built.stat().st_size}
    assert {k: v for k, v in beside.items() if k != "pack"} == inside
    assert inside["product"] == {"name": "WSO2 Open Banking IAM", "version": "3.0.0"}
    components = {c["component"]: c for c in inside["components"] if c["component"] != "jdbc-driver"}
    assert {k: c["directory"] for k, c in components.items()} == {
        "identity-server": "wso2is-5.11.0", "ob-accelerator": downloads.ACCELERATOR,
        "is-connector": "wso2is-extensions-1.2.10", "api-manager-dbscripts": "wso2am-4.0.0"}
    assert components["identity-server"]["updates_product"] == "wso2is-5.11.0"
    drivers = [c for c in inside["components"] if c["component"] == "jdbc-driver"]
    assert [(d["file"], d["engines"]) for d in drivers] == [("mysql-connector-j-8.4.0.jar", ["mysql"]),
                                                            ("postgresql-42.7.4.jar", ["postgres"])]
    assert all(len(c["input_sha256"]) == 64 for c in inside["components"])
    with zipfile.ZipFile(built) as archive:
        for name, entry in inside["files"].items():
            assert hashlib.sha256(archive.read(f"{TOP}/{name}")).hexdigest() == entry["sha256"], name


def test_build_records_the_wso2_update_level(tmp_path: Path) -> None:
    """product-is v5.11.0 modules/distribution/src/assembly/bin.xml and filter.properties: the pack ships
    updates/product.txt reading `wso2is-5.11.0`; the WSO2 update tool (Updates 2.0) records its state in
    updates/config.json, whose `update-level` the manifest carries when it is there."""
    identity_server = {**downloads.identity_server_files(),
                       "updates/config.json": json.dumps({"update-level": 239, "channel": "full"})}
    result, output = build(tmp_path, identity_server=identity_server)
    assert result.exit_code == 0, result.output
    manifest = json.loads(read(output, pack.MANIFEST_NAME))
    assert manifest["components"][0]["update_level"] == "239"
    assert "(update level 239)" in result.output


# --- build: inputs that are not what they claim -------------------------------------------------------

def assert_refused(result: Any, output: Path, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("obiam pack build: ") and lines[0].endswith("; nothing was written:"), lines[0]
    assert len(lines) == 1 + len(expected), lines
    for line, words in zip(lines[1:], expected, strict=True):
        assert words in line, (words, line)
    assert not list(output.parent.glob("*.zip")) and not list(output.parent.glob("*.json")), \
        "a refused build must leave nothing behind"


def test_build_refuses_another_product_and_another_version_naming_each(tmp_path: Path) -> None:
    """docs-open-banking 3.0.0 install-and-setup/prerequisites.md: OB 3.0 IAM is IS 5.11.0 (or 6.0.0, which the
    toolkit does not deploy) with wso2is-extensions-1.2.10 for API Manager 4.0.0."""
    result, output = build(tmp_path, tops={"is": "wso2am-4.0.0", "ext": "wso2is-extensions-1.4.2"})
    assert_refused(result, output,
                   "wso2am-4.0.0.zip: is WSO2 API Manager 4.0.0 (top directory wso2am-4.0.0/); --identity-server "
                   "takes WSO2 Identity Server 5.11.0 (wso2is-5.11.0.zip)",
                   "wso2is-extensions-1.4.2.zip: is the WSO2 IS Connector (wso2is-extensions) 1.4.2")


def test_build_refuses_an_accelerator_without_its_files(tmp_path: Path) -> None:
    """financial-open-banking 3.0.0 ob-is: bin/merge.sh, the pom's dropins, repository/resources/
    wso2is-5.11.0-deployment.toml are what a 3.0.0 IS accelerator zip holds."""
    accelerator = {k: v for k, v in downloads.accelerator_files().items()
                   if k != "bin/merge.sh" and ".accelerator.identity-" not in k}
    result, output = build(tmp_path, accelerator=accelerator)
    assert_refused(result, output,
                   f"{downloads.ACCELERATOR}/bin/merge.sh: missing; the OB IS accelerator 3.0.0 ships it",
                   f"{downloads.ACCELERATOR}/carbon-home/repository/components/dropins/"
                   "com.wso2.openbanking.accelerator.identity-*.jar: missing")


def test_build_refuses_an_identity_server_of_another_update_product(tmp_path: Path) -> None:
    identity_server = {**downloads.identity_server_files(), "updates/product.txt": "wso2is-5.10.0\n"}
    result, output = build(tmp_path, identity_server=identity_server)
    assert_refused(result, output, "wso2is-5.11.0/updates/product.txt: names WSO2 Identity Server 5.10.0; "
                                   "--identity-server takes WSO2 Identity Server 5.11.0")


def test_build_refuses_files_that_are_not_zips_or_not_drivers(tmp_path: Path) -> None:
    inputs = downloads.write_downloads(tmp_path / "downloads")
    inputs.extensions.write_text("<html>a download page, not the zip</html>")
    not_a_driver = tmp_path / "downloads" / "commons-lang.jar"
    not_a_driver.write_bytes(downloads.jar({"org/apache/commons/lang/StringUtils.class": b"x"}))
    inputs.drivers = [not_a_driver]
    output = tmp_path / "wso2-obiam-3.0.0.zip"
    assert_refused(run(*inputs.arguments(output)), output,
                   "wso2is-extensions-1.2.10.zip: is not a zip archive; --extensions takes the WSO2 IS Connector",
                   "commons-lang.jar: carries none of the driver classes the nodes load")


# --- verify ------------------------------------------------------------------------------------------

def test_verify_passes_a_built_pack_for_each_engine_it_carries_a_driver_for(built: Path) -> None:
    assert failed(verify_pack(built)) == {}
    assert failed(verify_pack(built, engine="postgres")) == {}
    result = run("pack", "verify", str(built), "--engine", "mysql")
    assert result.exit_code == 0, result.output
    assert "PASS  pack SHA-256: " in result.output


def test_verify_fails_an_engine_without_its_driver(built: Path) -> None:
    """IS 5.11 ships only H2's driver (product-is v5.11.0 LICENSE.txt): a pack without the engine's driver
    cannot reach its database."""
    assert failed(verify_pack(built, engine="oracle-se2")) == {
        "JDBC driver (oracle-se2)": "no jar in repository/components/lib has oracle.jdbc.OracleDriver"}


def rewrite(source: Path, target: Path, change: dict[str, bytes | None]) -> Path:
    """A copy of the pack with entries replaced (bytes) or dropped (None)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            relative = info.filename.removeprefix(TOP + "/")
            if relative in change:
                if change[relative] is not None:
                    new.writestr(info, change[relative])  # type: ignore[arg-type]
                continue
            new.writestr(info, old.read(info))
    return target


def test_verify_names_what_the_boot_path_would_miss_and_what_changed(built: Path, tmp_path: Path) -> None:
    """The boot path needs bin/wso2server.sh, the accelerator's IS 5.11 toml and the five runtime-artifact
    directories WSO2's HA guide shares; the manifest must match the content byte for byte."""
    broken = rewrite(built, tmp_path / "wso2-obiam-3.0.0.zip", {
        pack.ACCELERATOR_TOML: None, "repository/deployment/server/humantasks/": None,
        "repository/deployment/server/humantasks/README.txt": None,
        "repository/conf/deployment.toml": b"[server]\nhostname = \"evil\"\n"})
    problems = failed(verify_pack(broken))
    assert set(problems) == {"accelerator configuration", "runtime-artifact directories", "manifest"}, problems
    assert problems["runtime-artifact directories"].endswith("; missing humantasks")
    assert problems["manifest"] == ("files differ from the manifest: 1 changed (repository/conf/deployment.toml); "
                                    "2 listed but absent (repository/deployment/server/humantasks/README.txt, "
                                    "repository/resources/wso2is-5.11.0-deployment.toml)")
    result = run("pack", "verify", str(broken))
    assert result.exit_code == 1 and "FAIL  manifest:" in result.output


def test_verify_checks_the_pack_hash_the_manifest_beside_it_records(built: Path, tmp_path: Path) -> None:
    copy = tmp_path / built.name
    copy.write_bytes(built.read_bytes() + b"\0")  # a zip still, with one more byte
    beside = tmp_path / "wso2-obiam-3.0.0.manifest.json"
    shutil.copy(built.parent / beside.name, beside)
    assert set(failed(verify_pack(copy))) == {"pack SHA-256"}


def test_verify_of_something_that_is_not_a_pack_is_one_line_and_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "wso2-obiam-3.0.0.zip"
    junk.write_text("not a zip")
    result = run("pack", "verify", str(junk))
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith(f"{junk}: is not a zip archive")


# --- upload ------------------------------------------------------------------------------------------

@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from moto import mock_aws

    for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        session = boto3.session.Session(region_name="eu-west-2")
        monkeypatch.setattr(aws, "session", lambda region: session)
        client = session.client("s3")
        client.create_bucket(Bucket="example-bank-wso2-artifacts",
                             CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
        yield client


KEY = "packs/wso2-obiam-3.0.0.zip"


def upload(path: Path, *extra: str) -> Any:
    return run("pack", "upload", str(path), "--env", "staging", "--environments-dir", "environments", *extra)


def test_upload_puts_the_pack_encrypted_with_its_sha256_and_prints_the_pin(built: Path, s3: Any) -> None:
    """S3 keeps a full-object SHA-256 only for a single PutObject with ChecksumAlgorithm SHA256 (multipart
    uploads get a composite one): S3 User Guide, "Checking object integrity"."""
    result = upload(built)
    assert result.exit_code == 0, result.output
    sha256 = hashlib.sha256(built.read_bytes()).hexdigest()
    head = s3.head_object(Bucket="example-bank-wso2-artifacts", Key=KEY, ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert bytes.fromhex(sha256) == __import__("base64").b64decode(head["ChecksumSHA256"])
    assert "encrypted with SSE-KMS with the account's AWS managed key aws/s3" in result.output
    assert result.output.rstrip().endswith(f"product:\n  pack_s3_uri: s3://example-bank-wso2-artifacts/{KEY}\n"
                                           f"  pack_sha256: {sha256}")
    again = upload(built)
    assert again.exit_code == 0 and "already holds this pack" in again.output


def test_upload_never_silently_replaces_the_pack_running_nodes_pin(built: Path, s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket="example-bank-wso2-artifacts", Key=KEY, Body=b"the pack the nodes run",
                  ChecksumAlgorithm="SHA256")
    result = upload(built)
    assert result.exit_code == 2
    assert "already holds another pack" in result.output and "--replace" in result.output
    assert s3.get_object(Bucket="example-bank-wso2-artifacts", Key=KEY)["Body"].read() == b"the pack the nodes run"
    assert upload(built, "--replace").exit_code == 0


def test_upload_refuses_a_pack_that_fails_verify_for_the_environment(built: Path, s3: Any, tmp_path: Path) -> None:
    broken = rewrite(built, tmp_path / "wso2-obiam-3.0.0.zip", {"bin/wso2server.sh": None})
    result = upload(broken)
    assert result.exit_code == 1
    assert "FAIL  start script: bin/wso2server.sh is missing" in result.output
    assert s3.list_objects_v2(Bucket="example-bank-wso2-artifacts").get("KeyCount", 0) == 0
