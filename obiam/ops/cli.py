"""The operations commands of `obiam`: bootstrap-state, preflight, verify, reap.

Exit codes: 0 everything passed (or was already in place), 1 a check or a destroy
failed, 2 the command could not run (bad config, credentials, permissions, endpoint).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from obiam import ephemeral, node_config
from obiam.environments import EPHEMERAL_TEMPLATE, ConfigError, Environment, load_environment
from obiam.ops import aws, reap
from obiam.ops.output import Check, all_passed, print_checks
from obiam.ops.preflight import preflight
from obiam.ops.state_backend import ensure_state_backend
from obiam.ops.verify import verify

EnvOption = Annotated[str, typer.Option("--env", help="environment name (environments/<name>.yaml)")]
BranchOption = Annotated[str | None, typer.Option(help="for a per-branch environment: its branch (uses "
                                                       "environments/ephemeral.yaml; then --env is ignored)")]
RegionOption = Annotated[str | None, typer.Option(help="AWS region (default: the environment's region)")]
DirOption = Annotated[Path, typer.Option(help="where the environment files are")]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _fail(message: str) -> typer.Exit:
    print(f"obiam: {message}", file=sys.stderr)
    return typer.Exit(2)


def _run(body: Callable[[], int]) -> None:
    try:
        with aws.translated_errors():
            code = body()
    except ConfigError as error:
        raise _fail("configuration error:\n" + str(error)) from None
    except (aws.OpsError, ValueError) as error:
        raise _fail(str(error)) from None
    raise typer.Exit(code)


def _environment(name: str, branch: str | None, directory: Path) -> Environment:
    if branch:
        template = load_environment(directory / f"{EPHEMERAL_TEMPLATE}.yaml", Path.cwd())
        return ephemeral.from_template(template, branch, reap.now())
    if name.startswith("eph-"):
        raise ConfigError([f"{name} is a per-branch environment: pass --branch <branch> instead of --env"])
    return load_environment(directory / f"{name}.yaml", Path.cwd())


def _report(title: str, checks: list[Check], as_json: bool) -> int:
    print_checks(title, checks, as_json=as_json)
    return 0 if all_passed(checks) else 1


def bootstrap_state(env: EnvOption = "prod", region: RegionOption = None,
                    environments_dir: DirOption = Path("environments")) -> None:
    """Create the remote-state bucket (and DynamoDB lock table) idempotently."""
    def body() -> int:
        environment = _environment(env, None, environments_dir)
        state_region = region or environment.config.state_region
        changes = ensure_state_backend(aws.session(state_region), environment.config.state, state_region)
        target = f"s3://{environment.config.state.bucket} ({state_region})"
        if not changes:
            print(f"{target}: already in place, nothing changed")
        for change in changes:
            print(f"{target}: {change}")
        return 0
    _run(body)


def _checks_command(title: str, checks: Callable[[Any, Environment, str], list[Check]], *, env: str,
                    branch: str | None, region: str | None, environments_dir: Path, as_json: bool) -> None:
    def body() -> int:
        environment = _environment(env, branch, environments_dir)
        where = region or environment.config.region
        return _report(f"{title} {environment.name} ({where})", checks(aws.session(where), environment, where),
                       as_json)
    _run(body)


def preflight_command(env: EnvOption = "prod", branch: BranchOption = None, region: RegionOption = None,
                      environments_dir: DirOption = Path("environments"), as_json: JsonOption = False) -> None:
    """Check the target account is ready for the environment (run before a deploy)."""
    _checks_command("preflight", preflight, env=env, branch=branch, region=region,
                    environments_dir=environments_dir, as_json=as_json)


def verify_command(env: EnvOption = "prod", branch: BranchOption = None, region: RegionOption = None,
                   environments_dir: DirOption = Path("environments"), as_json: JsonOption = False) -> None:
    """Check the deployed environment keeps WSO2's HA invariants (run after a deploy)."""
    _checks_command("verify", verify, env=env, branch=branch, region=region,
                    environments_dir=environments_dir, as_json=as_json)


def reap_command(dry_run: Annotated[bool, typer.Option("--dry-run", help="only print what would be destroyed")]
                 = False, region: RegionOption = None,
                 environments_dir: DirOption = Path("environments")) -> None:
    """Destroy per-branch environments whose ExpiresAt has passed."""
    def body() -> int:
        template = load_environment(environments_dir / f"{EPHEMERAL_TEMPLATE}.yaml", Path.cwd())
        where = region or template.config.region
        ttl = template.config.ephemeral.ttl_hours if template.config.ephemeral else 72
        found = reap.find_ephemeral_environments(aws.session(where), where)
        moment, failures = reap.now(), 0
        if not found:
            print(f"no per-branch environments in {where}")
        for environment in found:
            expiry = environment.expires_at.isoformat() if environment.expires_at else "no ExpiresAt tag"
            if not environment.expired(moment):
                print(f"keep     {environment.name} (branch {environment.branch}, expires {expiry})")
                continue
            command, variables = reap.destroy_command(environment, ttl)
            shown = " ".join([*(f"{k}={v}" for k, v in variables.items()), *command])
            if dry_run:
                print(f"expired  {environment.name} (expired {expiry}); would run: {shown}")
                continue
            print(f"destroy  {environment.name} (expired {expiry}): {shown}", flush=True)
            if reap.run_command(command, variables) != 0:
                failures += 1
                print(f"obiam: destroying {environment.name} failed; it stays tagged and the next run retries",
                      file=sys.stderr)
        return 1 if failures else 0
    _run(body)


def node_config_command(
        output: Annotated[Path, typer.Option(help="directory to write the node's files into (replaced whole)")],
        env: EnvOption = "prod", branch: BranchOption = None, environments_dir: DirOption = Path("environments"),
        accelerator_toml: Annotated[Path | None, typer.Option(
            help="the OB accelerator's wso2is-5.11.0-deployment.toml from the pack: also write the merged "
                 "deployment.toml and check it against the WSO2 contract")] = None) -> None:
    """Write every file a node of the environment writes, with boot-time values as named placeholders."""
    def body() -> int:
        environment = _environment(env, branch, environments_dir)
        problems = node_config.write(environment, output, accelerator_toml, protected=(environments_dir, Path.cwd()))
        for problem in problems:
            print(f"obiam node-config: deployment.toml: {problem}", file=sys.stderr)
        print(f"{output}: the files a {environment.name} node writes"
              + ("" if accelerator_toml else " (deployment.toml needs --accelerator-toml)"))
        return 1 if problems else 0
    _run(body)


def register(app: typer.Typer) -> None:
    app.command("node-config")(node_config_command)
    app.command("bootstrap-state")(bootstrap_state)
    app.command("preflight")(preflight_command)
    app.command("verify")(verify_command)
    app.command("reap")(reap_command)
