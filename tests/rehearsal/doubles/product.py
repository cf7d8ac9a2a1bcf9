"""The product double behind the synthetic pack's bin/wso2server.sh (WSO2 OB IAM cannot run here).

What it checks is what a real IS 5.11 start needs from the node, in the same order:
JAVA_HOME (wso2server.sh refuses to start without it), repository/conf/deployment.toml
parsed as TOML, the configuration contract (`python -m obiam.node_contract`, when the
project has it), then a connection to every datasource in the toml with the username and
password found there (`$env{NAME}` resolved from the service environment, as WSO2's
config-mapper does) and a SELECT on a table that datasource's schema must hold. Only then
it serves HTTPS on 9443 + [server].offset with the health-check API's path
(/api/health-check/v1.0/health, carbon-health-check), in the foreground like the real one.
A failed check prints `START FAILED: ...` and exits 1.
"""

from __future__ import annotations

import html
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CARBON_HOME = Path(__file__).resolve().parent.parent
TOML = CARBON_HOME / "repository/conf/deployment.toml"
LOGS = CARBON_HOME / "repository/logs"
TRUSTSTORE = CARBON_HOME / "repository/resources/security/client-truststore.jks"
HTTPS_PEM = CARBON_HOME / "repository/resources/security/rehearsal-https.pem"
HEALTH_PATH = "/api/health-check/v1.0/health"
# The table each datasource's schema must hold (WSO2 IS 5.11 / APIM 4.0 dbscripts; OB 3.0
# "Setting up databases" maps the databases to these datasources).
PROBE_TABLES = {
    "database.identity_db": "IDN_OAUTH2_ACCESS_TOKEN",
    "database.shared_db": "REG_RESOURCE",
    "database.user": "UM_USER",
    "database.config": "REG_RESOURCE",
    "WSO2OB_DB": "OB_CONSENT",
}


def log(message: str) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} rehearsal-product: {message}"
    print(line, flush=True)
    with (LOGS / "wso2carbon.log").open("a", encoding="utf-8") as carbon_log:
        carbon_log.write(line + "\n")


def fail(message: str) -> None:
    log(f"START FAILED: {message}")
    sys.exit(1)


