"""Lambda deployment packages built at synth, the same bytes on every machine and every run.

A package is a zip of the project's own modules (and, for branch-databases, the PyMySQL it
vendors). Fixed timestamps, sorted names and fixed
permissions make the bytes (and so the Terraform asset's content hash and the function's
`source_code_hash`) depend on the code alone: an unchanged function never shows up in a plan.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
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
    return LambdaPackage(file_name, _zip({name: (_PACKAGE_ROOT / path).read_bytes() for name, path in modules.items()}))


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            entry = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            entry.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, entries[name], compresslevel=9)
    return buffer.getvalue()


def directory_accounts() -> LambdaPackage:
    """The directory-accounts function (obiam/directory_accounts_function.py) as `index.handler`."""
    return package("directory-accounts.zip", {"index.py": "directory_accounts_function.py"})


def branch_databases() -> LambdaPackage:
    """The branch-databases function (obiam/branch_databases_function.py) as `index.handler`, with PyMySQL.

    The Lambda Python runtime has boto3 but no MySQL client: PyMySQL (pure Python, pinned in
    requirements.lock) is vendored from the installed distribution, its licence included (MIT asks
    for the notice to travel with the code). Bytecode caches are left out: they differ per machine.
    """
    entries = {"index.py": (_PACKAGE_ROOT / "branch_databases_function.py").read_bytes()}
    distribution = importlib.metadata.distribution("PyMySQL")
    for file in distribution.files or ():
        name = file.as_posix()
        vendored = name.startswith("pymysql/") and name.endswith(".py")
        licence = ".dist-info/" in name and Path(name).name.startswith("LICENSE")
        if (vendored or licence) and "__pycache__" not in file.parts:
            entries[name] = Path(str(distribution.locate_file(file))).read_bytes()
    if "pymysql/__init__.py" not in entries:
        raise RuntimeError("the installed PyMySQL lists no pymysql/ modules; reinstall it (make setup)")
    return LambdaPackage("branch-databases.zip", _zip(entries))
