"""The operations commands of `obiam`: bootstrap-state, preflight, verify, rollout, reap, pack build/verify/upload.

Exit codes: 0 everything passed (or was already in place), 1 a check or a destroy
failed, 2 the command could not run (bad config, credentials, permissions, endpoint).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import boto3
import typer

from obiam import ephemeral, node_config
from obiam.config import EphemeralConfig
from obiam.config_values import ENVIRONMENT_NAME
from obiam.environments import (
    EPHEMERAL_TEMPLATE,
    BranchBase,
    ConfigError,
    Deployable,
    Environment,
    load_environment,
    load_file,
)
from obiam.naming import Names
from obiam.ops import aws, leftovers, pack_s3, reap, restore
from obiam.ops.ami import latest_lines
from obiam.ops.output import Check, all_passed, print_checks
from obiam.ops.preflight import preflight, preflight_base
from obiam.ops.rollout import rollout
from obiam.ops.state_backend import ensure_state_backend
from obiam.ops.verify import verify, verify_base
from obiam.pack import PackError, file_sha256
from obiam.pack.build import build as build_pack
from obiam.pack.verify import verify_pack
from obiam.safe_yaml import show

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
    loaded = _deployable(name, branch, directory)
    if isinstance(loaded, BranchBase):
        raise ConfigError([f"{loaded.source}: is a branch base (kind: branch-base); this command works on an "
                           "environment's nodes, which a base has none of; allowed: an environment name"])
    return loaded


def _deployable(name: str, branch: str | None, directory: Path) -> Deployable:
    """An environment, a per-branch environment (--branch) or a branch base, by name."""
    if branch:
        template = load_environment(directory / f"{EPHEMERAL_TEMPLATE}.yaml", Path.cwd())
        return ephemeral.from_template(template, branch, reap.now())
    if name.startswith("eph-"):
        raise ConfigError([f"{name} is a per-branch environment: pass --branch <branch> instead of --env"])
    if not ENVIRONMENT_NAME.match(name):
        # A name, never a path: `--env ../x` would read a file outside the environments directory.
        raise ConfigError([f"--env {show(name)}: allowed: an environment name (2-20 lower-case letters, digits and "
                           f"-, starting with a letter), the stem of a file in {directory}"])
    return load_file(directory / f"{name}.yaml", Path.cwd())


def _in_account(env: str, branch: str | None, region: str | None,
                directory: Path) -> tuple[Environment, boto3.session.Session, str, str]:
    """The environment, a session for its region, the region, and the account, once the credentials
    are known to be the environment's own (account.id)."""
    environment = _environment(env, branch, directory)
    where = region or environment.config.region
    session = aws.session(where)
    account = aws.require_account(session, environment.config.account.id, environment.source)
    return environment, session, where, account


def _report(title: str, checks: list[Check], as_json: bool) -> int:
    print_checks(title, checks, as_json=as_json)
    return 0 if all_passed(checks) else 1


def bootstrap_state(env: EnvOption = "prod", region: RegionOption = None,
                    environments_dir: DirOption = Path("environments")) -> None:
    """Create the remote-state bucket (and DynamoDB lock table) idempotently."""
    def body() -> int:
        environment = _deployable(env, None, environments_dir)
        state_region = region or environment.config.state_region
        session = aws.session(state_region)
        aws.require_account(session, environment.config.account.id, environment.source)
        changes = ensure_state_backend(session, environment.config.state, state_region)
        target = f"s3://{environment.config.state.bucket} ({state_region})"
        if not changes:
            print(f"{target}: already in place, nothing changed")
        for change in changes:
            print(f"{target}: {change}")
        return 0
    _run(body)


def _checks_command(title: str, checks: Callable[[Any, Environment, str], list[Check]],
                    base_checks: Callable[[Any, BranchBase, str], list[Check]], *, env: str,
                    branch: str | None, region: str | None, environments_dir: Path, as_json: bool) -> None:
    """Runs `checks` on an environment, or `base_checks` on a branch base."""
    def body() -> int:
        loaded = _deployable(env, branch, environments_dir)
        where = region or loaded.config.region
        session = aws.session(where)
        account = aws.require_account(session, loaded.config.account.id, loaded.source)
        found = (base_checks(session, loaded, where) if isinstance(loaded, BranchBase)
                 else checks(session, loaded, where))
        return _report(f"{title} {loaded.name} (account {account}, {where})", found, as_json)
    _run(body)


