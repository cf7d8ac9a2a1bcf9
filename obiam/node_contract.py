"""The WSO2 contract: what a node's deployment.toml must hold for WSO2 OB 3.0 IAM (IS 5.11) to
boot into a working Open Banking Key Manager cluster behind the load balancer.

Each rule returns problems as "key: message". The sources behind the rules are named in
tests/test_wso2_contract.py, one test per rule. Used by the tests (against every environment
and variant), by `obiam node-config`, and as a command for a rendered file:

    python -m obiam.node_contract DEPLOYMENT_TOML [--template]

`--template` accepts boot-time placeholders (@OBIAM_..._KIND@) where values are filled on the node.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import tomllib
from typing import Any

from obiam.bootstrap.node.obiam_config import PLACEHOLDER, VALUE_PATTERNS

AD_USER_STORE_TYPES = ("active_directory_unique_id", "read_only_ldap_unique_id")
SAMPLE_CREDENTIALS = ("admin@wso2.com", "wso2123", "DB_USER", "DB_PASS", "consent_management_portal_client_id",
                      "consent_management_portal_client_secret")
UNRESOLVED_TOKENS = ("IS_HOSTNAME", "APIM_HOSTNAME", "DB_APIMGT_URL", "DB_IS_CONFIG_URL", "DB_GOV_URL",
                     "DB_USER_STORE_URL", "DB_OB_STORE_URL", "DB_DRIVER", "localhost", "127.0.0.1", ":9446")
# SHA-256 of IS 5.11's built-in [encryption] key in lower case (product-is v5.11.0
# modules/distribution/src/repository/resources/conf/default.json): published, so refused.
PUBLIC_ENCRYPTION_KEY_SHA256 = "59d0d79cc954129b3122960323e92dd4141f4e8179ea86947ce66ad8aebae39f"
DRIVER_FOR_SCHEME = {
    "mysql": ("com.mysql.cj.jdbc.Driver", "com.mysql.jdbc.Driver"),
    "postgresql": ("org.postgresql.Driver",),
    "sqlserver": ("com.microsoft.sqlserver.jdbc.SQLServerDriver",),
    "oracle": ("oracle.jdbc.OracleDriver", "oracle.jdbc.driver.OracleDriver"),
}
# OB wiring the accelerator's file carries; a node without it is plain IS 5.11, not a Key Manager.
OB_WIRING = (
    ("oauth", "token_generation", "access_token_type"),
    ("oauth", "grant_type", "authorization_code"),
    ("oauth", "oidc", "extensions"),
    ("oauth", "custom_response_type"),
    ("tomcat", "filter"),
    ("event_listener",),
    ("open_banking", "consent", "api_credentials"),
    ("open_banking", "dcr"),
    ("open_banking", "identity", "extensions"),
    ("realm_manager", "data_source"),
)


def _get(document: dict[str, Any], *path: str) -> Any:
    value: Any = document
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _walk(value: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _walk(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [pair for i, v in enumerate(value) for pair in _walk(v, f"{path}[{i}]")]
    return [(path, value)] if isinstance(value, str) else []


def check(document: dict[str, Any], template: bool = False) -> list[str]:
    """Every contract problem of a deployment.toml; `template` allows unfilled @OBIAM_...@ values."""
    problems: list[str] = []
    problems += _check_clustering(document, template)
    problems += _check_user_store(document)
    problems += _check_databases(document, template)
    problems += _check_credentials_and_urls(document, template)
    problems += _check_keys(document, template)
    problems += _check_ob_wiring(document)
    problems += _check_load_balancer(document)
    return problems


def _check_clustering(d: dict[str, Any], template: bool) -> list[str]:
    clustering = _get(d, "clustering") or {}
    if clustering.get("membership_scheme") != "wka":
        return []
    members = clustering.get("members")
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        return ["clustering.members: must be a non-empty array of \"host:port\" strings inside [clustering] "
                "(axis2.xml.j2 splits each member on ':'; a table makes config-mapper throw at start-up)"]
    bad = [m for m in members if not re.fullmatch(r"[A-Za-z0-9._-]+:[0-9]{1,5}", m)
           and not (template and PLACEHOLDER.fullmatch(m))]
    return [f"clustering.members: {bad[0]!r} is not \"host:port\""] if bad else []


def _check_user_store(d: dict[str, Any]) -> list[str]:
    store = _get(d, "user_store") or {}
    problems: list[str] = []
    if store.get("type") not in AD_USER_STORE_TYPES:
        return [f"user_store.type = {store.get('type')!r}: this deployment's primary store is the directory "
                f"({' or '.join(AD_USER_STORE_TYPES)})"]
    if "class" in store:
        problems.append("user_store.class: must not be set; the class follows user_store.type (infer.json)")
    expected = {
        "user_name_attribute": "sAMAccountName",
        "user_name_search_filter": "(&amp;(objectClass=user)(sAMAccountName=?))",
        "user_entry_object_class": "user",
        "group_entry_object_class": "group",
        "group_name_search_filter": "(&amp;(objectClass=group)(cn=?))",
        "user_id_attribute": "objectGuid",
    }
    for key, value in expected.items():
        if store.get(key) != value:
            problems.append(f"user_store.{key} = {store.get(key)!r}: Active Directory needs {value!r} (the inferred "
                            "default searches objectClass=person/uid, which AD never matches)")
    if store.get("back_links_enabled") is not True:
        problems.append("user_store.back_links_enabled: must be true for Active Directory (memberOf back links)")
    properties = store.get("properties") or {}
    if properties.get("Referral") != "follow":
        problems.append("user_store.properties.Referral: must be \"follow\" for Active Directory")
    url = str(store.get("connection_url", ""))
    encrypted = url.startswith("ldaps://") or properties.get("StartTLSEnabled") is True
    if store.get("type") == "active_directory_unique_id" and not encrypted:
        problems.append("user_store: a read-write Active Directory store needs LDAPS or StartTLS (AD accepts "
                        "unicodePwd only over an encrypted connection); declare it read_only_ldap_unique_id otherwise")
    if store.get("type") == "read_only_ldap_unique_id" and properties.get("ReadOnly") is not True:
        problems.append("user_store.properties.ReadOnly: must be true for a read-only store")
    if _get(d, "super_admin", "create_admin_account") is not True:
        problems.append("super_admin.create_admin_account: must be true on IS 5.11 (kernel 4.6.x throws on a fresh "
                        "realm database when it is false: wso2/product-is#20379)")
    if _get(d, "realm_manager", "data_source") != "WSO2USER_DB" or _get(d, "database", "user") is None:
        problems.append("realm_manager.data_source: must be \"WSO2USER_DB\" with [database.user] defined (OB 3.0 "
                        "keeps the realm in openbank_userdb)")
    return problems


def _datasources(d: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [(f"database.{name}", table) for name, table in (_get(d, "database") or {}).items()
             if isinstance(table, dict)]
    found += [(f"datasource[{entry.get('id')}]", entry) for entry in (_get(d, "datasource") or [])
              if isinstance(entry, dict)]
    return found


def _check_databases(d: dict[str, Any], template: bool) -> list[str]:
    problems: list[str] = []
    for name in ("identity_db", "shared_db", "user", "config"):
        if _get(d, "database", name) is None:
            problems.append(f"database.{name}: missing")
    if not any(e.get("id") == "WSO2OB_DB" for e in (_get(d, "datasource") or []) if isinstance(e, dict)):
        problems.append("datasource: no [[datasource]] with id = \"WSO2OB_DB\" (open-banking.xml looks up "
                        "jdbc/WSO2OB_DB)")
    for where, table in _datasources(d):
        for key in ("url", "username", "password", "driver"):
            if not isinstance(table.get(key), str) or not table[key]:
                problems.append(f"{where}.{key}: missing")
        url, driver = str(table.get("url", "")), str(table.get("driver", ""))
        scheme = url.split(":")[1] if url.startswith("jdbc:") and url.count(":") > 1 else ""
        if driver not in DRIVER_FOR_SCHEME.get(scheme, ()):
            problems.append(f"{where}.driver = {driver!r}: does not load {scheme or 'this'} URLs")
        if where.startswith("datasource"):
            for key, value in _walk(table):
                if "$env{" in value:
                    problems.append(f"{where}.{key}: $env{{}} is not resolved inside [[datasource]] by the "
                                    "config-mapper IS 5.11 ships (1.0.2)")
        password = str(table.get("password", ""))
        if not (template and PLACEHOLDER.fullmatch(password)) and not VALUE_PATTERNS["PASSWORD"].fullmatch(password):
            problems.append(f"{where}.password: must be a generated credential of [A-Za-z0-9._:=+-] (16-128)")
    return problems


def _check_credentials_and_urls(d: dict[str, Any], template: bool) -> list[str]:
    problems: list[str] = []
    for path, value in _walk(d):
        for sample in SAMPLE_CREDENTIALS:
            if value == sample or (sample.startswith("admin@") and sample in value):
                problems.append(f"{path} = {value!r}: a WSO2 sample credential")
        if path.startswith("open_banking.data_publishing") and _get(d, "open_banking", "data_publishing",
                                                                      "enable") is not True:
            continue
        for token in UNRESOLVED_TOKENS:
            if token in value:
                problems.append(f"{path} = {value!r}: still holds {token!r}; clients reach this node only "
                                "through the load balancer's hostname")
                break
        unfilled = None if template else PLACEHOLDER.search(value)
        if unfilled:
            problems.append(f"{path}: boot-time placeholder {unfilled.group(0)} not filled")
    for keys in (("super_admin", "password"), ("user_store", "connection_password")):
        secret = str(_get(d, *keys) or "")
        if not (template and PLACEHOLDER.fullmatch(secret)) and not VALUE_PATTERNS["PASSWORD"].fullmatch(secret):
            problems.append(f"{'.'.join(keys)}: must be a generated credential of [A-Za-z0-9._:=+-] (16-128)")
    return problems


def _check_keys(d: dict[str, Any], template: bool) -> list[str]:
    problems = []
    for name in ("primary", "internal", "tls"):
        keystore = _get(d, "keystore", name) or {}
        if not keystore.get("file_name") or keystore.get("file_name") == "wso2carbon.jks":
            problems.append(f"keystore.{name}.file_name: must be the environment's own keystore, not the pack's "
                            "published wso2carbon.jks")
        for field in ("password", "key_password"):
            value = str(keystore.get(field, ""))
            if not (template and PLACEHOLDER.fullmatch(value)) and not VALUE_PATTERNS["PASSWORD"].fullmatch(value):
                problems.append(f"keystore.{name}.{field}: must be a generated credential (the pack's is published)")
    return problems + _check_encryption_key(d, template)


def _check_encryption_key(d: dict[str, Any], template: bool) -> list[str]:
    key = str(_get(d, "encryption", "key") or "")
    if template and PLACEHOLDER.fullmatch(key):
        return []
    if hashlib.sha256(key.lower().encode()).hexdigest() == PUBLIC_ENCRYPTION_KEY_SHA256:
        return ["encryption.key: is IS 5.11's public default key"]
    if not VALUE_PATTERNS["KEY"].fullmatch(key):
        return ["encryption.key: must be this environment's own 32 hex digit key (IS 5.11's default is public)"]
    return []


def _check_ob_wiring(d: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(path)}: missing; the OB accelerator's configuration was lost (the node would run as "
            "plain IS 5.11)" for path in OB_WIRING if _get(d, *path) is None]


def _check_load_balancer(d: dict[str, Any]) -> list[str]:
    problems = []
    if _get(d, "transport", "https", "properties", "proxyPort") != 443:
        problems.append("transport.https.properties.proxyPort: must be 443 (the load balancer's listener)")
    hostname = str(_get(d, "server", "hostname") or "")
    if not VALUE_PATTERNS["HOST"].fullmatch(hostname) or "." not in hostname:
        problems.append(f"server.hostname = {hostname!r}: must be the load balancer's DNS name")
    return problems




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m obiam.node_contract", description=__doc__.splitlines()[0])
    parser.add_argument("toml")
    parser.add_argument("--template", action="store_true", help="allow unfilled @OBIAM_..._KIND@ placeholders")
    args = parser.parse_args(argv)
    try:
        with open(args.toml, "rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        print(f"{args.toml}: cannot be read as TOML: {error}", file=sys.stderr)
        return 2
    problems = check(document, template=args.template)
    for problem in problems:
        print(f"{args.toml}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
