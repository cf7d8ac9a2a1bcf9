"""Lambda deployment packages built at synth, the same bytes on every machine and every run.

A package is a zip of the project's own modules. Fixed timestamps, sorted names and fixed
permissions make the bytes (and so the Terraform asset's content hash and the function's
`source_code_hash`) depend on the code alone: an unchanged function never shows up in a plan.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import obiam

# The earliest timestamp a zip entry can hold: no clock and no checkout's file times leak in.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_PACKAGE_ROOT = Path(obiam.__file__).resolve().parent


@dataclass(frozen=True)
class LambdaPackage:
    file_name: str
    content: bytes

    @property
    def source_code_hash(self) -> str:
        """What Terraform's filebase64sha256() gives for the file: base64 of its SHA-256."""
        return base64.b64encode(hashlib.sha256(self.content).digest()).decode("ascii")


def package(file_name: str, modules: dict[str, str]) -> LambdaPackage:
    """Zip `modules` ({name in the zip: path under the obiam package}) deterministically."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(modules):
            entry = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            entry.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            entry.compress_type = zipfile.ZIP_DEFLATED
            source = (_PACKAGE_ROOT / modules[name]).read_bytes()
            archive.writestr(entry, source, compresslevel=9)
    return LambdaPackage(file_name, buffer.getvalue())


def directory_accounts() -> LambdaPackage:
    """The directory-accounts function (obiam/directory_accounts_function.py) as `index.handler`."""
    return package("directory-accounts.zip", {"index.py": "directory_accounts_function.py"})
