"""checkov over every synthesized stack, with accepted findings from one reviewed file.

checkov's terraform_json runner ignores inline skip comments, and its own config can
only skip a check everywhere, which would hide a production regression behind a
development opt-out. So checkov runs with no skips, and `checkov-skips.yaml` decides
per check, resource pattern and tier which findings are accepted, each with its
reason. The gate fails on any other finding, on a skip without a reason, and on a
skip that matches nothing any more (so the file cannot go stale).

    python -m obiam.checkov_gate [--outdir cdktf.out]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from obiam.tier_policy import TIERS

ROOT = Path(__file__).resolve().parent.parent
SKIPS_FILE = ROOT / "checkov-skips.yaml"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
_CHECK_ID = re.compile(r"^CKV2?_[A-Z0-9]+_\d+$")


class GateError(Exception):
    """The gate could not run or its skip file is malformed (not a finding)."""


@dataclass(frozen=True)
class Skip:
    check: str
    resources: tuple[str, ...]
    tiers: tuple[str, ...]
    reason: str
    # Stack-name patterns, for a finding one shape alone has (an example under environments/examples/);
    # empty: every stack of the tiers.
    stacks: tuple[str, ...] = ()

    def accepts(self, finding: Finding) -> bool:
        return (finding.check_id == self.check and finding.tier in self.tiers and self.covers(finding.stack)
                and any(fnmatch.fnmatchcase(finding.resource_name, pattern) for pattern in self.resources))

    def covers(self, stack: str) -> bool:
        return not self.stacks or any(fnmatch.fnmatchcase(stack, pattern) for pattern in self.stacks)


@dataclass(frozen=True)
class Finding:
    stack: str
    tier: str
    check_id: str
    check_name: str
    resource: str

    @property
    def resource_name(self) -> str:
        # checkov reports some resources as `resource.<name>`, others as `<type>.<name>`.
        return self.resource.split(".", 1)[-1]


@dataclass
class GateResult:
    passed: int
    failed: list[Finding] = field(default_factory=list)
    accepted: list[tuple[Finding, Skip]] = field(default_factory=list)
    unused: list[Skip] = field(default_factory=list)
    parsing_errors: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unused and not self.parsing_errors


def load_skips(path: Path = SKIPS_FILE) -> list[Skip]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise GateError(f"{path.name}: cannot be read: {error}") from None
    skips = []
    for i, entry in enumerate(data.get("skips", [])):
        where = f"{path.name}: skips[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"check", "resources", "tiers", "stacks", "reason"}:
            raise GateError(f"{where}: allowed keys are check, resources, tiers, stacks, reason")
        check, reason = str(entry.get("check", "")), str(entry.get("reason", "")).strip()
        if not _CHECK_ID.match(check):
            raise GateError(f"{where}.check = {check!r}: allowed: a checkov id such as CKV_AWS_18")
        if len(reason) < 40:
            raise GateError(f"{where}.reason: every skip says why the check does not apply (40+ characters)")
        tiers = tuple(entry.get("tiers") or TIERS)
        if unknown := set(tiers) - set(TIERS):
            raise GateError(f"{where}.tiers = {sorted(unknown)}: allowed: {', '.join(TIERS)}")
        resources = tuple(entry.get("resources") or ())
        if not resources:
            raise GateError(f"{where}.resources: name the resources (patterns) the skip covers")
        skips.append(Skip(check, resources, tiers, reason, tuple(entry.get("stacks") or ())))
    return skips


def sanitized(stack_json: dict[str, Any]) -> dict[str, Any]:
    """The stack without `terraform.required_version`: checkov 3.3's terraform_json parser
    treats every value of the `terraform` block as a block and crashes on that one string."""
    copy: dict[str, Any] = json.loads(json.dumps(stack_json))
    copy.get("terraform", {}).pop("required_version", None)
    return copy


def start(stacks: Mapping[str, Path], workdir: Path, checkov: Path | str | None = None) -> subprocess.Popen[str]:
    """Starts checkov on copies of the stacks in `workdir`; `collect` waits for it."""
    binary = str(checkov or os.environ.get("OBIAM_CHECKOV") or CHECKOV)
    if shutil.which(binary) is None:
        raise GateError(f"checkov not found at {binary}; run `make setup` (it installs .venv-checkov)")
    workdir.mkdir(parents=True, exist_ok=True)
    for name, path in stacks.items():
        (workdir / f"{name}.tf.json").write_text(json.dumps(sanitized(json.loads(path.read_text()))))
    command = [binary, "--skip-download", "--framework", "terraform_json", "--directory", str(workdir),
               "--output", "json", "--quiet", "--compact"]
    env = {**os.environ, "LOG_LEVEL": "ERROR"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def collect(process: subprocess.Popen[str], tiers: Mapping[str, str], skips: Sequence[Skip],
            timeout: float = 600) -> GateResult:
    stdout, stderr = process.communicate(timeout=timeout)
    # checkov exits 1 when a check fails; anything else, or no JSON, means it did not run.
    if process.returncode not in (0, 1):
        raise GateError(f"checkov exited {process.returncode}: {stderr.strip()[-500:]}")
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        raise GateError(f"checkov printed no JSON report: {stderr.strip()[-500:]}") from None
    report = report[0] if isinstance(report, list) else report
    summary = report.get("summary", {})
    result = GateResult(passed=summary.get("passed", 0), parsing_errors=summary.get("parsing_errors", 0))
    used: set[Skip] = set()
    for item in report.get("results", {}).get("failed_checks", []):
        stack = Path(item["file_path"]).name.removesuffix(".tf.json")
        finding = Finding(stack, tiers[stack], item["check_id"], item["check_name"], item["resource"])
        skip = next((s for s in skips if s.accepts(finding)), None)
        if skip is None:
            result.failed.append(finding)
        else:
            result.accepted.append((finding, skip))
            used.add(skip)
    # Stale: a skip that matched nothing although the run scanned a stack it covers.
    result.unused = [s for s in skips if s not in used
                     and any(tier in s.tiers and s.covers(stack) for stack, tier in tiers.items())]
    return result


def run(stacks: Mapping[str, Path], tiers: Mapping[str, str], skips: Sequence[Skip]) -> GateResult:
    with tempfile.TemporaryDirectory(prefix="obiam-checkov-") as workdir:
        return collect(start(stacks, Path(workdir)), tiers, skips)


def report_lines(result: GateResult) -> list[str]:
    lines = [f"checkov: {result.passed} passed, {len(result.failed)} failed, {len(result.accepted)} accepted "
             f"by {SKIPS_FILE.name}, {len(result.unused)} stale skip(s), {result.parsing_errors} parsing error(s)"]
    lines += [f"FAILED {f.stack}: {f.check_id} {f.check_name} ({f.resource})" for f in result.failed]
    lines += [f"STALE  {SKIPS_FILE.name}: {s.check} {list(s.resources)} matched nothing; remove it"
              for s in result.unused]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    from obiam.environments import ConfigError, load_catalog

    parser = argparse.ArgumentParser(prog="python -m obiam.checkov_gate", description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, default=Path("cdktf.out"))
    args = parser.parse_args(argv)
    try:
        catalog = load_catalog(ROOT / "environments", ROOT)
        tiers = {e.name: e.config.tier for e in catalog.environments} | {b.name: b.config.tier for b in catalog.bases}
        stacks = {p.parent.name: p for p in sorted(args.outdir.glob("stacks/*/cdk.tf.json"))}
        if not stacks:
            raise GateError(f"no stacks under {args.outdir}; run `make synth` first")
        unknown = [s for s in stacks if s not in tiers and not s.startswith("eph-")]
        if unknown:
            raise GateError(f"stacks without an environment file: {', '.join(unknown)}")
        result = run(stacks, {s: tiers.get(s, "ephemeral") for s in stacks}, load_skips())
    except (GateError, ConfigError) as error:
        print(f"checkov gate: {error}", file=sys.stderr)
        return 2
    print("\n".join(report_lines(result)))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
