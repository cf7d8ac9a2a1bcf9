"""The change pipeline: reviewed plan = applied plan, least-privilege CI roles, drift workflow.

The apply step of .github/workflows/deploy-stack.yml is run as written, by bash, with the real
`obiam` and test doubles for `terraform` and `aws` (neither can run here: no AWS account, no
Terraform binary); the doubles only move files and record what `terraform apply` was given.

Cost: ~4 s measured (three bash runs of the apply step, ~1.1 s each; the ci-policy tests reuse the
session synth).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from conftest import ROOT, Synth
from obiam import ci_policy, plan_artifact
from obiam.cli import app
from obiam.environments import load_environment, load_file

WORKFLOWS = ROOT / ".github" / "workflows"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def workflow(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def step(job: dict[str, Any], name_starts: str) -> str:
    (found,) = [s["run"] for s in job["steps"] if s.get("name", "").startswith(name_starts)]
    return str(found)


# --- plan-artifact seal / verify ------------------------------------------------------------------

@pytest.fixture
def sealed(tmp_path: Path) -> dict[str, Path]:
    files = {"plan": tmp_path / "plan.tfplan", "plan_json": tmp_path / "plan.json", "config": tmp_path / "cdk.tf.json",
             "state": tmp_path / "state.json", "manifest": tmp_path / "manifest.json"}
    files["plan"].write_bytes(b"PK\x03\x04 the binary plan")
    files["plan_json"].write_text('{"format_version": "1.2"}')
    files["config"].write_text('{"resource": {}}')
    files["state"].write_text(json.dumps({"version": 4, "serial": 41, "lineage": "1b2c-lineage"}))
    result = run("plan-artifact", "seal", "--stack", "prod", "--commit", COMMIT, "--plan", str(files["plan"]),
                 "--plan-json", str(files["plan_json"]), "--config", str(files["config"]), "--state",
                 str(files["state"]), "--output", str(files["manifest"]))
    assert result.exit_code == 0, result.output
    return files


def verify(files: dict[str, Path], **overrides: str) -> Any:
    args = {"manifest": str(files["manifest"]), "stack": "prod", "commit": COMMIT, "plan": str(files["plan"]),
            "config": str(files["config"]), "state": str(files["state"]), **overrides}
    return run("plan-artifact", "verify", *[x for k, v in args.items() for x in (f"--{k}", v)])


def test_the_reviewed_plan_against_its_state_is_accepted(sealed: dict[str, Path]) -> None:
    result = verify(sealed)
    assert result.exit_code == 0 and "applying the reviewed plan" in result.output


@pytest.mark.parametrize(("change", "reason"), [
    (lambda f: f["plan"].write_bytes(b"PK\x03\x04 another plan"), "is not the reviewed plan"),
    (lambda f: f["config"].write_text('{"resource": {"aws_s3_bucket": {}}}'), "the configuration changed"),
    (lambda f: f["state"].write_text(json.dumps({"serial": 42, "lineage": "1b2c-lineage"})),
     "the state changed since the plan (lineage 1b2c-lineage serial 42, planned against lineage 1b2c-lineage "
     "serial 41)"),
    (lambda f: f["state"].write_text(json.dumps({"serial": 41, "lineage": "another-state"})), "the state changed"),
])
def test_a_swapped_or_stale_plan_is_refused_with_one_clear_paragraph(sealed: dict[str, Path], change: Any,
                                                                     reason: str) -> None:
    """Terraform refuses a plan whose state moved on ("Saved plan is stale"); we refuse it first, and
    a swapped plan file or a changed configuration too, saying which and that nothing was applied."""
    change(sealed)
    result = verify(sealed)
    assert result.exit_code == 1
    assert reason in result.output and "Nothing was applied" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_another_commit_or_stack_is_refused(sealed: dict[str, Path]) -> None:
    assert "was made from commit" in verify(sealed, commit="f" * 40).output
    assert "the manifest is for stack 'prod', not 'staging'" in verify(sealed, stack="staging").output


def test_unreadable_inputs_are_one_line_and_exit_2(sealed: dict[str, Path], tmp_path: Path) -> None:
    sealed["manifest"].write_text("{}")
    result = verify(sealed)
    assert result.exit_code == 2 and "not a version-1 plan manifest" in result.output
    bad = run("plan-artifact", "seal", "--stack", "prod", "--commit", "main", "--plan", "x", "--plan-json", "x",
              "--config", "x", "--state", "x", "--output", str(tmp_path / "m.json"))
    assert bad.exit_code == 2 and "40-hex-digit commit" in bad.output and not (tmp_path / "m.json").exists()


# --- the apply step, run as the workflow runs it ------------------------------------------------------

TERRAFORM_DOUBLE = """#!/bin/bash
# terraform -chdir=DIR <command> ...: init does nothing, state pull prints $FAKE_STATE, apply is recorded.
case "$2" in
  init) ;;
  state) cat "$FAKE_STATE" ;;
  apply) echo "$*" >> "$FAKE_LOG" ;;
  *) echo "unexpected terraform $*" >&2; exit 1 ;;