def preflight_command(env: EnvOption = "prod", branch: BranchOption = None, region: RegionOption = None,
                      environments_dir: DirOption = Path("environments"), as_json: JsonOption = False) -> None:
    """Check the target account is ready for the environment (run before a deploy)."""
    _checks_command("preflight", preflight, preflight_base, env=env, branch=branch, region=region,
                    environments_dir=environments_dir, as_json=as_json)


def verify_command(env: EnvOption = "prod", branch: BranchOption = None, region: RegionOption = None,
                   environments_dir: DirOption = Path("environments"), as_json: JsonOption = False) -> None:
    """Check the deployed environment keeps WSO2's HA invariants (run after a deploy)."""
    _checks_command("verify", verify, verify_base, env=env, branch=branch, region=region,
                    environments_dir=environments_dir, as_json=as_json)


ami_app = typer.Typer(no_args_is_help=True, help="The node image: find the newest, change the pin on purpose.")


@ami_app.command("latest")
def ami_latest_command(env: EnvOption = "prod", branch: BranchOption = None, region: RegionOption = None,
                       environments_dir: DirOption = Path("environments")) -> None:
    """Print the pinned and the newest node image, and the config line that moves to the newest."""
    def body() -> int:
        environment, session, where, _ = _in_account(env, branch, region, environments_dir)
        for line in latest_lines(aws.client(session, "ssm", where), aws.client(session, "ec2", where), environment):
            print(line)
        return 0
    _run(body)


def rollout_command(
        *, env: EnvOption = "prod", branch: BranchOption = None, region: RegionOption = None,
        environments_dir: DirOption = Path("environments"),
        version: Annotated[int | None, typer.Option(help="the launch template version to run (default: the "
                                                         "template's default, which every deploy sets to its newest); "
                                                         "an earlier one rolls back")] = None,
        wait: Annotated[bool, typer.Option(help="wait for the instance refresh to end and report how")] = True) -> None:
    """Move the nodes onto a launch template version with an instance refresh that rolls back on failure."""
    def body() -> int:
        environment, session, where, _ = _in_account(env, branch, region, environments_dir)
        result = rollout(aws.client(session, "autoscaling", where), aws.client(session, "ec2", where),
                         environment.name, environment.config, version=version, wait=wait,
                         log=lambda line: print(line, flush=True))
        for line in result.lines:
            print(line)
        return 0 if result.succeeded else 1
    _run(body)


