"""The plan-review commands of `obiam`: plan-summary, synth-diff, diagram.

Exit codes: 0 done, 3 with --strict when a stateful resource would be destroyed or
replaced (or, for plans, a check failed), 4 with --strict when a plan errored or is
incomplete (it is not the change), 2 the input cannot be read (one line saying why, never a
traceback).
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

from obiam.review import diagram, plan_render, plan_summary, synth_diff
from obiam.review.stateful import StatefulPolicy

STRICT_FINDINGS = 3
NOT_THE_CHANGE = 4


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


class PlanFormat(StrEnum):
    markdown = "markdown"
    text = "text"
    json = "json"


def _plan_argument(argument: str) -> tuple[str, Path]:
    """`STACK=PATH` or `PATH` (named after the file: plan-prod.json and prod/plan.json are `prod`)."""
    name, sep, path = argument.partition("=")
    if sep and name and "/" not in name:
        return name, Path(path)
    file = Path(argument)
    stem = file.stem.removeprefix("plan-").removeprefix("plan_")
    return (file.parent.name or stem) if stem in ("plan", "") else stem, file


def plan_summary_command(
        plans: Annotated[list[str], typer.Argument(help="outputs of `terraform show -json`, each PATH or STACK=PATH")],
        *,
        format: Annotated[PlanFormat, typer.Option(help="markdown for PR comments, text for terminals, json for "
                                                        "machines")] = PlanFormat.markdown,
        strict: Annotated[bool, typer.Option(help=f"exit {STRICT_FINDINGS} when a stateful resource would be destroyed "
                                                  f"or replaced or a check failed, {NOT_THE_CHANGE} when a plan "
                                                  "errored or is incomplete")] = False,
        title: Annotated[str, typer.Option(help="heading of the summary")] = "Terraform plan",
        stateful: Annotated[list[str] | None, typer.Option(help="also treat this resource type (fnmatch pattern) as "
                                                               "holding data; repeatable")] = None,
        stateless: Annotated[list[str] | None, typer.Option(help="do not treat this resource type (fnmatch pattern) "
                                                                "as holding data; repeatable")] = None,
        max_chars: Annotated[int, typer.Option(min=1_000, help="Markdown budget (GitHub refuses comments over "
                                                               "65,536 characters)")] = plan_render.DEFAULT_BUDGET,
        artifact: Annotated[str, typer.Option(help="where the whole summary is when the comment is cut")]
        = "the full summary is in the plan artifact of this run") -> None:
    """Summarize Terraform JSON plans for review, one section per stack, what can lose data first."""
    policy = StatefulPolicy(extra=tuple(stateful or ()), exempt=tuple(stateless or ()))
    summaries = []
    for argument in plans:
        name, path = _plan_argument(argument)
        try:
            summaries.append(plan_summary.summarize(plan_summary.load_plan(path), name=name, policy=policy))
        except plan_summary.PlanError as error:
            raise _fail(str(error)) from None
    if format is PlanFormat.markdown:
        sys.stdout.write(plan_render.render_markdown(summaries, title, limit=max_chars, pointer=artifact))
    elif format is PlanFormat.text:
        sys.stdout.write(plan_render.render_text(summaries, title))
    else:
        sys.stdout.write(plan_render.as_json(summaries))
    if strict and any(s.not_the_change for s in summaries):
        raise typer.Exit(NOT_THE_CHANGE)
    raise typer.Exit(STRICT_FINDINGS if strict and any(s.findings for s in summaries) else 0)


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
