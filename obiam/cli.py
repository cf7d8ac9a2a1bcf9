"""`obiam`: the commands a platform team runs around `cdktf deploy` (README, Operations).

Each command group lives in its own module and registers itself here. No command
imports cdktf or the provider bindings: operations start in well under a second.
"""

from __future__ import annotations

from typing import Annotated

import typer

from obiam import ci_policy, ephemeral, plan_artifact
from obiam.ops.cli import register as register_operations
from obiam.review.cli import register as register_review

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Operations for WSO2 Open Banking IAM on AWS.")
ephemeral_app = typer.Typer(no_args_is_help=True, help="Per-branch test environments.")
app.add_typer(ephemeral_app, name="ephemeral")


@ephemeral_app.command("name")
def ephemeral_name(branch: Annotated[str, typer.Option(help="branch or PR ref, e.g. feature/login or pr-42")]) -> None:
    """Print the stable, valid stack name for a branch or PR."""
    try:
        typer.echo(ephemeral.stack_name(branch))
    except ValueError as error:
        typer.echo(f"obiam ephemeral name: {error}", err=True)
        raise typer.Exit(2) from None


register_operations(app)
register_review(app)
app.add_typer(plan_artifact.app, name="plan-artifact")
app.command("ci-policy")(ci_policy.ci_policy_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