def reap_command(
        *, apply: Annotated[bool, typer.Option("--apply", help="destroy what is past its deadline (without it: only "
                                                            "print what would be destroyed)")] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="only print what would be destroyed (the default)")]
        = False,
        notify_topic_arn: Annotated[str | None, typer.Option(help="an SNS topic to tell what is about to be "
                                                                  "destroyed, before anything is")] = None,
        drop_leftovers: Annotated[bool, typer.Option(
            "--drop-leftovers", help="with --apply: also drop the databases and users on the branch base that no "
                                     "live branch owns (reported on every run; never dropped without this)")] = False,
        as_json: JsonOption = False, region: RegionOption = None,
        environments_dir: DirOption = Path("environments")) -> None:
    """Destroy per-branch environments past their deadline (ExpiresAt, or a capped obiam:keep-until)."""
    def body() -> int:
        if apply and dry_run:
            raise ValueError("--apply and --dry-run: choose one")
        if drop_leftovers and not apply:
            raise ValueError("--drop-leftovers drops databases: it needs --apply")
        template = load_environment(environments_dir / f"{EPHEMERAL_TEMPLATE}.yaml", Path.cwd())
        settings = template.config.ephemeral or EphemeralConfig()
        where = region or template.config.region
        session = aws.session(where)
        account = aws.require_account(session, template.config.account.id, template.source)
        found = reap.find_ephemeral_environments(session, where)
        decisions = reap.decide(found, reap.now(), ttl_hours=settings.ttl_hours,
                                max_keep_hours=settings.max_keep_hours)
        doomed = [d for d in decisions if d.destroy]
        base_function = (Names(template.base.name).branch_databases_function if template.base is not None else None)
        lambda_client = aws.client(session, "lambda", where)
        inventory = (aws.lookup(lambda: leftovers.invoke(lambda_client, base_function, {"inventory": True}),
                                missing={"ResourceNotFoundException"}) if base_function else None)
        left = leftovers.find(inventory, [e.name for e in found]) if inventory is not None else []
        dropping = left if drop_leftovers else []
        if (doomed or dropping) and apply and notify_topic_arn:
            aws.client(session, "sns", where).publish(
                TopicArn=notify_topic_arn, Subject="obiam reap: per-branch environments to be destroyed",
                Message=reap.notice(decisions, account, where, [x.environment for x in dropping]))
        failures = sum(1 for d in doomed if d.problem)
        if not as_json:
            _print_reap_plan(decisions, account, where, apply=apply, dropping=[x.environment for x in dropping],
                             leftover_lines=_leftover_lines(left, template.base.name if template.base else None,
                                                            dropping=bool(dropping), checked=inventory is not None))
        for leftover in dropping:
            assert base_function is not None
            secret = f"arn:aws:secretsmanager:{where}:{account}:secret:{Names(leftover.environment).wso2_db_secret}"
            leftovers.invoke(lambda_client, base_function, leftovers.drop_event(leftover, secret))
        for decision in doomed if apply else ():
            if decision.command is None or decision.variables is None:
                continue
            if reap.run_command(decision.command, decision.variables) != 0:
                failures += 1
                print(f"obiam: destroying {decision.environment.name} failed; it stays tagged and the next run "
                      "retries", file=sys.stderr)
        if as_json:
            print(json.dumps({"account": account, "region": where, "applied": apply,
                              "environments": [d.as_json() for d in decisions],
                              "leftovers_checked": inventory is not None, "leftovers": [x.as_json() for x in left],
                              "leftovers_dropped": bool(dropping)},
                             indent=2))
        return 1 if failures else 0
    _run(body)


def _leftover_lines(left: list[leftovers.Leftover], base: str | None, *, dropping: bool,
                    checked: bool) -> list[str]:
    if base is None:
        return []
    if not checked:
        return [f"no leftovers checked: {base}'s branch-databases function is not deployed"]
    if not left:
        return [f"no leftovers on {base}: every eph_ database and user on its server belongs to a live branch"]
    verb = "dropping" if dropping else "left behind (drop with --apply --drop-leftovers, after reading this)"
    return [f"leftover {leftover.environment} on {base}, {verb}: user {leftover.scope if leftover.user else '(none)'},"
            f" databases {', '.join(leftover.databases) or '(none)'}" for leftover in left]


def _print_reap_plan(decisions: list[reap.Decision], account: str, region: str, *, apply: bool,
                     dropping: list[str], leftover_lines: list[str]) -> None:
    if any(d.destroy for d in decisions) or dropping:
        print(reap.notice(decisions, account, region, dropping), flush=True)
    if not decisions:
        print(f"no per-branch environments in account {account}, {region}")
    for decision in decisions:
        environment, deadline = decision.environment, decision.deadline
        when = deadline.strftime("%Y-%m-%dT%H:%M:%SZ") if deadline else "no readable ExpiresAt"
        kept = " (kept by obiam:keep-until)" if environment.keep_until and deadline and environment.expires_at \
            and deadline > environment.expires_at else ""
        if not decision.destroy:
            print(f"keep     {environment.name} (branch {environment.branch}, until {when}{kept})")
        elif decision.problem:
            print(f"expired  {environment.name} ({when}): {decision.problem}")
        else:
            shown = " ".join([*(f"{k}={v}" for k, v in (decision.variables or {}).items()), *(decision.command or [])])
            print(f"destroy  {environment.name} (expired {when}): {shown}" if apply
                  else f"expired  {environment.name} (expired {when}); would run: {shown}", flush=True)
    for line in leftover_lines:
        print(line)
    if not apply and any(d.destroy for d in decisions):
        print("dry run: nothing was destroyed; run with --apply to destroy")


