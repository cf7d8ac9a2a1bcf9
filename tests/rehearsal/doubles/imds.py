#!/usr/bin/python3
"""IMDSv2 double: the EC2 instance metadata service for one rehearsal node.

Runs inside the node's network namespace on 169.254.169.254:80, so the node's own
`curl` and botocore reach it exactly as on EC2. Only IMDSv2 is served, as the launch
template asks (`metadata_options.http_tokens = required`): every GET without a valid
token gets 401, like EC2 (AWS EC2 User Guide, "Use IMDSv2").

Usage: imds.py CONFIG_JSON REQUEST_LOG
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CONFIG = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
# Open for the life of the server: one line per request, for the scenarios to read.
LOG = open(sys.argv[2], "a", encoding="utf-8", buffering=1)  # noqa: SIM115
TOKENS: dict[str, float] = {}


def meta_data() -> dict[str, str]:
    role = CONFIG["role"]
    credentials = {
        "Code": "Success", "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "Type": "AWS-HMAC",
        "AccessKeyId": CONFIG["access_key_id"], "SecretAccessKey": CONFIG["secret_access_key"],
        "Token": CONFIG["session_token"],
        # Six hours ahead, as EC2 does; botocore refreshes before expiry.
        "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 6 * 3600)),
    }
    document = {"instanceId": CONFIG["instance_id"], "region": CONFIG["region"],
                "availabilityZone": CONFIG["availability_zone"], "privateIp": CONFIG["local_ipv4"],
                "accountId": CONFIG["account_id"], "instanceType": CONFIG["instance_type"]}
    return {
        "/latest/meta-data/instance-id": CONFIG["instance_id"],
        "/latest/meta-data/instance-type": CONFIG["instance_type"],
        "/latest/meta-data/local-ipv4": CONFIG["local_ipv4"],
        "/latest/meta-data/local-hostname": CONFIG["local_hostname"],
        "/latest/meta-data/hostname": CONFIG["local_hostname"],
        "/latest/meta-data/placement/region": CONFIG["region"],
        "/latest/meta-data/placement/availability-zone": CONFIG["availability_zone"],
        "/latest/meta-data/iam/security-credentials/": role,
        f"/latest/meta-data/iam/security-credentials/{role}": json.dumps(credentials),
        "/latest/meta-data/iam/info": json.dumps({"Code": "Success", "InstanceProfileArn": CONFIG["profile_arn"]}),
        "/latest/dynamic/instance-identity/document": json.dumps(document),
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: str = "") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        LOG.write(f"{self.command} {self.path} {status}\n")

    def do_PUT(self) -> None:
        if self.path != "/latest/api/token":
            self._send(404)
            return
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        # EC2 accepts 1..21600 seconds and answers 400 otherwise.
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            self._send(400)
            return
        token = secrets.token_urlsafe(32)
        TOKENS[token] = time.monotonic() + int(ttl)
        self._send(200, token)

    def do_GET(self) -> None:
        token = self.headers.get("X-aws-ec2-metadata-token")
        if token is None or TOKENS.get(token, 0) < time.monotonic():
            self._send(401)  # IMDSv1 (no token) is refused: http_tokens = required
            return
        value = meta_data().get(self.path)
        self._send(200, value) if value is not None else self._send(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


ThreadingHTTPServer(("169.254.169.254", 80), Handler).serve_forever()
