"""`obiam plan-artifact`: the plan reviewers approved is the plan that is applied.

`seal` runs in the plan job, right after `terraform plan -out`: it writes a manifest naming the
stack, the commit, the SHA-256 of the binary plan, of its JSON (what the summary was made from)
and of the synthesized configuration, and the state's lineage and serial as the plan saw them.
The plan, its JSON and the manifest are uploaded as one artifact, kept for audit.

`verify` runs in the apply job, after the approval and before `terraform apply`: the downloaded
plan must have the sealed hash (nothing swapped or re-planned), the configuration synthesized
from the same commit must be byte-identical, and the state must still be the one planned
against (same lineage, same serial). Terraform refuses a plan whose state moved on too ("Saved
plan is stale"), but only after the approval and with no word about which review is void; this
says so first, in one paragraph, and exits 1.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

MANIFEST_VERSION = 1
STALE = 1
UNREADABLE = 2
_COMMIT = re.compile(r"^[0-9a-f]{40}$")

app = typer.Typer(no_args_is_help=True, help="Seal a reviewed plan, and verify it before it is applied.")


class ArtifactError(Exception):
    """An input cannot be read or is not what it claims; exit 2."""


@dataclass(frozen=True)
class Manifest:
    stack: str
    commit: str
    plan_sha256: str
    plan_json_sha256: str
    config_sha256: str
    state_lineage: str
    state_serial: int
    version: int = MANIFEST_VERSION


def sha256_of(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        raise ArtifactError(f"{path}: cannot be read: {error.strerror or error}") from None


def state_identity(path: Path) -> tuple[str, int]:
    """Lineage and serial of `terraform state pull` output; an empty file is a stack never applied."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{path}: cannot be read: {error}") from None
    if not text:
        return "", 0
    try:
        state = json.loads(text)
    except ValueError:
        raise ArtifactError(f"{path}: not JSON; pass the output of `terraform state pull`") from None
    if not isinstance(state, dict) or not isinstance(state.get("serial"), int) or isinstance(state["serial"], bool):
        raise ArtifactError(f"{path}: no integer `serial`; pass the output of `terraform state pull`")
    lineage = state.get("lineage", "")
    return (lineage if isinstance(lineage, str) else ""), state["serial"]


def seal(*, stack: str, commit: str, plan: Path, plan_json: Path, config: Path, state: Path) -> Manifest:
    if not _COMMIT.match(commit):
        raise ArtifactError(f"--commit {commit!r}: must be the 40-hex-digit commit the plan was made from")
    lineage, serial = state_identity(state)
    return Manifest(stack=stack, commit=commit, plan_sha256=sha256_of(plan), plan_json_sha256=sha256_of(plan_json),
                    config_sha256=sha256_of(config), state_lineage=lineage, state_serial=serial)


def load_manifest(path: Path) -> Manifest:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ArtifactError(f"{path}: not a plan manifest: {error}") from None
    fields = set(Manifest.__dataclass_fields__)
    if not isinstance(data, dict) or set(data) != fields or data.get("version") != MANIFEST_VERSION:
        raise ArtifactError(f"{path}: not a version-{MANIFEST_VERSION} plan manifest "
                            f"(fields: {', '.join(sorted(fields))})")
    try:
        return Manifest(**data)
    except TypeError as error:
        raise ArtifactError(f"{path}: not a plan manifest: {error}") from None


def problems(manifest: Manifest, *, stack: str, commit: str, plan: Path, config: Path, state: Path) -> list[str]:
    """Why this plan is not the reviewed, still-valid one; empty when it is."""
    found = []
    if manifest.stack != stack:
        found.append(f"the manifest is for stack {manifest.stack!r}, not {stack!r}")
    if manifest.commit != commit:
        found.append(f"the plan was made from commit {manifest.commit}, this job runs {commit}")
    if sha256_of(plan) != manifest.plan_sha256:
        found.append(f"{plan} is not the reviewed plan (SHA-256 {sha256_of(plan)}, sealed {manifest.plan_sha256})")
    if sha256_of(config) != manifest.config_sha256:
        found.append(f"the configuration changed since the plan ({config} SHA-256 {sha256_of(config)}, "
                     f"planned {manifest.config_sha256})")
    lineage, serial = state_identity(state)
    if (lineage, serial) != (manifest.state_lineage, manifest.state_serial):
        found.append(f"the state changed since the plan (lineage {lineage or '-'} serial {serial}, planned against "
                     f"lineage {manifest.state_lineage or '-'} serial {manifest.state_serial})")
    return found