def keep_command(
        branch: Annotated[str, typer.Option(help="the per-branch environment's branch")],
        hours: Annotated[int, typer.Option(min=1, help="keep it this many hours from now")],
        region: RegionOption = None, environments_dir: DirOption = Path("environments")) -> None:
    """Keep a per-branch environment past its ExpiresAt (at most ephemeral.max_keep_hours past it)."""
    def body() -> int:
        template = load_environment(environments_dir / f"{EPHEMERAL_TEMPLATE}.yaml", Path.cwd())
        settings = template.config.ephemeral or EphemeralConfig()
        where = region or template.config.region
        session = aws.session(where)
        aws.require_account(session, template.config.account.id, template.source)
        name = ephemeral.stack_name(branch)
        found = {e.name: e for e in reap.find_ephemeral_environments(session, where)}
        if name not in found:
            raise ValueError(f"no per-branch environment {name} (branch {branch}) in {where}")
        until = reap.now() + timedelta(hours=hours)
        reap.keep(session, where, found[name], until, settings.max_keep_hours)
        print(f"{name}: kept until {until:%Y-%m-%dT%H:%M:%SZ} (obiam:keep-until)")
        return 0
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


ToEnvOption = Annotated[str, typer.Option("--to-env", help="the fresh environment to restore into "
                                                         "(environments/<name>.yaml; never the source)")]
PointInTimeOption = Annotated[str | None, typer.Option(
    "--point-in-time", help="restore the data as it was at this time (ISO 8601 with a zone, e.g. "
                            "2026-03-01T09:30:00Z; default: the latest restorable)")]
SubnetGroupOption = Annotated[str | None, typer.Option(
    "--db-subnet-group", help="DB subnet group for the restored database (default: the target stack's, "
                              "obiam-<to-env>-db, deployed first; see README, Restore)")]


def _point_in_time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--point-in-time {value!r}: allowed: an ISO 8601 time with a zone, e.g. "
                         "2026-03-01T09:30:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"--point-in-time {value!r}: give the zone (e.g. a trailing Z for UTC): backup times are UTC")
    return moment.astimezone(dt.UTC)


def _start_restore(env: str, to_env: str, point_in_time: str | None, db_subnet_group: str | None,
                   environments_dir: Path) -> tuple[Any, restore.Plan, restore.Started]:
    moment = _point_in_time(point_in_time)
    source = _environment(env, None, environments_dir)
    target = _environment(to_env, None, environments_dir)
    if source.config.account.id != target.config.account.id:
        raise ValueError(f"{target.source}: account {target.config.account.id} is not {source.name}'s "
                         f"({source.config.account.id}); a restore reads the source's own vaults in its account "
                         "(restoring from the second account's vault is a step of the runbook, README)")
    session = aws.session(target.config.region)
    aws.require_account(session, target.config.account.id, target.source)
    plan = restore.plan_restore(session, source, target, moment)
    for line in plan.describe():
        print(f"restore {line}")
    subnet_group = db_subnet_group or Names(target.name).db_instance
    started = restore.start_restore(session, plan, db_subnet_group=subnet_group)
    print(f"started: database {started.database_identifier}, file-system restore job {started.restore_job_id}")
    return session, plan, started


def restore_command(*, to_env: ToEnvOption, env: EnvOption = "prod", point_in_time: PointInTimeOption = None,
                    db_subnet_group: SubnetGroupOption = None,
                    environments_dir: DirOption = Path("environments")) -> None:
    """Restore the database and artifact file system of --env into the fresh environment --to-env."""
    def body() -> int:
        _start_restore(env, to_env, point_in_time, db_subnet_group, environments_dir)
        print(f"then: deploy {to_env} around them (README, Restore) and run obiam verify --env {to_env}")
        return 0
    _run(body)