def resolve(value: Any) -> str:
    def variable(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            fail(f"$env{{{name}}} is not set in the service environment")
        return os.environ[name]
    return re.sub(r"\$env\{([A-Za-z0-9_]+)\}", variable, str(value))


def datasources(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [(f"database.{name}", section) for name, section in config.get("database", {}).items()
             if isinstance(section, dict) and "url" in section]
    found += [(str(entry.get("id")), entry) for entry in config.get("datasource", [])]
    return found


def jks_certificates(data: bytes, password: str) -> list[bytes]:
    """The DER certificates in a JKS keystore, after checking its integrity digest with the store password.

    The JKS layout (sun.security.provider.JavaKeyStore): magic FEEDFEED, version, entry count; per
    entry a tag (1 private key, 2 trusted certificate), alias and date, then the key and its chain or
    the certificate; last a SHA-1 over the password (UTF-16BE), "Mighty Aphrodite" and everything before.
    What a JVM given this file as javax.net.ssl.trustStore would load, without starting one.
    """
    import hashlib
    import struct

    position = 0

    def take(size: int) -> bytes:
        nonlocal position
        if position + size > len(data) - 20:
            raise ValueError("truncated keystore")
        chunk = data[position:position + size]
        position += size
        return chunk

    def number(size: int = 4) -> int:
        return int.from_bytes(take(size), "big")

    def certificate(version: int) -> bytes:
        if version == 2:
            take(number(2))  # certificate type, X.509
        return take(number())

    magic, version, count = struct.unpack(">III", take(12))
    if magic != 0xFEEDFEED or version not in (1, 2):
        raise ValueError("not a JKS keystore")
    found = []
    for _ in range(count):
        tag = number()
        take(number(2))  # alias
        take(8)  # creation date
        if tag == 1:
            take(number())  # the protected private key
            found += [certificate(version) for _ in range(number())]
        elif tag == 2:
            found.append(certificate(version))
        else:
            raise ValueError(f"unknown entry tag {tag}")
    digest = hashlib.sha1(password.encode("utf-16-be") + b"Mighty Aphrodite" + data[:position]).digest()  # noqa: S324 - JKS's own integrity check
    if data[position:] != digest:
        raise ValueError("keystore was tampered with, or password was incorrect")
    return found


def truststore_pem() -> str:
    """The certificates the JVM would trust (wso2server.sh sets javax.net.ssl.trustStore to this JKS)."""
    import base64
    import textwrap

    data = TRUSTSTORE.read_bytes() if TRUSTSTORE.exists() else b""
    try:
        certificates = jks_certificates(data, "wso2carbon")
    except ValueError as error:
        if data[:4] == bytes.fromhex("feedfeed"):
            fail(f"cannot read {TRUSTSTORE}: {error}")
        # Another store type (PKCS12): keytool reads it.
        listing = subprocess.run(["keytool", "-list", "-rfc", "-keystore", str(TRUSTSTORE), "-storepass",
                                  "wso2carbon"], capture_output=True, text=True, check=False)
        if listing.returncode != 0:
            fail(f"cannot read {TRUSTSTORE}: {listing.stdout.strip()} {listing.stderr.strip()}")
        blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", listing.stdout, re.S)
    else:
        blocks = ["-----BEGIN CERTIFICATE-----\n" + "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
                  + "\n-----END CERTIFICATE-----" for der in certificates]
    handle, path = tempfile.mkstemp(suffix=".pem")
    os.write(handle, "\n".join(blocks).encode())
    os.close(handle)
    return path


def probe(name: str, section: dict[str, Any], trusted: list[str]) -> dict[str, Any]:
    url = html.unescape(str(section["url"]))
    username, password = resolve(section.get("username", "")), resolve(section.get("password", ""))
    match = re.fullmatch(r"jdbc:(mysql|postgresql)://([^:/]+):(\d+)/([^?]+)(?:\?(.*))?", url)
    if match is None:
        fail(f"{name}: unsupported JDBC URL {url}")
    engine, host, port, database, query = match.groups()  # type: ignore[union-attr]
    params = dict(p.partition("=")[::2] for p in (query or "").split("&") if p)
    table = PROBE_TABLES.get(name, "")
    statement = f"SELECT COUNT(*) FROM {table}" if table else "SELECT 1"  # noqa: S608 - our own table names
    if engine == "mysql":
        command = ["mysql", f"--host={host}", f"--port={port}", f"--user={username}", "--batch",
                   "--skip-column-names", "--connect-timeout=5"]
        if params.get("useSSL") == "true" or params.get("requireSSL") == "true" or params.get("sslMode"):
            command.append("--ssl")
            if params.get("verifyServerCertificate") == "true" or params.get("sslMode") == "VERIFY_IDENTITY":
                if not trusted:
                    trusted.append(truststore_pem())
                command += [f"--ssl-ca={trusted[0]}", "--ssl-verify-server-cert"]
        else:
            command.append("--skip-ssl")
        command += [database, "-e", statement]
        environment = {**os.environ, "MYSQL_PWD": password}
    else:
        dsn = (f"host={host} port={port} dbname={database} user={username} connect_timeout=5 "
               f"sslmode={params.get('sslmode', 'prefer')}")
        if "sslrootcert" in params:
            dsn += f" sslrootcert={params['sslrootcert']}"
        command = ["psql", "--no-psqlrc", "-tA", dsn, "-c", statement]
        environment = {**os.environ, "PGPASSWORD": password}
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        fail(f"datasource {name} ({url}, user {username}): {result.stderr.strip() or result.stdout.strip()}")
    return {"name": name, "url": url, "username": username, "table": table or None}


def main() -> None:
    java_home = os.environ.get("JAVA_HOME", "")
    if not (Path(java_home) / "bin/java").exists():
        fail("You must set the JAVA_HOME variable before running CARBON.")
    try:
        config = tomllib.loads(TOML.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        fail(f"{TOML}: {error}")
    # The project's contract checker, from the checkout under rehearsal, run by its venv's interpreter
    # (wso2server.sh names both).
    repository = Path(os.environ.get("OBIAM_REHEARSAL_REPOSITORY", "/nonexistent"))
    if (repository / "obiam/node_contract.py").exists() or (repository / "obiam/node_contract").is_dir():
        contract = subprocess.run([os.environ["OBIAM_REHEARSAL_PYTHON"], "-m", "obiam.node_contract", str(TOML)],
                                  env={**os.environ, "PYTHONPATH": str(repository)}, cwd=repository,
                                  capture_output=True, text=True, check=False)
        if contract.returncode != 0:
            fail(f"obiam.node_contract rejected {TOML}:\n{contract.stdout}{contract.stderr}")
    trusted: list[str] = []
    checked = [probe(name, section, trusted) for name, section in datasources(config)]
    for path in trusted:
        os.unlink(path)
    port = 9443 + int(config.get("server", {}).get("offset", 0))
    status = {"pid": os.getpid(), "started": time.time(), "port": port, "datasources": checked,
              "jvm_mem_opts": os.environ.get("JVM_MEM_OPTS")}
    (LOGS / "rehearsal-product.json").write_text(json.dumps(status, indent=1), encoding="utf-8")

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == HEALTH_PATH
            body = json.dumps({"health": [{"key": "dbConnectivity", "value": "UP"}]} if ok else {}).encode()
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Health)  # noqa: S104 - the node's own namespace
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(HTTPS_PEM)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    log(f"WSO2 Carbon started: {len(checked)} datasource(s) verified, HTTPS on {port}")
    server.serve_forever()


if __name__ == "__main__":
    main()