esac
"""
AWS_DOUBLE = """#!/bin/bash
# aws s3 cp SRC DST: s3://bucket/key maps to $FAKE_S3/bucket/key.
[ "$1 $2" = "s3 cp" ] || { echo "unexpected aws $*" >&2; exit 1; }
src="${3/s3:\\/\\//$FAKE_S3/}"; dst="${4/s3:\\/\\//$FAKE_S3/}"
mkdir -p "$(dirname "$dst")" && cp "$src" "$dst"
"""


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, Any]:
    """A runner workspace after the plan job and the download: the artifact, the stored plan, a state."""
    ws = tmp_path / "ws"
    (ws / "cdktf.out" / "stacks" / "prod").mkdir(parents=True)
    (ws / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (ws / "environments").symlink_to(ROOT / "environments")
    config = ws / "cdktf.out" / "stacks" / "prod" / "cdk.tf.json"
    config.write_text('{"resource": {"aws_lb": {}}}')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("terraform", TERRAFORM_DOUBLE), ("aws", AWS_DOUBLE)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"serial": 7, "lineage": "abc"}))
    (ws / "reviewed").mkdir()
    plan = tmp_path / "planned.tfplan"
    plan.write_bytes(b"the plan the reviewers approved")
    (tmp_path / "plan.json").write_text("{}")
    manifest = plan_artifact.seal(stack="prod", commit=COMMIT, plan=plan, plan_json=tmp_path / "plan.json",
                                  config=config, state=state)
    (ws / "reviewed" / "manifest.json").write_text(json.dumps(manifest.__dict__))
    store = plan_artifact.plan_store(ROOT / "environments" / "prod.yaml").removeprefix("s3://")
    stored = tmp_path / "s3" / store / "99-1" / "plan.tfplan"
    stored.parent.mkdir(parents=True)
    shutil.copy(plan, stored)
    return {"ws": ws, "bin": bin_dir, "state": state, "stored": stored, "log": tmp_path / "apply.log",
            "s3": tmp_path / "s3"}


def run_apply_step(w: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    script = step(workflow("deploy-stack.yml")["jobs"]["apply"], "Verify the reviewed plan")
    env = {"PATH": f"{w['bin']}:/usr/bin:/bin", "STACK": "prod", "GITHUB_SHA": COMMIT, "GITHUB_RUN_ID": "99",
           "GITHUB_RUN_ATTEMPT": "1", "GITHUB_WORKSPACE": str(w["ws"]), "FAKE_STATE": str(w["state"]),
           "FAKE_LOG": str(w["log"]), "FAKE_S3": str(w["s3"]), "HOME": str(w["ws"])}
    # GitHub's `run:` shell for bash: bash --noprofile --norc -eo pipefail {0}
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=w["ws"], env=env,
                          capture_output=True, text=True, check=False)


def test_the_apply_step_applies_exactly_the_reviewed_file(workspace: dict[str, Any]) -> None:
    result = run_apply_step(workspace)
    assert result.returncode == 0, result.stderr
    (applied,) = workspace["log"].read_text().splitlines()
    assert applied.endswith(f"apply -input=false -no-color -lock=true {workspace['ws']}/reviewed/plan.tfplan")
    assert (workspace["ws"] / "reviewed" / "plan.tfplan").read_bytes() == b"the plan the reviewers approved"


def test_the_apply_step_refuses_a_plan_that_is_not_the_reviewed_one(workspace: dict[str, Any]) -> None:
    workspace["stored"].write_bytes(b"a plan nobody reviewed")
    result = run_apply_step(workspace)
    assert result.returncode == 1 and "is not the reviewed plan" in result.stderr
    assert not workspace["log"].exists(), "terraform apply must not run"


def test_the_apply_step_refuses_a_stale_plan(workspace: dict[str, Any]) -> None:
    workspace["state"].write_text(json.dumps({"serial": 8, "lineage": "abc"}))
    result = run_apply_step(workspace)
    assert result.returncode == 1 and "the state changed since the plan" in result.stderr
    assert not workspace["log"].exists()


def test_the_apply_job_never_plans_and_waits_for_its_environment() -> None:
    deploy = workflow("deploy.yml")
    assert [(j["with"]["stack"], j["with"]["deploy-environment"]) for n, j in deploy["jobs"].items() if "uses" in j] \
        == [("staging", "staging"), ("ephemeral-base", "ephemeral-base"), ("prod", "production")]
    # A branch base has servers and no nodes: its deploy rolls nothing, and verifies the servers.
    assert [j["with"].get("nodes", True) for j in deploy["jobs"].values() if "uses" in j] == [True, False, True]
    (roll,) = [s for s in workflow("deploy-stack.yml")["jobs"]["apply"]["steps"]
               if s.get("name", "").startswith("Roll the nodes")]
    assert roll["if"] == "inputs.nodes"
    stack = workflow("deploy-stack.yml")["jobs"]
    apply_scripts = " ".join(s.get("run", "") for s in stack["apply"]["steps"])
    assert "terraform plan" not in apply_scripts and " plan -" not in apply_scripts
    assert stack["apply"]["environment"] == "${{ inputs.deploy-environment }}" and stack["apply"]["needs"] == "plan"
    assert "vars.DEPLOY_ROLE_ARN" in json.dumps(stack["apply"]) and "vars.PLAN_ROLE_ARN" in json.dumps(stack["plan"])


def test_state_locking_stays_on_and_plans_never_go_into_artifacts() -> None:
    """Plan files and `show -json` hold the state's secret values in clear: only the masked summary
    and the manifest are uploaded (anyone who can read the repository can download an artifact)."""
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        assert "-lock=false" not in text, path.name
        for uploaded in (s["with"]["path"] for j in yaml.safe_load(text)["jobs"].values() for s in j.get("steps", [])
                         if "upload-artifact" in s.get("uses", "")):
            assert uploaded in ("reviewed/", "summary/"), f"{path.name} uploads {uploaded}"
    plan_step = step(workflow("deploy-stack.yml")["jobs"]["plan"], "Summarize")
    assert "rm reviewed/plan.json reviewed/plan.tfplan" in plan_step


def test_pr_code_gets_a_stacks_credentials_only_in_its_pr_plan_environment() -> None:
    plan = workflow("pr.yml")["jobs"]["plan"]
    assert plan["environment"] == "${{ matrix.environment }}"
    assert {(m["stack"], m["environment"]) for m in plan["strategy"]["matrix"]["include"]} == {
        ("prod", "production-pr-plan"), ("staging", "staging-pr-plan"), ("dev", "dev-pr-plan"),
        ("ephemeral-base", "ephemeral-base-pr-plan")}


def test_drift_plans_every_environment_and_keeps_one_issue_each() -> None:
    drift = workflow("drift.yml")
    job = drift["jobs"]["drift"]
    assert drift[True]["schedule"] and {m["stack"] for m in job["strategy"]["matrix"]["include"]} == {
        "prod", "staging", "dev", "ephemeral-base"}
    script = step(job, "Plan (-detailed-exitcode)")
    assert "-detailed-exitcode" in script and 'obiam verify --env "$STACK"' in script
    issues = step(job, "Open, update or close")
    assert 'title="Drift: $STACK"' in issues
    assert "gh issue close" in issues and "gh issue comment" in issues and "gh issue create" in issues
    assert job["permissions"] == {"contents": "read", "id-token": "write", "issues": "write"}


# --- ci-policy ---------------------------------------------------------------------------------------

def statements(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def actions(statement: dict[str, Any]) -> list[str]:
    value = statement.get("Action", [])
    return [value] if isinstance(value, str) else list(value)


@pytest.mark.synth
@pytest.mark.parametrize("env", ["prod", "staging", "dev", "ephemeral-base"])
def test_each_environment_has_a_read_only_plan_role_and_its_own_deploy_role(synth: Synth, env: str) -> None:
    environment = load_file(ROOT / "environments" / f"{env}.yaml", ROOT)
    roles = ci_policy.policies(environment, synth.stack(env), "bank/obiam")
    plan, deploy = roles[f"obiam-{env}-ci-plan"], roles[f"obiam-{env}-ci-deploy"]
    granted = [a for s in plan["policy"]["Statement"] if s["Effect"] == "Allow" for a in actions(s)]
    writes = [a for a in granted if not a.split(":")[1].startswith(("Describe", "List", "Get"))]
    # S3 backend ("Permissions Required"): the lock (a .tflock object, or a DynamoDB item) is written and
    # deleted while planning; the plan is kept beside the state. Nothing else is written.
    lockfile = environment.config.state.lock == "s3_lockfile"
    lock_writes = {"s3:DeleteObject", "s3:PutObject"} if lockfile else {"dynamodb:PutItem", "dynamodb:DeleteItem"}
    assert set(writes) == {"kms:Decrypt", "kms:GenerateDataKey", "s3:PutObject"} | lock_writes
    assert "s3:PutObject" in actions(statements(plan["policy"])["ReviewedPlans"])
    lock = statements(plan["policy"])["StateLock"]["Resource"]
    assert lock.endswith(f"/{env}/terraform.tfstate.tflock") if lockfile else ":table/" in lock
    no_secrets = statements(plan["policy"])["NoSecretsBeyondTheState"]
    assert no_secrets["Effect"] == "Deny" and no_secrets["NotResource"].endswith(f":secret:obiam/{env}/*")
    assert "s3:PutObject" not in json.dumps(statements(plan["policy"])["StateRead"])
    subjects = plan["trust"]["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    deploy_env = "production" if env == "prod" else env
    assert subjects == [f"repo:bank/obiam:environment:{deploy_env}-plan",
                        f"repo:bank/obiam:environment:{deploy_env}-pr-plan"]
    assert deploy["trust"]["Statement"][0]["Condition"]["StringEquals"][
        "token.actions.githubusercontent.com:sub"] == [f"repo:bank/obiam:environment:{deploy_env}"]
    assert statements(deploy["policy"])["PassOwnRolesOnly"]["Effect"] == "Deny"
    # The deploy role acts in the environment's region and, for its backup copies, the copy region only.
    regions = statements(deploy["policy"])["ManageTheStack"]["Condition"]["StringEquals"]["aws:RequestedRegion"]
    backup = getattr(environment.config, "backup", None)  # a branch base takes no backups
    assert regions == sorted({environment.config.region, (backup.copy_region if backup else None) or ""} - {""})
    # IAM quota: a managed policy is at most 6,144 characters, whitespace not counted.
    for role in (plan, deploy):
        assert len(json.dumps(role["policy"], separators=(",", ":"))) <= 6144


@pytest.mark.synth
def test_ci_policy_prints_both_roles(synth: Synth) -> None:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        result = run("ci-policy", "--env", "prod", "--outdir", str(synth.outdir), "--repository", "bank/obiam")
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0
    assert set(json.loads(result.output)) == {"obiam-prod-ci-plan", "obiam-prod-ci-deploy"}
    missing = run("ci-policy", "--env", "prod", "--outdir", "/nonexistent", "--environments-dir",
                  str(ROOT / "environments"))
    assert missing.exit_code == 2 and "run `make synth` first" in missing.output


def test_readme_lists_each_roles_policy_command() -> None:
    readme = (ROOT / "README.md").read_text()
    for needle in ("obiam ci-policy --env", "obiam-<env>-ci-plan", "obiam-<env>-ci-deploy", "production-pr-plan",
                   "obiam plan-artifact verify"):
        assert needle in readme


def test_a_branch_environment_is_checked_against_its_base_deployed_and_verified_and_destroyed_alone() -> None:
    """Issue #18: the ephemeral workflow creates, updates and destroys a branch environment on the
    shared base. Preflight stops a branch whose base is missing or full before anything is created;
    the destroy names the branch's stack only, so the base is never planned for destruction."""
    jobs = workflow("ephemeral.yml")["jobs"]
    names = [s.get("name", "") for s in jobs["deploy"]["steps"]]
    order = [names.index(n) for n in ("Preflight", "Deploy", "Roll the nodes onto the deployed version",
                                      "Verify (WSO2 takes minutes to become healthy)")]
    assert order == sorted(order)
    assert 'obiam preflight --branch "$OBIAM_EPHEMERAL_BRANCH"' in step(jobs["deploy"], "Preflight")
    assert 'obiam verify --branch "$OBIAM_EPHEMERAL_BRANCH"' in step(jobs["deploy"], "Verify")
    destroy = step(jobs["destroy"], "Destroy")
    assert 'npx cdktf destroy "$stack" --auto-approve' in destroy and "ephemeral-base" not in destroy


