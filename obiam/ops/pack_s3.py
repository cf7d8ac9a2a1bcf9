"""The pack in S3: its SHA-256 as S3 knows it, and `obiam pack upload`.

S3 keeps a full-object SHA-256 checksum for an object uploaded in one PutObject with
ChecksumAlgorithm SHA256, and returns it from HeadObject with ChecksumMode ENABLED, so the pin can
be checked without downloading the pack. Multipart uploads get a composite SHA-256 (a checksum of
the parts' checksums, shown as `<base64>-<parts>`): S3 offers full-object checksums for multipart
uploads only with the CRC algorithms (S3 User Guide, "Checking object integrity"). So upload uses
one PutObject (packs are far below its 5 GiB limit) with the SHA-256 computed here, which S3 checks
on receipt; for an object without a full-object SHA-256, the check downloads and hashes it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obiam.ops.aws import lookup

PUT_OBJECT_LIMIT = 5 * 1024**3
_MISSING = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}


def s3_location(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def hex_of(checksum: str) -> str | None:
    """S3's base64 SHA-256 as hex, or None for a composite (multipart) or unreadable value."""
    if "-" in checksum:
        return None
    try:
        raw = base64.b64decode(checksum, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


@dataclass(frozen=True)
class ObjectDigest:
    sha256: str
    size: int
    downloaded: bool  # False: S3's own full-object checksum, nothing downloaded


def object_sha256(s3: Any, uri: str) -> ObjectDigest | None:
    """The object's SHA-256 (None when it does not exist): S3's checksum when it has a full-object one,
    else by streaming the object through hashlib."""
    bucket, key = s3_location(uri)
    head = lookup(lambda: s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"), missing=_MISSING)
    if head is None:
        return None
    checksum = head.get("ChecksumSHA256")
    full_object = head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"
    known = hex_of(checksum) if checksum and full_object else None
    if known is not None:
        return ObjectDigest(known, int(head["ContentLength"]), downloaded=False)
    digest = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
    return ObjectDigest(digest.hexdigest(), int(head["ContentLength"]), downloaded=True)


@dataclass(frozen=True)
class Upload:
    uri: str
    sha256: str
    size: int
    uploaded: bool  # False: the object already held these bytes
    encryption: str


# The environment names no KMS key for the pack, and the node role may decrypt only through S3 with
# the AWS managed key: a customer-managed key would also need kms:Decrypt on the node role, which the
# stack does not grant.
ENCRYPTION_NOTE = ("SSE-KMS with the account's AWS managed key aws/s3: the environment names no key of its own "
                   "for the pack, and the nodes can decrypt aws/s3 objects through S3 with the s3:GetObject "
                   "permission the stack gives them (a customer-managed key would also need kms:Decrypt on the "
                   "node role, which the stack does not grant)")


def upload_pack(s3: Any, path: Path, uri: str, sha256: str, *, replace: bool) -> Upload:
    """Puts the pack at `uri` in one PutObject with its SHA-256 (S3 refuses bytes that do not match it)
    and SSE-KMS. An object already there with other bytes is replaced only with `replace`: the
    running environment's nodes pin the old hash, so a new node would refuse the new pack."""
    size = path.stat().st_size
    if size > PUT_OBJECT_LIMIT:
        raise ValueError(f"{path}: {size} bytes; one PutObject takes at most 5 GiB, and only a single PutObject "
                         "keeps a full-object SHA-256 in S3")
    existing = object_sha256(s3, uri)
    if existing is not None and existing.sha256 == sha256:
        return Upload(uri, sha256, size, uploaded=False, encryption="unchanged (already in place)")
    if existing is not None and not replace:
        raise ValueError(
            f"{uri}: already holds another pack (SHA-256 {existing.sha256}); the deployed environment's nodes pin "
            "that hash, so a node that starts after this upload would refuse the new pack until the new hash is "
            "deployed. Upload a new pack under a new key (change product.pack_s3_uri first), or pass --replace "
            "if no node runs from the old one")
    bucket, key = s3_location(uri)
    with path.open("rb") as body:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentLength=size, ContentType="application/zip",
                      ChecksumAlgorithm="SHA256",
                      ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode("ascii"),
                      ServerSideEncryption="aws:kms")
    stored = object_sha256(s3, uri)
    if stored is None or stored.sha256 != sha256:
        raise ValueError(f"{uri}: after the upload S3 reports SHA-256 {stored.sha256 if stored else '(no object)'}, "
                         f"not {sha256}")
    return Upload(uri, sha256, size, uploaded=True, encryption=ENCRYPTION_NOTE)