def restore_test_command(
        *, to_env: ToEnvOption, env: EnvOption = "prod", point_in_time: PointInTimeOption = None,
        db_subnet_group: SubnetGroupOption = None, environments_dir: DirOption = Path("environments"),
        timeout_minutes: Annotated[int, typer.Option(help="how long to wait for the restores")] = 180,
        as_json: JsonOption = False) -> None:
    """Rehearse a restore end to end: restore --env into --to-env, wait, deploy --to-env, then verify it."""
    def body() -> int:
        started_at = time.monotonic()
        session, plan, started = _start_restore(env, to_env, point_in_time, db_subnet_group, environments_dir)
        problems = restore.wait_for_restore(session, plan, started, timeout_seconds=timeout_minutes * 60)
        restored_after = time.monotonic() - started_at
        if problems:
            for problem in problems:
                print(f"obiam restore-test: {problem}", file=sys.stderr)
            return 1
        print(f"restored in {restored_after / 60:.1f} min; adopting and deploying {to_env}", flush=True)
        if reap.run_command(["npx", "cdktf", "synth"], {}) != 0:
            print("obiam restore-test: synthesizing failed", file=sys.stderr)
            return 1
        stack = json.loads((Path("cdktf.out") / "stacks" / to_env / "cdk.tf.json").read_text())
        adopt = restore.adoption_commands(to_env, stack, started.database_identifier,
                                          restore.restored_file_system_id(session, plan))
        for command in [*adopt, deploy_command(to_env)]:
            print(" ".join(command), flush=True)
            if reap.run_command(command, {}) != 0:
                print(f"obiam restore-test: `{' '.join(command)}` failed", file=sys.stderr)
                return 1
        checks = verify(session, plan.target, plan.region)
        elapsed = (time.monotonic() - started_at) / 60
        rto = plan.source.config.backup.rto_hours * 60
        checks.append(Check("recovery time", elapsed <= rto,
                            f"{elapsed:.1f} min from start to verified, objective {rto} min (backup.rto_hours)"))
        return _report(f"restore-test {env} -> {to_env} ({plan.region})", checks, as_json)
    _run(body)


def deploy_command(environment: str) -> list[str]:
    return ["npx", "cdktf", "deploy", environment, "--auto-approve"]


pack_app = typer.Typer(no_args_is_help=True, help="The OB IAM product pack: build it from WSO2's downloads, "
                                                  "verify it, upload it where an environment expects it.")


def _pack_problems(command: str, error: PackError, *, wrote: bool = False) -> typer.Exit:
    shown = "\n".join(error.problems)
    print(f"obiam pack {command}: {len(error.problems)} problem(s)"
          + ("" if wrote else "; nothing was written") + f":\n{shown}", file=sys.stderr)
    return typer.Exit(2)


@pack_app.command("build")
def pack_build_command(
        *, identity_server: Annotated[Path, typer.Option(help="WSO2 Identity Server 5.11.0 (wso2is-5.11.0.zip), "
                                                           "with WSO2 updates applied if you have them")],
        accelerator: Annotated[Path, typer.Option(help="the OB IS accelerator 3.0.0 "
                                                       "(wso2-obiam-accelerator-3.0.0.zip)")],
        extensions: Annotated[Path, typer.Option(help="the IS Connector for API Manager 4.0 "
                                                      "(wso2is-extensions-1.2.10.zip)")],
        api_manager: Annotated[Path, typer.Option(help="WSO2 API Manager 4.0.0 (wso2am-4.0.0.zip): only its "
                                                       "dbscripts are taken")],
        jdbc_driver: Annotated[list[Path], typer.Option(help="the JDBC driver jar of the database engine "
                                                             "(repeat for more engines)")],
        output: Annotated[Path, typer.Option(help="the pack to write, e.g. wso2-obiam-3.0.0.zip; its manifest "
                                                  "goes beside it (<name>.manifest.json)")],
        version: Annotated[str, typer.Option(help="OB IAM version (product.version)")] = "3.0.0") -> None:
    """Merge WSO2's downloads into one reproducible pack, as the accelerator's merge.sh would, with a manifest."""
    from obiam import pack

    if version not in pack.DISTRIBUTIONS:
        raise _fail(f"--version {version}: allowed: {', '.join(pack.DISTRIBUTIONS)}")
    try:
        built = build_pack(version=version, identity_server=identity_server, accelerator=accelerator,
                           extensions=extensions, api_manager=api_manager, drivers=jdbc_driver, output=output)
    except PackError as error:
        raise _pack_problems("build", error) from None
    except OSError as error:
        raise _fail(f"pack build: {error}") from None
    components = built.manifest["components"]
    assert isinstance(components, list)
    for component in components:
        print(f"  {component['component']:<22} {component.get('directory') or component.get('file')}"
              + (f" (update level {component['update_level']})" if component.get("update_level") else ""))
    print(f"{built.path} ({built.size} bytes), manifest {built.manifest_path}")
    print(f"sha256 {built.sha256}")