@pytest.mark.synth
def test_the_per_branch_workflow_has_one_role_for_every_branch_and_nothing_beyond(synth: Synth) -> None:
    """ephemeral.yml runs deploy, destroy and reap in the `ephemeral` GitHub environment with one role:
    a deploy role whose names are every branch's (eph-*: state key, roles), plus the reaper's tag search
    and notice. The branch stacks' services come from a synthesized branch stack."""
    template = load_environment(ROOT / "environments" / "ephemeral.yaml", ROOT)
    (role,) = ci_policy.branch_roles(template, synth.stack(synth.ephemeral_name), "bank/obiam").values()
    assert role["github_environment"] == "ephemeral"
    assert role["trust"]["Statement"][0]["Condition"]["StringEquals"][
        "token.actions.githubusercontent.com:sub"] == ["repo:bank/obiam:environment:ephemeral"]
    found = statements(role["policy"])
    assert found["StateWrite"]["Resource"].endswith(":::example-bank-tfstate-333333333333-eu-west-2/"
                                                    "wso2-ob-iam-ephemeral/eph-*/terraform.tfstate")
    assert found["PassOwnRolesOnly"]["NotResource"][0] == "arn:aws:iam::333333333333:role/obiam-eph-*"
    assert found["OwnAliasRecord"]["Resource"].endswith(f"hostedzone/{template.config.load_balancer.hosted_zone_id}")
    assert actions(found["FindBranches"]) == ["tag:GetResources"]
    # The base's function is invoked and its published parameter read, through the stack's services.
    assert {"lambda:*", "ssm:*", "ec2:*"} <= set(actions(found["ManageTheStack"]))
    assert len(json.dumps(role["policy"], separators=(",", ":"))) <= 6144


def test_ci_policy_for_the_branches_needs_a_synthesized_branch_stack(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from obiam.cli import app

    result = CliRunner().invoke(app, ["ci-policy", "--env", "ephemeral", "--outdir", str(tmp_path)])
    assert result.exit_code == 2
    assert "synthesize one first (OBIAM_EPHEMERAL_BRANCH=ci-policy make synth)" in result.output
