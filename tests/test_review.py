"""Plan review: plan-summary on plan fixtures, synth-diff on real syntheses, the diagram, the workflows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from conftest import ROOT, Synth
from obiam.cli import app
from obiam.review import diagram, plan_render, plan_summary, synth_diff

PLANS = ROOT / "tests" / "fixtures" / "plans"
BIN = Path(sys.executable).parent


def summary_of(name: str) -> plan_summary.PlanSummary:
    return plan_summary.summarize(plan_summary.load_plan(PLANS / name))


def by_address(summary: plan_summary.PlanSummary) -> dict[str, plan_summary.ResourceChange]:
    return {c.address: c for c in summary.changes}


# --- plan-summary ------------------------------------------------------------------------------

def test_counts_creates_updates_noops_and_data_reads_apart() -> None:
    summary = summary_of("routine-scaling.json")
    assert dict(summary.counts) == {"create": 1, "update": 2, "no-op": 2}
    assert [c.address for c in summary.reads] == ["data.aws_ssm_parameter.ami"]
    assert not summary.dangerous


def test_in_place_update_lists_changed_attributes_and_unknown_values() -> None:
    changes = by_address(summary_of("routine-scaling.json"))
    asg = changes["aws_autoscaling_group.nodes_asg_1A2B3C4D"]
    assert [(a.path, a.before, a.after) for a in asg.attributes] == [("max_size", "6", "8")]
    template = changes["aws_launch_template.nodes_template_5E6F7A8B"]
    assert ("latest_version", "4", plan_summary.UNKNOWN) in [(a.path, a.before, a.after) for a in template.attributes]


def test_replacement_names_the_attributes_that_force_it() -> None:
    changes = by_address(summary_of("database-replaced.json"))
    db = changes["aws_db_instance.database_instance_D7FC2283"]
    assert db.action == "replace" and db.replace_paths == ("engine",)
    group = changes["aws_db_parameter_group.database_parameters_11AA22BB"]
    assert group.action == "replace"  # create-before-destroy: ["create", "delete"]


def test_sensitive_values_are_masked_everywhere() -> None:
    markdown = plan_render.render_markdown(summary_of("database-replaced.json"))
    text = plan_render.render_text(summary_of("database-replaced.json"))
    for output in (markdown, text):
        assert "old-secret-value" not in output and "new-secret-value" not in output
        assert '"password": \\"a\\"' not in output and "password: (sensitive) -> (sensitive)" in output
        assert "secret_string: (sensitive) -> (sensitive)" in output


def test_stateful_replacement_gets_a_loud_warning() -> None:
    markdown = plan_render.render_markdown(summary_of("database-replaced.json"))
    assert "> [!CAUTION]" in markdown
    assert ("aws_db_instance.database_instance_D7FC2283 (aws_db_instance) would be REPLACED (destroyed and created "
            "empty) because of engine") in markdown
    assert "aws_db_parameter_group" not in markdown.split("| action |")[0], "parameter groups hold no data"


def test_module_resources_moves_and_imports_are_understood() -> None:
    summary = summary_of("module-refactor.json")
    assert [c.address for c in summary.dangerous] == ["module.storage.aws_efs_file_system.this"]
    assert [c.moved_from for c in summary.moved] == ["aws_efs_access_point.artifacts_ap-userstores_D383D6A6"]
    assert [c.address for c in summary.imported] == ["aws_cloudwatch_log_group.node-logs_audit_EED5EB8B"]
    text = plan_render.render_text(summary)
    assert "1 moved, 1 imported" in text
    assert "module.storage.aws_efs_file_system.this (aws_efs_file_system) would be DESTROYED" in text


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_strict_exits_3_when_a_database_is_replaced() -> None:
    assert run("plan-summary", str(PLANS / "database-replaced.json"), "--strict").exit_code == 3
    assert run("plan-summary", str(PLANS / "database-replaced.json")).exit_code == 0
    assert run("plan-summary", str(PLANS / "routine-scaling.json"), "--strict").exit_code == 0


@pytest.mark.parametrize(("fixture", "message"), [
    ("not-json.json", "not JSON (line 1, column 1)"),
    ("no-format-version.json", "not a Terraform JSON plan (no format_version)"),
    ("future-format.json", "format_version '2.0' is not supported (1.x is)"),
    ("missing.json", "cannot be read"),
])
def test_malformed_plan_is_one_line_and_exit_2(fixture: str, message: str) -> None:
    result = run("plan-summary", str(PLANS / fixture))
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


# --- synth-diff --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def engine_switch(synth: Synth, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """prod as synthesized, and prod with a real config change: MySQL -> PostgreSQL, 3 -> 4 max nodes."""
    from conftest import with_changes
    from stacks.app import synthesize

    base = tmp_path_factory.mktemp("base") / "cdktf.out"
    shutil.copytree(synth.outdir / "stacks" / "prod", base / "stacks" / "prod")
    head = tmp_path_factory.mktemp("head") / "cdktf.out"
    changed = with_changes(synth.environments["prod"], database={
        "engine": "postgres", "engine_version": "13", "jdbc_driver_s3_uri": "s3://example-bank-wso2/pg.jar"},
        nodes={"max_size": 8})
    synthesize([changed], head)
    return base, head


@pytest.mark.synth
def test_synth_diff_reports_a_real_config_change(engine_switch: tuple[Path, Path]) -> None:
    (diff,) = synth_diff.diff_trees(synth_diff.load_tree(engine_switch[0]), synth_diff.load_tree(engine_switch[1]))
    changed = {r.address: r for r in diff.resources if r.kind == "changed"}
    db = next(r for a, r in changed.items() if a.startswith("aws_db_instance."))
    assert {"engine", "engine_version"} <= set(db.paths) and db.forces_replacement == ("engine",)
    asg = next(r for a, r in changed.items() if a.startswith("aws_autoscaling_group."))
    assert asg.paths == ("max_size",)
    assert any(a.startswith("aws_launch_template.") for a in changed), "the boot script renders the JDBC URLs"
    # The MySQL log groups go with the engine (PostgreSQL exports other logs): their history is data too.
    assert sorted(r.address for r in diff.dangerous) == sorted([
        db.address, *(a for a in (r.address for r in diff.resources if r.kind == "removed")
                      if a.startswith("aws_cloudwatch_log_group.database_logs_"))])
    assert len(diff.dangerous) == 3


@pytest.mark.synth
def test_synth_diff_cli_warns_and_strict_exits_3(engine_switch: tuple[Path, Path]) -> None:
    base, head = map(str, engine_switch)
    result = run("synth-diff", base, head, "--strict")
    assert result.exit_code == 3
    assert "> [!CAUTION]" in result.output and "changes engine, which makes the provider replace it" in result.output
    assert run("synth-diff", base, base, "--format", "text").output == "prod: unchanged\n"


def test_synth_diff_needs_two_trees(tmp_path: Path) -> None:
    result = run("synth-diff", str(tmp_path / "nope"), str(tmp_path))
    assert result.exit_code == 2 and "no such directory" in result.output


def test_removed_stateful_resource_is_dangerous() -> None:
    base = {"resource": {"aws_efs_file_system": {"artifacts": {"encrypted": True}}, "aws_lb": {"alb": {}}}}
    (diff,) = synth_diff.diff_trees({"prod": base}, {"prod": {"resource": {"aws_lb": {"alb": {}}}}})
    assert [(r.address, r.kind) for r in diff.dangerous] == [("aws_efs_file_system.artifacts", "removed")]


def test_a_removed_data_source_destroys_nothing() -> None:
    """A data source only reads (Terraform language docs, "Data Sources"): dropping the AMI lookup when
    an image gets pinned is not a stateful loss, even though an aws_ssm_parameter resource would be."""
    base = {"data": {"aws_ssm_parameter": {"ami": {"name": "/aws/service/x"}}}}
    (diff,) = synth_diff.diff_trees({"prod": base}, {"prod": {"resource": {"aws_lb": {"alb": {}}}}})
    assert [r.address for r in diff.resources if r.kind == "removed"] == ["data.aws_ssm_parameter.ami"]
    assert diff.dangerous == []


# --- diagram -----------------------------------------------------------------------------------

@pytest.mark.synth
def test_diagram_shows_nodes_mount_targets_database_and_controllers_per_az(prod: dict[str, Any]) -> None:
    deployment = diagram.model(prod)
    assert [z.name for z in deployment.zones] == ["eu-west-2a", "eu-west-2b", "eu-west-2c"]
    assert all(z.nodes and z.efs_mount and z.nat for z in deployment.zones)
    assert [z.controller for z in deployment.zones] == [True, True, False]
    assert deployment.database == "RDS mysql 8.0, primary + standby" and deployment.waf
    mermaid = diagram.render_mermaid(deployment)
    assert mermaid.startswith("flowchart TB\n")
    assert mermaid.count("subgraph ") == mermaid.count("\n    end\n") + mermaid.count("\n  end\n") == 4
    assert mermaid.count('alb -->|"9446"|') == 3
    assert mermaid == diagram.render_mermaid(diagram.model(prod)), "deterministic"


@pytest.mark.synth
def test_diagram_cli_reads_the_synthesized_stack(synth: Synth) -> None:
    result = run("diagram", "--env", "prod", "--outdir", str(synth.outdir))
    assert result.exit_code == 0 and "MicrosoftAD corp.obiam.bank.example.com" in result.output
    missing = run("diagram", "--env", "prod", "--outdir", "/nonexistent")
    assert missing.exit_code == 2 and "run `make synth` first" in missing.output


@pytest.mark.synth
def test_diagram_degrades_without_the_network(variants: dict[str, dict[str, Any]]) -> None:
    deployment = diagram.model(variants["existing-vpc"])
    assert deployment.zones == [] and deployment.load_balancer == "obiam-existing-vpc"
    assert 'subgraph vpc["VPC (existing)"]' in diagram.render_mermaid(deployment)


@pytest.mark.synth
def test_svg_needs_graphviz_or_says_so(prod: dict[str, Any], tmp_path: Path) -> None:
    dot_source = diagram.render_dot(diagram.model(prod))
    assert dot_source.startswith('digraph "prod" {') and dot_source.rstrip().endswith("}")
    if shutil.which("dot"):
        svg = subprocess.run(["dot", "-Tsvg"], input=dot_source, capture_output=True, text=True, check=True).stdout
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    else:
        stacks = tmp_path / "cdktf.out" / "stacks" / "prod"
        stacks.mkdir(parents=True)
        (stacks / "cdk.tf.json").write_text(json.dumps(prod))
        result = run("diagram", "--env", "prod", "--outdir", str(tmp_path / "cdktf.out"), "--format", "svg")
        assert result.exit_code == 2 and "apt-get install graphviz" in result.output


# --- workflows ---------------------------------------------------------------------------------

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck on PATH makes actionlint check the run: scripts too.
    env = {"PATH": f"{BIN}:/usr/bin:/bin"}
    return subprocess.run([str(BIN / "actionlint"), "-color=false", *map(str, paths)], capture_output=True, text=True,
                          env=env, check=False)


def test_workflows_pass_actionlint() -> None:
    assert {p.name for p in WORKFLOWS} == {"pr.yml", "deploy.yml", "deploy-stack.yml", "drift.yml", "ephemeral.yml"}
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout


def test_actionlint_catches_script_injection(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "bad.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text("on: pull_request\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
                      "      - run: echo \"${{ github.event.pull_request.title }}\"\n")
    result = actionlint(broken)
    assert result.returncode != 0 and "potentially untrusted" in result.stdout


def test_every_action_is_pinned_to_a_commit() -> None:
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            if "uses:" in line and "uses: ./.github/workflows/" not in line:  # our own reusable workflows
                assert re.search(r"uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), f"{path.name}: {line}"


def test_workflows_get_aws_access_only_through_oidc_roles() -> None:
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        assert workflow["permissions"] == {}, f"{path.name}: default permissions must be empty"
        text = path.read_text()
        assert "aws-access-key-id" not in text and "secrets.AWS" not in text
        for name, job in workflow["jobs"].items():
            if "uses" in job:  # a reusable workflow: its own jobs are checked in its file
                assert job["uses"].startswith("./.github/workflows/"), f"{path.name}:{name}"
                continue
            uses_aws = any("configure-aws-credentials" in step.get("uses", "") for step in job["steps"])
            assert uses_aws == (job["permissions"].get("id-token") == "write"), f"{path.name}:{name}"
            if uses_aws:  # AWS credentials only inside a GitHub environment (the role trusts only that)
                assert "environment" in job, f"{path.name}:{name}"