@pack_app.command("verify")
def pack_verify_command(
        pack_path: Annotated[Path, typer.Argument(metavar="PACK", help="the pack zip")],
        engine: Annotated[str | None, typer.Option(help="the environment's database.engine: its scripts and "
                                                        "driver (default: scripts of every engine, any driver)")]
        = None,
        manifest: Annotated[Path | None, typer.Option(help="the manifest written beside the pack "
                                                           "(default: <name>.manifest.json next to it)")] = None,
        as_json: JsonOption = False) -> None:
    """Check a pack holds everything the nodes' boot relies on and matches its manifest."""
    try:
        checks = verify_pack(pack_path, engine=engine, manifest_path=manifest)
    except PackError as error:
        raise _pack_problems("verify", error, wrote=True) from None
    raise typer.Exit(_report(f"pack verify {pack_path}", checks, as_json))


@pack_app.command("upload")
def pack_upload_command(
        pack_path: Annotated[Path, typer.Argument(metavar="PACK", help="the pack zip `obiam pack build` wrote")],
        *, env: EnvOption = "prod", branch: BranchOption = None, region: RegionOption = None,
        environments_dir: DirOption = Path("environments"),
        replace: Annotated[bool, typer.Option("--replace", help="overwrite another pack at product.pack_s3_uri "
                                                                 "(nodes pinned to it would refuse the new one)")]
        = False) -> None:
    """Verify the pack, put it at the environment's product.pack_s3_uri, and print the lines to pin it."""
    def body() -> int:
        environment = _environment(env, branch, environments_dir)
        product = environment.config.product
        try:
            checks = verify_pack(pack_path, engine=environment.config.database.engine, version=product.version)
        except PackError as error:
            raise _pack_problems("upload", error, wrote=True) from None
        if not all_passed(checks):
            print_checks(f"pack verify {pack_path} (for {environment.name})", checks)
            print(f"obiam pack upload: {pack_path} is not uploaded: it fails the checks above", file=sys.stderr)
            return 1
        sha256 = file_sha256(pack_path)
        where = region or environment.config.region
        done = pack_s3.upload_pack(aws.client(aws.session(where), "s3", where), pack_path, product.pack_s3_uri,
                                   sha256, replace=replace)
        print(f"{done.uri}: " + (f"uploaded {done.size} bytes, S3 checked SHA-256 {done.sha256} on receipt; "
                                 f"encrypted with {done.encryption}" if done.uploaded
                                 else f"already holds this pack (SHA-256 {done.sha256}); nothing uploaded"))
        if product.pack_sha256 == sha256:
            print(f"{environment.source}: already pins this pack")
        else:
            print(f"Pin it in {environment.source} (then deploy; the nodes roll onto the new user data):")
            print(f"product:\n  pack_s3_uri: {product.pack_s3_uri}\n  pack_sha256: {sha256}")
        return 0
    _run(body)


def register(app: typer.Typer) -> None:
    app.add_typer(pack_app, name="pack")
    app.add_typer(ami_app, name="ami")
    app.command("node-config")(node_config_command)
    app.command("bootstrap-state")(bootstrap_state)
    app.command("preflight")(preflight_command)
    app.command("verify")(verify_command)
    app.command("rollout")(rollout_command)
    app.command("reap")(reap_command)
    app.command("keep")(keep_command)
    app.command("restore")(restore_command)
    app.command("restore-test")(restore_test_command)
