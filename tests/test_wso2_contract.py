"""The WSO2 contract: the node configuration every environment renders, merged the way the node
merges it, meets the rules WSO2 OB 3.0 IAM (IS 5.11) needs to boot into a working cluster.

No synthesis: the node files come from `obiam.bootstrap.node_files` (test_bootstrap.py checks
that the synthesized user data embeds exactly these), merged with a stand-in for the OB
accelerator's deployment.toml (tests/fixtures/ob-accelerator). Each rule test names its source.
Cost: ~0.5 s for the whole module.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, VARIANTS, load_repo_environments, variant_environment
from obiam import bootstrap, node_contract
from obiam.bootstrap.node import obiam_config
from obiam.environments import Environment

ACCELERATOR_TOML = ROOT / "tests" / "fixtures" / "ob-accelerator" / "wso2is-5.11.0-deployment.toml"
BOOT_VALUES = {
    "LOCAL_IP": "10.40.1.10", "DB_HOST": "obiam-prod-db.c1a2b3.eu-west-2.rds.amazonaws.com", "DB_PORT": "3306",
    "LDAP_1_IP": "10.40.3.4", "LDAP_2_IP": "10.40.4.4", "CLUSTER_MEMBERS": "10.40.1.10:5701 10.40.2.11:5701",
    "DB_PASSWORD": "Gen3rated.Passw0rd:=+-_", "DIRECTORY_BIND_PASSWORD": "An0ther-Generated_pw.=+:",
    "SUPER_ADMIN_PASSWORD": "Sup3r-Admin_Generated.pw=",
    "ENCRYPTION_KEY": "8f14e45fceea167a5a36dedd4bea2543", "CONSENT_PORTAL_PASSWORD": "P0rtal-Client-Secret_0001",
    "KEYSTORE_PASSWORD": "Keyst0re-Generated.pw_0001",
}
def all_environments() -> dict[str, Environment]:
    environments = load_repo_environments()
    chosen = dict(environments)
    chosen.update({name: variant_environment(name) for name in VARIANTS})  # SQL Server and Oracle among them
    return chosen


ENVIRONMENTS = all_environments()


def overlay_of(environment: Environment) -> str:
    return bootstrap.node_files(bootstrap.settings_for(environment))["/etc/obiam/deployment.overlay.toml"]


def merged(environment: Environment, tmp_path: Path, base: Path = ACCELERATOR_TOML) -> dict[str, Any]:
    """deployment.toml as the node writes it: the node's own tool, run as the node runs it."""
    overlay, values, output = tmp_path / "overlay.toml", tmp_path / "values.json", tmp_path / "deployment.toml"
    overlay.write_text(overlay_of(environment))
    values.write_text(json.dumps(BOOT_VALUES))
    result = subprocess.run([sys.executable, str(bootstrap.CONFIG_TOOL), "render", "--base", str(base),
                             "--overlay", str(overlay), "--values", str(values), "--output", str(output)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return tomllib.loads(output.read_text())


@pytest.fixture(scope="module")
def prod_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return merged(ENVIRONMENTS["prod"], tmp_path_factory.mktemp("prod"))


def broken(document: dict[str, Any], path: tuple[str, ...], value: Any) -> list[str]:
    changed = copy.deepcopy(document)
    table = changed
    for key in path[:-1]:
        table = table.setdefault(key, {})
    if value is None:
        table.pop(path[-1], None)
    else:
        table[path[-1]] = value
    return node_contract.check(changed)


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_every_environment_and_variant_renders_a_configuration_wso2_accepts(name: str, tmp_path: Path) -> None:
    """Every rule below, on every repo environment and variant (MySQL, PostgreSQL, SQL Server,
    Oracle; Managed AD, Simple AD, LDAPS; wka and aws clustering)."""
    assert node_contract.check(merged(ENVIRONMENTS[name], tmp_path)) == []


def test_the_overlay_alone_passes_the_template_rules_it_can() -> None:
    problems = node_contract.check(tomllib.loads(overlay_of(ENVIRONMENTS["prod"])), template=True)
    # The overlay carries no OB wiring: that comes from the accelerator's file.
    assert problems and all("OB accelerator's configuration was lost" in p for p in problems), problems


def test_well_known_members_are_one_array_of_host_port_strings(prod_config: dict[str, Any]) -> None:
    """carbon-kernel v4.6.1 templates/repository/conf/axis2/axis2.xml.j2 loops over
    clustering.members and splits each on ':'; default.json's default is ["127.0.0.1:4000"]. A
    table per member makes Jinjava throw and config-mapper stops the server."""
    assert prod_config["clustering"]["members"] == ["10.40.1.10:5701", "10.40.2.11:5701"]
    tables = [{"hostName": "10.40.1.10", "port": "5701"}]
    assert any(p.startswith("clustering.members") for p in broken(prod_config, ("clustering", "members"), tables))


def test_active_directory_is_searched_with_ad_object_classes(prod_config: dict[str, Any]) -> None:
    """carbon-kernel v4.6.1 infer.json: the AD and read-only LDAP types infer objectClass=person
    and uid filters, which AD never matches; key-mappings.json maps user_name_search_filter,
    user_entry_object_class, group_* and back_links_enabled; Referral has no mapping and goes
    under [user_store.properties]. Values are pasted into user-mgt.xml unescaped, hence &amp;."""
    store = prod_config["user_store"]
    assert store["user_name_search_filter"] == "(&amp;(objectClass=user)(sAMAccountName=?))"
    assert store["user_entry_object_class"] == "user" and store["group_entry_object_class"] == "group"
    assert store["back_links_enabled"] is True and store["properties"]["Referral"] == "follow"
    assert "class" not in store, "the accelerator's JDBC user store class must not survive the merge"
    assert broken(prod_config, ("user_store", "user_name_search_filter"), "(&amp;(objectClass=person)(uid=?))")


def test_without_ldaps_the_store_is_declared_read_only(tmp_path: Path) -> None:
    """AD accepts unicodePwd (password writes) only over an encrypted connection (Microsoft KB
    269190); carbon-kernel v4.6.1 UniqueIDActiveDirectoryUserStoreManager warns that password
    operations fail without LDAPS or StartTLS. infer.json infers no ReadOnly for any LDAP type."""
    config = merged(ENVIRONMENTS["prod"], tmp_path)
    store = config["user_store"]
    assert store["type"] == "read_only_ldap_unique_id" and store["properties"]["ReadOnly"] is True
    assert store["connection_url"] == "ldap://10.40.3.4:389 ldap://10.40.4.4:389"
    writable = {**store, "type": "active_directory_unique_id"}
    assert any("LDAPS or StartTLS" in p for p in broken(config, ("user_store",), writable))
    without_flag = {**store, "properties": {"Referral": "follow"}}
    assert any("ReadOnly" in p for p in broken(config, ("user_store",), without_flag))


def test_the_admin_account_is_created_on_a_fresh_realm(prod_config: dict[str, Any]) -> None:
    """wso2/product-is#20379: on kernel 4.6.x, create_admin_account = false throws on a fresh realm
    database (AbstractUserStoreManager, fixed only in 4.10.x)."""
    assert prod_config["super_admin"]["create_admin_account"] is True
    assert broken(prod_config, ("super_admin", "create_admin_account"), False)


def test_the_realm_lives_in_the_user_database(prod_config: dict[str, Any]) -> None:
    """carbon-kernel v4.6.1 default.json: realm_manager.data_source defaults to SHARED_DB;
    financial-open-banking 3.0.0 ob-is wso2is-5.11.0-deployment.toml sets WSO2USER_DB."""
    assert prod_config["realm_manager"]["data_source"] == "WSO2USER_DB"
    assert prod_config["database"]["user"]["url"].split("?")[0].endswith("/openbank_userdb")
    assert broken(prod_config, ("realm_manager", "data_source"), "SHARED_DB")


def test_databases_map_as_ob_3_0_sets_them_up(prod_config: dict[str, Any]) -> None:
    """docs-open-banking 3.0.0 setting-up-databases.md: apimgtdb -> identity_db, govdb ->
    shared_db, userdb -> user, iskm_configdb -> config, openbankingdb -> [[datasource]] WSO2OB_DB."""
    database = prod_config["database"]
    names = {k: v["url"].split("?")[0].rsplit("/", 1)[1] for k, v in database.items()}
    assert names == {"identity_db": "openbank_apimgtdb", "shared_db": "openbank_govdb", "user": "openbank_userdb",
                     "config": "openbank_iskm_configdb"}
    (ob,) = prod_config["datasource"]
    assert ob["id"] == "WSO2OB_DB" and "/openbank_openbankingdb?" in ob["url"]


@pytest.mark.parametrize(("name", "driver", "url_start"), [
    ("prod", "com.mysql.cj.jdbc.Driver", "jdbc:mysql://"),
    ("postgres", "org.postgresql.Driver", "jdbc:postgresql://"),
    ("sqlserver", "com.microsoft.sqlserver.jdbc.SQLServerDriver", "jdbc:sqlserver://"),
    ("oracle", "oracle.jdbc.OracleDriver", "jdbc:oracle:thin:@//"),
])
def test_each_engine_gets_its_driver_class_and_url(name: str, driver: str, url_start: str, tmp_path: Path) -> None:
    """OB 3.0 setting-up-databases.md (drivers per DBMS); Connector/J 8.x for MySQL 8 loads
    com.mysql.cj.jdbc.Driver. Oracle: one user (schema) per WSO2 database, as OB's guide creates them."""
    config = merged(ENVIRONMENTS[name], tmp_path)
    tables = [*config["database"].values(), *config["datasource"]]
    assert {t["driver"] for t in tables} == {driver}
    assert all(t["url"].startswith(url_start) for t in tables)
    users = {t["username"] for t in tables}
    assert users == ({"openbank_apimgtdb", "openbank_govdb", "openbank_userdb", "openbank_iskm_configdb",
                      "openbank_openbankingdb"} if name == "oracle" else {"obiam_wso2"})


def test_no_env_reference_inside_datasource_entries(prod_config: dict[str, Any]) -> None:
    """config-mapper v1.0.2 (bundled with IS 5.11.0) ReferenceResolver resolves $env{} only in
    top-level values and lists of strings, not inside [[datasource]] tables (fixed in 1.0.5)."""
    assert "$env{" not in json.dumps(prod_config["datasource"])
    entry = {**prod_config["datasource"][0], "password": "$env{OBIAM_DB_PASSWORD}"}
    assert any("$env{}" in p for p in broken(prod_config, ("datasource",), [entry]))


@pytest.mark.parametrize("value", ["has$dollar0000000", "back\\slash000000000", "amp&ersand000000000",
                                   "lt<00000000000000000", "quote'0000000000000", "short"])
def test_credentials_outside_the_generated_alphabet_never_reach_the_config(value: str) -> None:
    """config-mapper v1.0.2 ReferenceResolver uses String.replaceAll without quoteReplacement ($, \\
    break it); Jinjava pastes values into XML unescaped (&, < break master-datasources.xml)."""
    with pytest.raises(obiam_config.ConfigProblem, match="DB_PASSWORD"):
        obiam_config.fill("@OBIAM_DB_PASSWORD@", {**BOOT_VALUES, "DB_PASSWORD": value})


def test_the_accelerators_open_banking_wiring_survives_the_merge(prod_config: dict[str, Any]) -> None:
    """financial-open-banking 3.0.0 ob-is wso2is-5.11.0-deployment.toml carries the OB grant
    handlers, token filter, OB mTLS authenticator, consent and DCR; configure.sh installs it as
    repository/conf/deployment.toml (docs-open-banking 3.0.0 setting-up-servers.md)."""
    assert prod_config["tomcat"]["filter"][0]["class"].endswith(".TokenFilter")
    assert any(e["name"].endswith("OBMutualTLSClientAuthenticator") for e in prod_config["event_listener"])
    assert prod_config["oauth"]["token_generation"]["access_token_type"] == "self_contained"
    assert prod_config["open_banking"]["data_publishing"]["thrift"]["stream"][0]["attributes"][0]["name"] == \
        "consentId"
    events = prod_config["event_listener"][0]["properties"]
    assert events["header.X-WSO2-KEY-MANAGER"] == "WSO2-IS"
    assert broken(prod_config, ("tomcat",), None)


def test_no_sample_credential_or_local_url_survives(prod_config: dict[str, Any]) -> None:
    """financial-open-banking 3.0.0: the accelerator's toml signs in as admin@wso2.com/wso2123, its
    open-banking.xml.j2 falls back to them, and it points at IS_HOSTNAME:9446 and localhost:8243."""
    text = json.dumps(prod_config)
    for sample in ("admin@wso2.com", "wso2123", "consent_management_portal_client", "IS_HOSTNAME", "localhost",
                   "APIM_HOSTNAME", "DB_USER", ":9446"):
        assert sample not in text, sample
    assert prod_config["authentication"]["endpoints"]["login_url"] == \
        "https://iam.bank.example.com/authenticationendpoint/login.do"
    assert prod_config["open_banking"]["dcr"]["registration_client_uri"] == \
        "https://apim.bank.example.com:8243/open-banking/0.1/register/"
    assert broken(prod_config, ("open_banking", "consent", "api_credentials", "password"), "wso2123")


def test_the_encryption_key_is_the_environments_own(prod_config: dict[str, Any]) -> None:
    """product-is v5.11.0 default.json: SymmetricKeyInternalCryptoProvider with a published
    default encryption.key; kernel carbon.xml.j2 renders [encryption] key as CryptoService/Secret."""
    assert prod_config["encryption"]["key"] == BOOT_VALUES["ENCRYPTION_KEY"]
    published = "03BAFEB27A8E871CAD83C5CD4E771DAB"
    assert any("public default" in p for p in broken(prod_config, ("encryption", "key"), published))


def test_keys_are_the_environments_own_not_the_packs(prod_config: dict[str, Any]) -> None:
    """carbon-kernel v4.6.1 default.json: keystore.primary is wso2carbon.jks with the password
    wso2carbon, and keystore.internal and keystore.tls follow it; carbon.xml.j2 renders
    [keystore.primary] and [keystore.internal], default.json feeds [keystore.tls] to Tomcat."""
    for name in ("primary", "internal", "tls"):
        keystore = prod_config["keystore"][name]
        assert keystore["file_name"] == f"obiam-{name}.jks"
        assert keystore["password"] == keystore["key_password"] == BOOT_VALUES["KEYSTORE_PASSWORD"]
    assert broken(prod_config, ("keystore", "primary", "file_name"), "wso2carbon.jks")
    assert broken(prod_config, ("keystore", "tls", "password"), "wso2carbon")


def test_clients_reach_the_node_through_the_load_balancer(prod_config: dict[str, Any]) -> None:
    """product-is v5.11.0 catalina-server.xml.j2 copies [transport.https.properties] onto the HTTPS
    connector; carbon.xml.j2 takes HostName from [server] hostname."""
    assert prod_config["transport"]["https"]["properties"]["proxyPort"] == 443
    assert prod_config["server"]["hostname"] == "iam.bank.example.com"
    assert prod_config["server"]["offset"] == 3
    assert broken(prod_config, ("transport", "https", "properties", "proxyPort"), 9446)


def test_a_pack_without_the_accelerator_configuration_is_refused(tmp_path: Path) -> None:
    plain_is = tmp_path / "plain.toml"
    plain_is.write_text('[server]\nhostname = "localhost"\n')
    overlay = tmp_path / "overlay.toml"
    overlay.write_text(overlay_of(ENVIRONMENTS["prod"]))
    document = obiam_config.fill(obiam_config.merge(tomllib.loads(plain_is.read_text()),
                                                    tomllib.loads(overlay.read_text()), {}), BOOT_VALUES)
    assert any("OB accelerator's configuration was lost" in p for p in node_contract.check(document))


def test_the_contract_command_reports_each_problem_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "deployment.toml"
    path.write_text('[server]\nhostname = "localhost"\n')
    result = subprocess.run([sys.executable, "-m", "obiam.node_contract", str(path)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 1
    assert f"{path}: clustering" not in result.stderr
    assert f"{path}: server.hostname = 'localhost'" in result.stderr


_KEYS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
_SCALARS = st.one_of(st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=20),
                     st.lists(st.text(max_size=5), max_size=3))
_TABLES = st.recursive(st.dictionaries(_KEYS, _SCALARS, max_size=4),
                       lambda inner: st.dictionaries(_KEYS, st.one_of(_SCALARS, inner, st.lists(inner, min_size=1,
                                                                                                  max_size=2)),
                                                     max_size=4), max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(_TABLES)
def test_the_node_writes_toml_that_reads_back_as_the_same_document(document: dict[str, Any]) -> None:
    """The node rewrites WSO2's file from parsed data, so what it writes must parse back to exactly
    that data (keys with dots, quotes, unicode; tables inside arrays of tables)."""
    assert tomllib.loads(obiam_config.dumps(document)) == document


def test_node_config_writes_every_file_a_node_writes_for_review(tmp_path: Path) -> None:
    """`obiam node-config`: the files the user data installs, where the node puts them, and the
    merged deployment.toml, so a WSO2 configuration change is reviewed as a diff."""
    from typer.testing import CliRunner

    from obiam.cli import app

    output = tmp_path / "node-config"
    result = CliRunner().invoke(app, ["node-config", "--env", "prod", "--output", str(output),
                                      "--environments-dir", str(ROOT / "environments"),
                                      "--accelerator-toml", str(ACCELERATOR_TOML)])
    assert result.exit_code == 0, result.output
    written = {p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file()}
    expected = {path.lstrip("/") for path in bootstrap.node_files(bootstrap.settings_for(ENVIRONMENTS["prod"]))}
    assert expected | {"user-data.sh", "opt/wso2/current/repository/conf/deployment.toml"} <= written
    merged_file = tomllib.loads((output / "opt/wso2/current/repository/conf/deployment.toml").read_text())
    assert merged_file["clustering"]["members"] == ["@OBIAM_CLUSTER_MEMBERS@"]
    # A second run replaces its own output; a pack file without the OB wiring fails the contract.
    plain = tmp_path / "plain-is.toml"
    plain.write_text('[server]\nhostname = "localhost"\n')
    again = CliRunner().invoke(app, ["node-config", "--env", "prod", "--output", str(output),
                                     "--environments-dir", str(ROOT / "environments"), "--accelerator-toml",
                                     str(plain)])
    assert again.exit_code == 1
    assert "OB accelerator's configuration was lost" in again.output


def test_node_config_never_replaces_a_directory_it_did_not_write(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from obiam.cli import app

    (tmp_path / "notes.txt").write_text("mine\n")
    result = CliRunner().invoke(app, ["node-config", "--env", "prod", "--output", str(tmp_path),
                                      "--environments-dir", str(ROOT / "environments")])
    assert result.exit_code == 2
    assert "holds files this command did not write ('notes.txt')" in result.output
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize("value", ["10.40.1.10\n", "10.40.1.10\nnode_ip = 1"])
def test_a_boot_value_with_a_line_break_is_refused(value: str) -> None:
    """`$` in a Python regex also matches before a final newline: every boot-time value must match
    its whole alphabet, end to end."""
    with pytest.raises(obiam_config.ConfigProblem, match="LOCAL_IP"):
        obiam_config.fill("@OBIAM_LOCAL_IP@", {**BOOT_VALUES, "LOCAL_IP": value})
