"""The plan-review commands of `obiam`: plan-summary, synth-diff, diagram.

Exit codes: 0 done, 3 with --strict when a stateful resource would be destroyed or
replaced, 2 the input cannot be read (one line saying why, never a traceback).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from obiam.review import diagram, plan_summary, synth_diff

STRICT_FINDINGS = 3


class Format(StrEnum):
    markdown = "markdown"
    text = "text"


class DiagramFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"
    svg = "svg"


FormatOption = Annotated[Format, typer.Option(help="markdown for PR comments, text for terminals")]
StrictOption = Annotated[bool, typer.Option(help=f"exit {STRICT_FINDINGS} when a stateful resource would be "
                                                 "destroyed or replaced")]


def _fail(message: str) -> typer.Exit:
    print(f"obiam: {message}", file=sys.stderr)
    return typer.Exit(2)


def plan_summary_command(plan_json: Annotated[Path, typer.Argument(help="output of `terraform show -json`")],
                         format: FormatOption = Format.markdown, strict: StrictOption = False,
                         title: Annotated[str, typer.Option(help="heading of the summary")] = "Terraform plan"
                         ) -> None:
    """Summarize a Terraform JSON plan for review, stateful deletions and replacements first."""
    try:
        summary = plan_summary.summarize(plan_summary.load_plan(plan_json))
    except plan_summary.PlanError as error:
        raise _fail(str(error)) from None
    render = plan_summary.render_markdown if format is Format.markdown else plan_summary.render_text
    sys.stdout.write(render(summary, title))
    raise typer.Exit(STRICT_FINDINGS if strict and summary.dangerous else 0)


def synth_diff_command(base_dir: Annotated[Path, typer.Argument(help="cdktf.out of the base branch")],
                       head_dir: Annotated[Path, typer.Argument(help="cdktf.out of the change")],
                       format: FormatOption = Format.markdown, strict: StrictOption = False) -> None:
    """Compare two synthesized trees offline: resources added, removed and changed per stack."""
    try:
        diffs = synth_diff.diff_trees(synth_diff.load_tree(base_dir), synth_diff.load_tree(head_dir))
    except synth_diff.SynthDiffError as error:
        raise _fail(str(error)) from None
    render = synth_diff.render_markdown if format is Format.markdown else synth_diff.render_text
    sys.stdout.write(render(diffs))
    raise typer.Exit(STRICT_FINDINGS if strict and any(d.dangerous for d in diffs) else 0)


def diagram_command(env: Annotated[str, typer.Option("--env", help="stack to draw")] = "prod",
                    outdir: Annotated[Path, typer.Option(help="the cdktf.out tree")] = Path("cdktf.out"),
                    format: Annotated[DiagramFormat, typer.Option(help="mermaid, dot, or svg (needs graphviz)")]
                    = DiagramFormat.mermaid,
                    output: Annotated[Path | None, typer.Option(help="write here instead of stdout")] = None) -> None:
    """Draw the synthesized deployment (run `make synth` first)."""
    path = outdir / "stacks" / env / "cdk.tf.json"
    try:
        stack = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(f"{path} not found: run `make synth` first (diagram reads the synthesized stack)") from None
    except (OSError, json.JSONDecodeError) as error:
        raise _fail(f"{path}: not a synthesized stack: {error}") from None
    deployment = diagram.model(stack)
    if format is DiagramFormat.mermaid:
        text = diagram.render_mermaid(deployment)
    elif format is DiagramFormat.dot:
        text = diagram.render_dot(deployment)
    else:
        dot = shutil.which("dot")
        if dot is None:
            raise _fail("SVG needs Graphviz's `dot` (Debian: apt-get install graphviz); "
                        "--format mermaid needs nothing")
        text = subprocess.run([dot, "-Tsvg"], input=diagram.render_dot(deployment), capture_output=True,
                              text=True, check=True).stdout
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def register(app: typer.Typer) -> None:
    app.command("plan-summary")(plan_summary_command)
    app.command("synth-diff")(synth_diff_command)
    app.command("diagram")(diagram_command)
