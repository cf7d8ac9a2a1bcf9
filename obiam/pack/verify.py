"""`obiam pack verify`: does a pack hold what the node's boot path relies on, and is it what its manifest says?

Each check is one line (obiam.ops.output): the start script, the accelerator's dropins and IS 5.11
configuration, the IS Connector, the five runtime-artifact directories, the database scripts and a
JDBC driver per engine, and the manifest: every file listed with its SHA-256, nothing more or less,
and (when the manifest written beside the pack is there) the pack's own SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import zipfile
from pathlib import Path
from typing import Any

from obiam import database_engines, pack, wso2
from obiam.ops.output import Check
from obiam.pack import DISTRIBUTIONS, PackError

_SHOWN = 5  # paths named per failed check


def _listing(paths: list[str]) -> str:
    return ", ".join(paths[:_SHOWN]) + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


def open_pack(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise PackError([f"{path}: no such file; expected a pack zip made by `obiam pack build`"])
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise PackError([f"{path}: is not a zip archive ({error}); expected a pack made by `obiam pack build`"]
                        ) from None


def verify_pack(path: Path, *, engine: str | None = None, manifest_path: Path | None = None,
                version: str = "3.0.0") -> list[Check]:
    """The checks for one pack; PackError when it cannot be read at all."""
    if engine is not None and engine not in database_engines.ENGINES:
        raise PackError([f"--engine {engine}: allowed: {', '.join(database_engines.ENGINES)} "
                         "(database.engine)"])
    distribution = DISTRIBUTIONS[version]
    with open_pack(path) as archive:
        infos = archive.infolist()
        tops = sorted({i.filename.split("/", 1)[0] for i in infos})
        if len(tops) != 1:
            raise PackError([f"{path}: has {len(tops)} top-level entries ({_listing(tops)}); a pack holds one "
                             "directory, which the nodes unzip into /opt/wso2"])
        top = tops[0]
        files = {i.filename[len(top) + 1:]: i for i in infos if not i.is_dir() and i.filename != top + "/"}
        directories = {i.filename[len(top) + 1:].rstrip("/") for i in infos if i.is_dir()}
        directories |= {d for f in files for d in _parents(f)}
        checks = _layout_checks(archive, files, directories, distribution=distribution, engine=engine,
                                version=version)
        checks.extend(_manifest_checks(archive, path, top, files, manifest_path))
    return checks


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _layout_checks(archive: zipfile.ZipFile, files: dict[str, zipfile.ZipInfo], directories: set[str], *,
                   distribution: pack.Distribution, engine: str | None, version: str) -> list[Check]:
    checks: list[Check] = []
    start = files.get("bin/wso2server.sh")
    executable = start is not None and bool((start.external_attr >> 16) & stat.S_IXUSR)
    checks.append(Check("start script", executable,
                        "bin/wso2server.sh, executable" if executable else
                        "bin/wso2server.sh is " + ("not executable" if start else "missing")))

    def jars(prefix: str) -> list[str]:
        return [p for p in files if p.startswith(prefix) and p.endswith(".jar")]

    missing = [d + "*.jar" for d in distribution.accelerator_dropins if not jars(f"{pack.DROPINS}/{d}")]
    checks.append(Check("accelerator dropins", not missing,
                        f"{len(jars(pack.DROPINS + '/com.wso2.openbanking.'))} com.wso2.openbanking jars in "
                        f"{pack.DROPINS}" + (f"; missing {_listing(missing)}" if missing else "")))
    checks.append(Check("accelerator configuration", pack.ACCELERATOR_TOML in files,
                        pack.ACCELERATOR_TOML + ("" if pack.ACCELERATOR_TOML in files else " is missing")))
    missing = [f"{target}/{prefix.rsplit('/', 1)[-1]}" for prefix, target in distribution.extension_files
               if not any(p.startswith(f"{target}/{prefix.rsplit('/', 1)[-1]}") for p in files)]
    checks.append(Check("IS connector", not missing,
                        "wso2is-extensions dropins and keymanager-operations.war"
                        + (f"; missing {_listing(missing)}" if missing else "")))
    missing = [d for d in wso2.ARTIFACT_DIRECTORIES if f"{pack.ARTIFACT_ROOT}/{d}" not in directories]
    checks.append(Check("runtime-artifact directories", not missing,
                        f"{pack.ARTIFACT_ROOT}/{{{','.join(wso2.ARTIFACT_DIRECTORIES)}}}"
                        + (f"; missing {_listing(missing)}" if missing else "")))
    engines = [engine] if engine else list(database_engines.ENGINES)
    for dialect in sorted({database_engines.ENGINES[e].jdbc.dialect for e in engines}):
        missing = [s for s in pack.database_scripts(version, dialect) if s not in files]
        checks.append(Check(f"database scripts ({dialect})", not missing,
                            f"{len(pack.database_scripts(version, dialect))} scripts"
                            + (f"; missing {_listing(missing)}" if missing else "")))
    drivers = _drivers(archive, files)
    if engine:
        found = drivers.get(engine)
        driver = database_engines.ENGINES[engine].jdbc.driver
        checks.append(Check(f"JDBC driver ({engine})", found is not None,
                            f"{pack.LIB}/{found} has {driver}" if found else
                            f"no jar in {pack.LIB} has {driver}"))
    else:
        checks.append(Check("JDBC driver", bool(drivers),
                            ", ".join(f"{e}: {j}" for e, j in sorted(drivers.items())) if drivers else
                            f"no jar in {pack.LIB} has the driver class of any engine the toolkit deploys"))
    return checks


def _drivers(archive: zipfile.ZipFile, files: dict[str, zipfile.ZipInfo]) -> dict[str, str]:
    """Engine -> the lib jar that carries its driver class."""
    found: dict[str, str] = {}
    for path, info in sorted(files.items()):
        if not (path.startswith(pack.LIB + "/") and path.endswith(".jar") and path.count("/") == 3):
            continue
        try:
            names = set(zipfile.ZipFile(io.BytesIO(archive.read(info))).namelist())
        except zipfile.BadZipFile:
            continue
        for engine in database_engines.ENGINES:
            if pack.driver_class_path(engine) in names:
                found.setdefault(engine, path.rsplit("/", 1)[-1])
    return found


def _manifest_checks(archive: zipfile.ZipFile, path: Path, top: str, files: dict[str, zipfile.ZipInfo],
                     manifest_path: Path | None) -> list[Check]:
    inner = files.pop(pack.MANIFEST_NAME, None)
    if inner is None:
        return [Check("manifest", False, f"{top}/{pack.MANIFEST_NAME} is missing: not a pack `obiam pack build` made")]
    try:
        manifest: dict[str, Any] = json.loads(archive.read(inner))
        listed: dict[str, dict[str, Any]] = manifest["files"]
        if manifest.get("format") != pack.MANIFEST_FORMAT or not isinstance(listed, dict):
            raise ValueError(f"format {manifest.get('format')!r}, expected {pack.MANIFEST_FORMAT}")
    except (ValueError, KeyError, TypeError) as error:
        return [Check("manifest", False, f"{top}/{pack.MANIFEST_NAME} cannot be read: {error}")]
    changed, unlisted = [], []
    for relative, info in sorted(files.items()):
        entry = listed.get(relative)
        if entry is None:
            unlisted.append(relative)
            continue
        digest = hashlib.sha256()
        with archive.open(info) as stream:
            for chunk in iter(lambda s=stream: s.read(1 << 20), b""):  # type: ignore[misc]
                digest.update(chunk)
        if digest.hexdigest() != entry.get("sha256"):
            changed.append(relative)
    absent = sorted(set(listed) - set(files))
    problems = ([f"{len(changed)} changed ({_listing(changed)})"] if changed else []) + \
               ([f"{len(unlisted)} not listed ({_listing(unlisted)})"] if unlisted else []) + \
               ([f"{len(absent)} listed but absent ({_listing(absent)})"] if absent else [])
    components = ", ".join(str(c.get("directory") or c.get("file")) for c in manifest.get("components", []))
    checks = [Check("manifest", not problems,
                    f"{len(listed)} files match their SHA-256 ({components})" if not problems
                    else "files differ from the manifest: " + "; ".join(problems))]
    beside = manifest_path or path.with_name(pack.beside_manifest_name(path.name))
    if beside.is_file():
        try:
            outside = json.loads(beside.read_text(encoding="utf-8"))
            pinned = str(outside["pack"]["sha256"])
            same = {k: v for k, v in outside.items() if k != "pack"} == manifest
        except (ValueError, KeyError, TypeError) as error:
            checks.append(Check("pack SHA-256", False, f"{beside} cannot be read: {error}"))
            return checks
        actual = pack.file_sha256(path)
        checks.append(Check("pack SHA-256", actual == pinned and same,
                            f"{actual}, as {beside.name} records" if actual == pinned and same else
                            f"{beside.name} records {pinned}, the pack is {actual}" if actual != pinned else
                            f"{beside.name} describes other contents than the pack's own manifest"))
    elif manifest_path is not None:
        checks.append(Check("pack SHA-256", False, f"{manifest_path}: no such file"))
    return checks
