"""`obiam pack build`: WSO2's downloads -> one reproducible OB IAM pack zip and its manifest.

What WSO2's merge step does (financial-open-banking 3.0.0 ob-is bin/merge.sh), done on the archives
without unpacking them: the accelerator's carbon-home over the IS home (an existing consentmgr webapp
replaced, its runtime-config.js kept; consentmgr.war unpacked into consentmgr/), the IS
identifier-first handler dropin removed. Then what OB's "Setting up servers" and "Setting up
databases" ask for by hand: the IS Connector's two dropins and keymanager-operations.war, the JDBC
drivers in repository/components/lib, and the API Manager 4.0 scripts under dbscripts/apim/ (where
the nodes' schema step reads them, obiam.wso2). The accelerator's wso2is-5.11.0-deployment.toml,
which merge.sh leaves in the accelerator, goes to repository/resources/ (the nodes merge it at boot).

Reproducible: entries in sorted order (the manifest last), every timestamp 1980-01-01 00:00, modes
0755 (directories, executables) or 0644, no extra fields, and the manifest names inputs by content
(SHA-256), never by file name or path. The same inputs and Python's zlib give the same bytes.
Written to a temporary file beside the output and renamed, so a failed build leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import stat
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from obiam import database_engines, pack, wso2
from obiam.pack import DISTRIBUTIONS, Distribution, PackError, describe_directory

FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
CHUNK = 1 << 20
# Already compressed: stored as they are (deflating them again costs time and saves nothing).
_STORED = (".jar", ".war", ".zip", ".gz", ".png", ".jpg", ".jpeg", ".gif", ".ico", ".woff", ".woff2")
_CONSENTMGR = f"{pack.WEBAPPS}/consentmgr"


@dataclass(frozen=True)
class Source:
    """Where one file of the pack comes from: a member of an input zip, or bytes."""

    archive: zipfile.ZipFile | None
    member: str
    executable: bool
    data: bytes | None = None

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.archive is not None
        return self.archive.getinfo(self.member).file_size

    def open(self) -> IO[bytes]:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.archive is not None
        return self.archive.open(self.member)


@dataclass
class Archive:
    """One input zip: its top directory and its files and directories relative to it."""

    path: Path
    option: str
    zip: zipfile.ZipFile
    top: str
    files: dict[str, Source] = field(default_factory=dict)
    directories: set[str] = field(default_factory=set)

    def where(self, relative: str = "") -> str:
        return f"{self.path}: {self.top}/{relative}"

    def read(self, relative: str) -> bytes:
        with self.files[relative].open() as stream:
            return stream.read()

    def starting(self, prefix: str) -> list[str]:
        return sorted(p for p in self.files if p.startswith(prefix))


@dataclass(frozen=True)
class _Input:
    path: Path
    option: str
    expected: tuple[str, ...]  # accepted top directories
    what: str


@dataclass(frozen=True)
class Built:
    path: Path
    manifest_path: Path
    sha256: str
    size: int
    manifest: dict[str, object]


def _executable(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    if info.create_system == 3 and mode:
        return bool(mode & 0o111)
    return info.filename.endswith(".sh")


def _unsafe(name: str) -> bool:
    parts = name.split("/")
    return name.startswith("/") or "\\" in name or ".." in parts or ":" in parts[0]


def _open_zip(path: Path, option: str, what: str, problems: list[str], stack: ExitStack) -> zipfile.ZipFile | None:
    if not path.is_file():
        problems.append(f"{option} {path}: no such file; expected {what}")
        return None
    if not zipfile.is_zipfile(path):
        problems.append(f"{path}: is not a zip archive; {option} takes {what}")
        return None
    try:
        return stack.enter_context(zipfile.ZipFile(path))
    except (zipfile.BadZipFile, OSError) as error:
        problems.append(f"{path}: cannot be read as a zip archive ({error}); {option} takes {what}")
        return None


def _archive(source: _Input, problems: list[str], stack: ExitStack) -> Archive | None:
    """Opens an input whose single top directory must be one of `expected` (name and version)."""
    path, option, expected, what = source.path, source.option, source.expected, source.what
    archive = _open_zip(path, option, what, problems, stack)
    if archive is None:
        return None
    infos = archive.infolist()
    unsafe = [i.filename for i in infos if _unsafe(i.filename) or stat.S_ISLNK(i.external_attr >> 16)]
    if unsafe:
        problems.append(f"{path}: holds {len(unsafe)} entries with an absolute path, '..' or a symbolic link "
                        f"(first: {unsafe[0]}); {option} takes {what} as WSO2 ships it")
        return None
    tops = sorted({i.filename.split("/", 1)[0] for i in infos})
    if len(tops) != 1 or not any("/" in i.filename for i in infos):
        problems.append(f"{path}: has {len(tops)} top-level entries ({', '.join(tops[:4])}); {option} takes {what}, "
                        f"whose files all sit under one top directory ({' or '.join(d + '/' for d in expected)})")
        return None
    top = tops[0]
    if top not in expected:
        problems.append(f"{path}: is {describe_directory(top)} (top directory {top}/); {option} takes {what} "
                        f"(top directory {' or '.join(d + '/' for d in expected)})")
        return None
    result = Archive(path, option, archive, top)
    for info in infos:
        relative = info.filename[len(top) + 1:]
        if not relative:
            continue
        if info.is_dir():
            result.directories.add(relative.rstrip("/"))
        else:
            result.files[relative] = Source(archive, info.filename, _executable(info))
    return result


def _require(archive: Archive, paths: list[str], why: str, problems: list[str]) -> None:
    for relative in paths:
        if relative.endswith("/"):
            present = any(p.startswith(relative) for p in archive.files) or relative.rstrip("/") in archive.directories
        elif relative.endswith("-"):  # a jar name prefix; its version follows the build
            present = any(p.startswith(relative) and p.endswith(".jar") for p in archive.files)
        else:
            present = relative in archive.files
        if not present:
            shown = relative + "*.jar" if relative.endswith("-") else relative
            problems.append(f"{archive.where(shown)}: missing; {why}")


def _updates(archive: Archive, expected_product: str | None, problems: list[str]) -> dict[str, object]:
    """WSO2 Updates 2.0 state of a product home: updates/product.txt names the product (IS 5.11.0 GA
    ships it as `wso2is-5.11.0`); the update tool records the level in updates/config.json."""
    found: dict[str, object] = {}
    if "updates/product.txt" in archive.files:
        product = archive.read("updates/product.txt").decode("utf-8", "replace").strip()
        found["updates_product"] = product
        if expected_product is not None and product != expected_product:
            problems.append(f"{archive.where('updates/product.txt')}: names {describe_directory(product)}; "
                            f"{archive.option} takes {describe_directory(expected_product)}")
    if "updates/config.json" in archive.files:
        try:
            config = json.loads(archive.read("updates/config.json"))
        except ValueError as error:
            problems.append(f"{archive.where('updates/config.json')}: is not JSON ({error}); the WSO2 update tool "
                            "writes it, so the pack is not as the tool left it")
            return found
        level = config.get("update-level") if isinstance(config, dict) else None
        if isinstance(level, str | int):
            found["update_level"] = str(level)
    return found


def _drivers(paths: list[Path], problems: list[str], stack: ExitStack) -> list[tuple[Path, list[str]]]:
    """Each jar with the engines whose driver class (obiam.database_engines.ENGINES) it carries."""
    classes: dict[str, list[str]] = {}
    for engine in database_engines.ENGINES:
        classes.setdefault(pack.driver_class_path(engine), []).append(engine)
    known = ", ".join(sorted({e.jdbc.driver for e in database_engines.ENGINES.values()}))
    found: list[tuple[Path, list[str]]] = []
    seen: dict[str, Path] = {}
    for path in paths:
        what = f"a JDBC driver jar with one of {known}"
        jar = _open_zip(path, "--jdbc-driver", what, problems, stack)
        if jar is None:
            continue
        names = set(jar.namelist())
        engines = [e for class_path, es in classes.items() if class_path in names for e in es]
        if not engines:
            problems.append(f"{path}: carries none of the driver classes the nodes load ({known}); --jdbc-driver "
                            "takes the driver jar for the environment's database engine (for MySQL 8: "
                            "Connector/J 8.x, com.mysql.cj.jdbc.Driver)")
            continue
        for engine in engines:
            if engine in seen:
                problems.append(f"{path}: is a second {engine} driver (the first: {seen[engine]}); two drivers of "
                                "one engine on WSO2's class path load unpredictably: give one per engine")
            seen[engine] = path
        found.append((path, sorted(engines)))
    return found


class _Pack:
    """The merged tree: pack-relative path -> source, plus the directories to keep even if empty."""

    def __init__(self) -> None:
        self.files: dict[str, Source] = {}
        self.directories: set[str] = set()

    def put(self, relative: str, source: Source) -> None:
        self.files[relative] = source

    def remove(self, prefix: str) -> None:
        for path in [p for p in self.files if p == prefix or p.startswith(prefix + "/")]:
            del self.files[path]
        self.directories = {d for d in self.directories if d != prefix and not d.startswith(prefix + "/")}

    def entries(self) -> Iterator[tuple[str, Source | None]]:
        """Sorted: directories (with a trailing /) and files; None for a directory."""
        directories = set(self.directories)
        for path in self.files:
            parent = posixpath.dirname(path)
            while parent:
                directories.add(parent)
                parent = posixpath.dirname(parent)
        items: dict[str, Source | None] = {d + "/": None for d in directories}
        items.update(self.files)
        yield from sorted(items.items())


def _merge_accelerator(tree: _Pack, accelerator: Archive, distribution: Distribution) -> None:
    carbon_home = "carbon-home/"
    runtime_config = tree.files.get(f"{_CONSENTMGR}/runtime-config.js")
    incoming = [p for p in accelerator.files if p.startswith(carbon_home)]
    # merge.sh: an existing consentmgr webapp is deleted (its runtime-config.js kept) before the copy.
    tree.remove(_CONSENTMGR)
    for path in incoming:
        tree.put(path[len(carbon_home):], accelerator.files[path])
    tree.directories |= {d[len(carbon_home):] for d in accelerator.directories if d.startswith(carbon_home)}
    war = tree.files.pop(f"{pack.WEBAPPS}/consentmgr.war", None)
    if war is not None:  # merge.sh unpacks it into consentmgr/ and deletes it
        with war.open() as stream:
            data = stream.read()
        inner = zipfile.ZipFile(io.BytesIO(data))
        for info in inner.infolist():
            if info.is_dir() or _unsafe(info.filename):
                continue
            tree.put(f"{_CONSENTMGR}/{info.filename}", Source(inner, info.filename, _executable(info)))
    if runtime_config is not None:
        tree.put(f"{_CONSENTMGR}/runtime-config.js", runtime_config)
    for path in [p for p in tree.files if p.startswith(f"{pack.DROPINS}/{distribution.replaced_dropin}")]:
        del tree.files[path]
    # merge.sh leaves the per-IS-version toml in the accelerator; the nodes read it from the pack.
    tree.put(pack.ACCELERATOR_TOML, accelerator.files[pack.ACCELERATOR_TOML])


def _inputs(distribution: Distribution, identity_server: Path, accelerator: Path, extensions: Path,
            api_manager: Path) -> list[_Input]:
    d = distribution
    return [
        _Input(identity_server, "--identity-server", (d.identity_server,),
               f"WSO2 Identity Server {d.identity_server.split('-')[-1]} ({d.identity_server}.zip)"),
        _Input(accelerator, "--accelerator", d.accelerator,
               f"the WSO2 Open Banking IS accelerator {d.version} ({d.accelerator[0]}.zip)"),
        _Input(extensions, "--extensions", (d.extensions,),
               f"the WSO2 IS Connector for API Manager 4.0 ({d.extensions}.zip)"),
        _Input(api_manager, "--api-manager", (d.api_manager,),
               f"WSO2 API Manager {d.api_manager.split('-')[-1]} ({d.api_manager}.zip), whose dbscripts fill the "
               "API-Manager-owned databases"),
    ]


def _check_identity_server(archive: Archive, distribution: Distribution, problems: list[str]) -> dict[str, object]:
    _require(archive, ["bin/wso2server.sh", "repository/components/", "repository/resources/",
                       *[f"dbscripts/{d}.sql" for d in pack.dialects()]],
             "WSO2 IS 5.11.0 ships it, and merge.sh and the nodes need it", problems)
    for directory in wso2.ARTIFACT_DIRECTORIES:
        relative = f"{pack.ARTIFACT_ROOT}/{directory}"
        if relative not in archive.directories and not archive.starting(relative + "/"):
            problems.append(f"{archive.where(relative)}/: missing; WSO2's HA guide shares this runtime-artifact "
                            "directory, which IS 5.11.0 ships")
    return {"component": "identity-server", "directory": archive.top,
            **_updates(archive, distribution.identity_server, problems)}


def _check_accelerator(archive: Archive, distribution: Distribution, problems: list[str]) -> dict[str, object]:
    _require(archive, ["bin/merge.sh", "carbon-home/", pack.ACCELERATOR_TOML,
                       *[f"carbon-home/{pack.DROPINS}/{d}" for d in distribution.accelerator_dropins],
                       *[f"carbon-home/dbscripts/open-banking/consent/{d}.sql" for d in pack.dialects()]],
             f"the OB IS accelerator {distribution.version} ships it (merge.sh, its pom's dropins, the IS 5.11 "
             "configuration, the consent scripts)", problems)
    return {"component": "ob-accelerator", "directory": archive.top, **_updates(archive, None, problems)}


def _check_extensions(archive: Archive, distribution: Distribution, problems: list[str]) -> dict[str, object]:
    _require(archive, [path for path, _ in distribution.extension_files],
             "OB's \"Setting up servers\" copies it into IS", problems)
    return {"component": "is-connector", "directory": archive.top}


def _check_api_manager(archive: Archive, distribution: Distribution, problems: list[str]) -> dict[str, object]:
    _require(archive, [f"dbscripts/{sub}{d}.sql" for d in pack.dialects() for sub in ("", "apimgt/")],
             "OB's \"Setting up databases\" fills openbank_apimgtdb, _am_configdb, _govdb and _userdb with it",
             problems)
    return {"component": "api-manager-dbscripts", "directory": archive.top}


_CHECKS = (_check_identity_server, _check_accelerator, _check_extensions, _check_api_manager)


def _output_problems(output: Path, inputs: list[Path]) -> list[str]:
    if output.suffix != ".zip":
        return [f"--output {output}: allowed: a path ending in .zip (the pack the nodes unzip)"]
    if not output.parent.is_dir():
        return [f"--output {output}: the directory {output.parent} does not exist"]
    if output.exists() and any(p.exists() and output.resolve() == p.resolve() for p in inputs):
        return [f"--output {output}: is one of the inputs; name a new file"]
    return []


def build(*, version: str, identity_server: Path, accelerator: Path, extensions: Path, api_manager: Path,
          drivers: list[Path], output: Path) -> Built:
    """Merges the inputs into `output` and writes its manifest beside it; PackError lists every problem."""
    distribution = DISTRIBUTIONS[version]
    inputs = _inputs(distribution, identity_server, accelerator, extensions, api_manager)
    problems = _output_problems(output, [i.path for i in inputs] + drivers)
    if not drivers:
        problems.append("--jdbc-driver: required at least once: WSO2 IS 5.11 ships only H2's driver, so the pack "
                        "carries the driver of the environment's database engine")
    with ExitStack() as stack:
        archives = [_archive(i, problems, stack) for i in inputs]
        driver_jars = _drivers(drivers, problems, stack)
        components = [check(a, distribution, problems) for check, a in zip(_CHECKS, archives, strict=True)
                      if a is not None]
        if problems:
            raise PackError(problems)
        is_zip, ob_zip, ext_zip, am_zip = (a for a in archives if a is not None)
        tree = _Pack()
        tree.files.update(is_zip.files)
        tree.directories |= is_zip.directories
        _merge_accelerator(tree, ob_zip, distribution)
        for prefix, target in distribution.extension_files:
            for path in ext_zip.starting(prefix):
                tree.put(f"{target}/{posixpath.basename(path)}", ext_zip.files[path])
        for path in am_zip.files:  # dbscripts/<dialect>.sql and dbscripts/apimgt/<dialect>.sql only
            script = path.removeprefix("dbscripts/")
            if path.startswith("dbscripts/") and path.endswith(".sql") and "/" not in script.removeprefix("apimgt/"):
                tree.put("dbscripts/apim/" + script, am_zip.files[path])
        for jar, engines in driver_jars:
            tree.put(f"{pack.LIB}/{jar.name}", Source(None, jar.name, False, jar.read_bytes()))
            components.append({"component": "jdbc-driver", "file": jar.name, "engines": engines})
        for component, source in zip(components, [i.path for i in inputs] + [j for j, _ in driver_jars], strict=True):
            component["input_sha256"] = pack.file_sha256(source)
        return _write(distribution, tree, components, output)


def _write(distribution: Distribution, tree: _Pack, components: list[dict[str, object]], output: Path) -> Built:
    top = distribution.directory
    temporary = output.with_name(f".{output.name}.partial-{os.getpid()}")
    beside = output.with_name(pack.beside_manifest_name(output.name))
    beside_temporary = beside.with_name(f".{beside.name}.partial-{os.getpid()}")
    files: dict[str, dict[str, object]] = {}
    try:
        with zipfile.ZipFile(temporary, "w") as archive:
            archive.writestr(_directory_info(top + "/"), b"")
            for relative, source in tree.entries():
                if source is None:
                    archive.writestr(_directory_info(f"{top}/{relative}"), b"")
                    continue
                info = _file_info(f"{top}/{relative}", source.executable, source.size)
                digest = hashlib.sha256()
                with source.open() as reader, archive.open(info, "w") as writer:
                    for chunk in iter(lambda r=reader: r.read(CHUNK), b""):  # type: ignore[misc]
                        digest.update(chunk)
                        writer.write(chunk)
                files[relative] = {"sha256": digest.hexdigest(), "size": source.size,
                                   "mode": "0755" if source.executable else "0644"}
            manifest: dict[str, object] = {
                "format": pack.MANIFEST_FORMAT,
                "product": {"name": "WSO2 Open Banking IAM", "version": distribution.version},
                "directory": top,
                "components": components,
                "files": files,
            }
            data = pack.manifest_json(manifest)
            archive.writestr(_file_info(f"{top}/{pack.MANIFEST_NAME}", False, len(data)), data)
        sha256, size = pack.file_sha256(temporary), temporary.stat().st_size
        outside = {**manifest, "pack": {"file": output.name, "sha256": sha256, "size": size}}
        beside_temporary.write_bytes(pack.manifest_json(outside))
        os.replace(temporary, output)
        os.replace(beside_temporary, beside)
    finally:
        temporary.unlink(missing_ok=True)
        beside_temporary.unlink(missing_ok=True)
    return Built(output, beside, sha256, size, outside)


def _directory_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, FIXED_TIME)
    info.create_system = 3
    info.external_attr = ((stat.S_IFDIR | 0o755) << 16) | 0x10  # the MS-DOS directory bit too
    return info


def _file_info(name: str, executable: bool, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, FIXED_TIME)
    info.create_system = 3
    info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
    info.compress_type = zipfile.ZIP_STORED if name.lower().endswith(_STORED) else zipfile.ZIP_DEFLATED
    info.file_size = size  # lets zipfile choose zip64 up front for a large member
    return info