def _fail(message: str, code: int) -> typer.Exit:
    print(f"obiam plan-artifact: {message}", file=sys.stderr)
    return typer.Exit(code)


def plan_key_prefix(key_prefix: str, environment: str) -> str:
    """Next to the state key (obiam/naming.py: <key_prefix>/<env>/terraform.tfstate)."""
    return f"{key_prefix}/{environment}/plans"


def plan_store(environment_file: Path) -> str:
    """Where a stack's binary plans are kept: beside its state, in the state bucket (versioned,
    encrypted, readable only by the roles that can read the state). A plan holds the same secret
    values as the state, so it never goes into a GitHub artifact, which every reader of the
    repository can download; the artifact holds the manifest and the masked summary."""
    from obiam.environments import load_file

    environment = load_file(environment_file, Path.cwd())
    state = environment.config.state
    return f"s3://{state.bucket}/{plan_key_prefix(state.key_prefix, environment.name)}"


@app.command("store")
def store_command(env: Annotated[str, typer.Option("--env", help="environment (environments/<env>.yaml)")],
                  environments_dir: Annotated[Path, typer.Option(help="environment files")] = Path("environments")
                  ) -> None:
    """Print the S3 prefix where this environment's binary plans are kept."""
    from obiam.environments import ConfigError

    try:
        print(plan_store(environments_dir / f"{env}.yaml"))
    except ConfigError as error:
        raise _fail(str(error), UNREADABLE) from None


@app.command("seal")
def seal_command(*, stack: Annotated[str, typer.Option(help="stack name")],
                 commit: Annotated[str, typer.Option(help="commit the plan was made from (GITHUB_SHA)")],
                 plan: Annotated[Path, typer.Option(help="the binary plan (terraform plan -out)")],
                 plan_json: Annotated[Path, typer.Option(help="terraform show -json of that plan")],
                 config: Annotated[Path, typer.Option(help="the synthesized cdk.tf.json")],
                 state: Annotated[Path, typer.Option(help="terraform state pull, taken with the plan")],
                 output: Annotated[Path, typer.Option(help="manifest to write")]) -> None:
    """Record what was planned, so the apply can prove it applies exactly that."""
    try:
        manifest = seal(stack=stack, commit=commit, plan=plan, plan_json=plan_json, config=config, state=state)
        output.write_text(json.dumps(asdict(manifest), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except ArtifactError as error:
        raise _fail(str(error), UNREADABLE) from None
    except OSError as error:
        raise _fail(f"{output}: cannot be written: {error.strerror or error}", UNREADABLE) from None
    print(f"sealed {stack} plan {manifest.plan_sha256} (state serial {manifest.state_serial})")


@app.command("verify")
def verify_command(*, manifest: Annotated[Path, typer.Option(help="manifest from the plan artifact")],
                   stack: Annotated[str, typer.Option(help="stack this job applies")],
                   commit: Annotated[str, typer.Option(help="commit this job runs (GITHUB_SHA)")],
                   plan: Annotated[Path, typer.Option(help="the plan about to be applied")],
                   config: Annotated[Path, typer.Option(help="cdk.tf.json synthesized in this job")],
                   state: Annotated[Path, typer.Option(help="terraform state pull, now")]) -> None:
    """Refuse to apply anything but the reviewed plan against the state it was made for."""
    try:
        found = problems(load_manifest(manifest), stack=stack, commit=commit, plan=plan, config=config, state=state)
    except ArtifactError as error:
        raise _fail(str(error), UNREADABLE) from None
    if found:
        raise _fail(f"refusing to apply the {stack} plan: it is not the reviewed plan, or it is stale: "
                    + "; ".join(found) + ". Nothing was applied. Re-run the deploy workflow to plan again "
                    "and have the new plan reviewed.", STALE)
    print(f"{stack}: applying the reviewed plan {sha256_of(plan)}")
