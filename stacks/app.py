"""The CDKTF app: validate every environment, synthesize them all in one process, summarise.

`python main.py` and `cdktf synth` both land here. Config problems are reported
before the AWS provider bindings are imported (a 7 s load), and the output
directory is replaced only once every stack has synthesized, so a failed run
never leaves a half-written `cdktf.out`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from obiam import ephemeral, output_directory
from obiam.environments import (
    EPHEMERAL_TEMPLATE,
    BranchBase,
    Catalog,
    ConfigError,
    Deployable,
    Environment,
    load_catalog,
)
from obiam.safe_yaml import show

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ENVIRONMENTS_DIR = ROOT / "environments"
# Written into every output directory this app creates. Only a directory that carries it
# (or that is empty or missing) is ever replaced: `--outdir .` must never delete a checkout.
OUTPUT_MARKER = ".obiam-synth-output"
_MARKER_TEXT = "Written by the obiam CDKTF app (stacks/app.py); the next synth replaces this whole directory.\n"
# What cdktf itself writes; a directory holding only these is a synth output from before the marker.
_CDKTF_OUTPUT_ENTRIES = frozenset({"manifest.json", "stacks", "assets", OUTPUT_MARKER})


class SynthError(Exception):
    """Synthesis failed for a reason that is not a config problem."""


def select(catalog: Catalog, names: Sequence[str], ephemeral_branch: str | None,
           ephemeral_created_at: datetime | None, opened: datetime | None = None) -> list[Deployable]:
    """The stacks to synthesize: every environment but the ephemeral template and every branch base,
    or the named ones.

    With a branch, the ephemeral template becomes that branch's environment.
    """
    everything: list[Deployable] = [*catalog.environments, *catalog.bases]
    by_name = {e.name: e for e in everything}
    unknown = [n for n in names if n not in by_name or n == EPHEMERAL_TEMPLATE]
    if unknown:
        choices = ", ".join(n for n in by_name if n != EPHEMERAL_TEMPLATE) or "none"
        raise ConfigError([f"unknown environment {show(n)}; environments/ has: {choices}" for n in unknown])
    chosen = [by_name[n] for n in names] if names else [e for e in by_name.values() if e.name != EPHEMERAL_TEMPLATE]
    if ephemeral_branch:
        template = by_name.get(EPHEMERAL_TEMPLATE)
        if not isinstance(template, Environment):
            raise ConfigError([f"{ephemeral.BRANCH_VARIABLE} is set but environments/{EPHEMERAL_TEMPLATE}.yaml "
                               "does not exist"])
        created = ephemeral_created_at or datetime.now().astimezone()
        branch_environment = ephemeral.from_template(template, ephemeral_branch, created, opened)
        clash = by_name.get(branch_environment.name)
        if clash is not None:
            # Same stack name, same state key: deploying one would plan to replace the other.
            raise ConfigError([f"{ephemeral.BRANCH_VARIABLE} = {show(ephemeral_branch)}: its stack name "
                               f"{branch_environment.name} is also the stack of {clash.source}; allowed: a branch "
                               f"whose stack name (obiam ephemeral name --branch) no environment file has"])
        chosen.append(branch_environment)
    return chosen


def check_output_directory(outdir: Path, protected: Sequence[Path] = ()) -> None:
    """Refuses an output directory this app may not replace, before anything is written.

    Allowed: a missing or empty directory, or one an earlier synth wrote (it carries
    OUTPUT_MARKER, or holds only what cdktf writes). Refused: a file, any directory
    holding anything else (a checkout, a home directory), and any directory that is or
    contains one of `protected` (the environments directory, the repository).
    """
    output_directory.check_replaceable(outdir, "--outdir", OUTPUT_MARKER, protected, also_ours=_CDKTF_OUTPUT_ENTRIES)


def synthesize(environments: Sequence[Deployable], outdir: Path) -> None:
    """One App, one stack per environment or branch base, written to `outdir` only when all of it succeeded."""
    from cdktf import App

    from stacks.branch_base_stack import BranchBaseStack
    from stacks.ob_iam_stack import ObIamStack

    check_output_directory(outdir)

    def fill(staging: Path) -> None:
        app = App(outdir=str(staging))
        for environment in environments:
            if isinstance(environment, BranchBase):
                BranchBaseStack(app, environment)
            else:
                ObIamStack(app, environment)
        app.synth()

    try:
        output_directory.write_replacing(outdir, OUTPUT_MARKER, _MARKER_TEXT, fill)
    except Exception as error:
        raise SynthError(_first_paragraph(error)) from error


def release_jsii_runtime() -> None:
    """Ends the jsii node process now instead of through its graceful exit.

    At interpreter exit jsii asks node to exit and waits ~3 s while it tears down the
    455 MB provider assembly. Once every stack is written nothing in node is needed, so
    the process is closed and killed, and jsii's own stop() then only tidies its pipes
    and temp directory. Call it once, last: no cdktf object works afterwards. Relies on
    jsii 1.142's ProcessProvider (pinned; tests/test_stack_foundation.py covers it).
    """
    from jsii._runtime import kernel

    node = kernel.provider._process  # type: ignore[attr-defined]  # ProcessProvider's, in jsii 1.142
    child = node._process
    if child.poll() is None:
        assert child.stdin is not None
        child.stdin.close()
        child.kill()
        child.wait(timeout=10)
    node.stop()


def _first_paragraph(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.split("\n\n")[0].strip()


def summary_rows(environments: Sequence[Deployable], outdir: Path) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for e in environments:
        if isinstance(e, BranchBase):
            b = e.config
            rows.append((e.name, "branch base", f"{b.region} x{b.availability_zone_count}", "-", "-", "-",
                         f"{b.database.engine} {b.database.version}", b.directory.type,
                         (outdir / "stacks" / e.name / "cdk.tf.json").as_posix()))
            continue
        c = e.config
        rows.append((
            e.name,
            c.tier,
            f"{c.region} x{c.availability_zone_count}",
            f"{c.nodes.min_size}/{c.nodes.desired_capacity}/{c.nodes.max_size}",
            f"{c.nodes.instance_type} ({c.nodes.memory_mib // 1024} GiB)",
            f"{c.nodes.jvm_heap_mib} MiB",
            f"{c.database.engine} {c.database.version}",
            c.directory.type,
            (outdir / "stacks" / e.name / "cdk.tf.json").as_posix(),
        ))
    return rows


def print_summary(environments: Sequence[Deployable], outdir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Synthesized WSO2 OB IAM environments", title_justify="left")
    for column in ("env", "tier", "region x AZs", "nodes min/des/max", "instance (memory)", "JVM heap",
                   "database", "directory", "output"):
        table.add_column(column)
    for row in summary_rows(environments, outdir):
        table.add_row(*row)
    Console(width=160 if not sys.stdout.isatty() else None).print(table)


def _display(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def load_selection(environments_dir: Path, outdir: Path, names: Sequence[str],
                   environ: Mapping[str, str]) -> list[Deployable]:
    """Everything `main` does before it builds a stack: the variables, the output directory, every
    environment file, the selection. Writes nothing; every problem is a ConfigError."""
    branch, created = ephemeral.variables(environ)
    opened = ephemeral.opened_at(environ)
    check_output_directory(outdir, protected=(environments_dir, ROOT))
    selected = select(load_catalog(environments_dir, ROOT), names, branch, created, opened)
    if not selected:
        raise ConfigError([f"{_display(environments_dir).as_posix()}: nothing to synthesize (only the "
                           f"{EPHEMERAL_TEMPLATE} template, and {ephemeral.BRANCH_VARIABLE} is not set); "
                           f"{_display(outdir).as_posix()} was left as it was"])
    return selected


def config_error_report(error: ConfigError) -> str:
    """What `main` prints for a configuration error: one paragraph, a line per problem."""
    return (f"Configuration error ({len(error.problems)} problem(s)); nothing was synthesized:\n"
            + "\n".join(error.problems))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="main.py", description=__doc__.splitlines()[0])
    parser.add_argument("environments", nargs="*", help="environment names (default: all but the ephemeral template)")
    parser.add_argument("--environments-dir", type=Path, default=DEFAULT_ENVIRONMENTS_DIR)
    parser.add_argument("--outdir", type=Path, default=Path(os.environ.get("CDKTF_OUTDIR", "cdktf.out")))
    parser.add_argument("--quiet", action="store_true", help="no summary table")
    args = parser.parse_args(argv)

    try:
        selected = load_selection(args.environments_dir, args.outdir, args.environments, os.environ)
        try:
            synthesize(selected, args.outdir)
        finally:
            release_jsii_runtime()
    except ConfigError as error:
        print(config_error_report(error), file=sys.stderr)
        return 2
    except SynthError as error:
        print(f"Synthesis failed; {_display(args.outdir)} was left as it was: {error}", file=sys.stderr)
        return 1
    if not args.quiet:
        print_summary(selected, _display(args.outdir))
    return 0
