"""`obiam plan-summary` on plans built from Terraform's documented JSON format, and properties.

Fixtures (tests/fixtures/plans/*.json) are our own, written from developer.hashicorp.com
"JSON Output Format" (plan representation, change representation, checks representation):
`errored`/`complete`/`applyable`, `resource_drift` with `relevant_attributes`, `output_changes`,
`checks`, `deferred_changes`, the `forget` action, `deposed`, and the order of a replacement's
actions (`["create", "delete"]` is create-before-destroy). Each test names the defect class of
issue #16 it guards.

Cost: ~4.5 s measured (property tests 2.4 + 1.0 s, derandomized; the re-tag test reuses the session synth
and imports the provider bindings it already loaded).
"""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import ROOT, Synth
from obiam.cli import app
from obiam.review import plan_render, plan_summary
from obiam.review.plan_render import GITHUB_COMMENT_LIMIT
from obiam.review.stateful import StatefulPolicy

PLANS = ROOT / "tests" / "fixtures" / "plans"


def summary_of(name: str, **kwargs: Any) -> plan_summary.PlanSummary:
    return plan_summary.summarize(plan_summary.load_plan(PLANS / name), **kwargs)


def rows(summary: plan_summary.PlanSummary) -> dict[str, list[str]]:
    return {c.address: plan_render.notes(c) for c in summary.changes}


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["plan-summary", *args])


# --- errored and incomplete plans --------------------------------------------------------------

def test_errored_plan_is_shown_first_and_fails_strict() -> None:
    """Defect: an errored plan printed "No changes." and passed --strict."""
    result = run(str(PLANS / "errored.json"), "--strict")
    assert result.exit_code == 4
    first = result.output.split("**0 to create")[0]
    assert "the plan ERRORED" in first and "the plan is INCOMPLETE" in first
    assert "\nNo changes.\n" not in result.output
    assert run(str(PLANS / "errored.json")).exit_code == 0, "without --strict it only reports"


def test_incomplete_plan_lists_its_deferred_changes_and_fails_strict() -> None:
    """Defect: deferred changes never appeared; `complete: false` was ignored."""
    summary = summary_of("incomplete-deferred.json")
    assert summary.not_the_change == ["the plan is INCOMPLETE: more changes will follow after applying it (1 deferred)"]
    assert [(reason, c.address) for reason, c in summary.deferred] == [("provider_config_unknown",
                                                                        "aws_s3_bucket.replica")]
    result = run(str(PLANS / "incomplete-deferred.json"), "--strict", "--format", "json")
    assert result.exit_code == 4
    assert json.loads(result.output)["plans"][0]["deferred"][0]["deferred_reason"] == "provider_config_unknown"


# --- drift, outputs, checks, forget, deposed, replacement order ---------------------------------

def test_drift_shows_what_the_plan_depends_on_first_and_the_rest_apart() -> None:
    """Defect: changes outside Terraform never appeared. relevant_attributes narrows the ASG's drift
    to max_size (the tag drift does not matter to this plan); a resource deleted outside Terraform is
    always relevant; drift nothing depends on is listed apart (a refresh-only review needs it)."""
    summary = summary_of("drift.json")
    drift = {c.address: c for c in summary.drift}
    assert [a.line() for a in drift["aws_autoscaling_group.nodes"].attributes] == ["max_size: 4 -> 9"]
    assert drift["aws_cloudwatch_log_group.audit"].action == "delete"
    assert [c.address for c in summary.other_drift] == ["aws_security_group.nodes"]
    markdown = plan_render.render_markdown(summary)
    assert "3 changed outside Terraform" in markdown
    assert markdown.index("that this plan depends on") < markdown.index("not used by this plan")


def test_output_changes_and_failed_checks_are_shown() -> None:
    """Defect: output changes and failed checks never appeared."""
    summary = summary_of("outputs-checks.json")
    assert [o.line() for o in summary.outputs] == [
        'alb_dns_name (update): "old.eu-west-2.elb.amazonaws.com" -> "new.eu-west-2.elb.amazonaws.com"',
        "db_endpoint (create): null -> (known after apply)",
        "db_master_password (update): (sensitive) -> (sensitive)",
        'legacy_output (delete): "gone" -> null']
    assert [(c.address, c.problems) for c in summary.failed_checks] == [
        ("check.certificate_valid", ("The certificate expires in 5 days.",))]
    output = run(str(PLANS / "outputs-checks.json"), "--strict")
    assert output.exit_code == 3 and "hunter2" not in output.output
    assert "The certificate expires in 5 days." in output.output


def test_forget_deposed_and_replacement_order_are_shown() -> None:
    """Defect: `forget` and deposed objects never appeared; the replacement order was not said."""
    summary = summary_of("forget-deposed.json")
    assert dict(summary.counts) == {"forget": 1, "delete": 1, "replace": 2}
    notes = rows(summary)
    assert "removed from state only; the object keeps running, unmanaged" in notes["aws_db_instance.legacy"]
    assert "create before destroy" in notes["aws_launch_template.nodes"]
    assert "destroy before create" in notes["aws_instance.bastion"]
    assert "replace because tainted" in notes["aws_instance.bastion"]
    (deposed,) = summary.dangerous
    assert deposed.deposed == "00000001", "a deposed database copy may hold the only data: flagged"
    assert "aws_db_instance.legacy" not in [c.address for c in summary.dangerous], "forget destroys nothing"


# --- values ------------------------------------------------------------------------------------

def test_a_dynamic_attribute_changing_type_is_a_change_not_a_traceback() -> None:
    """Defect: a list/object change of a dynamic attribute crashed with a traceback."""
    notes = rows(summary_of("dynamic-types.json"))["aws_cloudcontrolapi_resource.thing"]
    assert notes == ['desired_state: [1, 2] -> {"one": 1}', 'properties.a: {"b": [1, {"c": 2}]} -> "flattened"',
                     "schema: (sensitive) -> (sensitive)"]


def test_sets_are_diffed_as_added_and_removed_elements() -> None:
    """Defect: set-typed attributes were diffed by position (a reordering read as every rule changed)."""
    notes = rows(summary_of("sets-and-documents.json"))
    (ingress,) = notes["aws_security_group.alb"]
    assert ingress.startswith('ingress: + {"cidr_blocks": ["10.0.0.0/8", "172.16.0.0/12"]')
    assert ', - {"cidr_blocks": ["10.0.0.0/8"], ' in ingress and "192.168.0.0/16" not in ingress
    assert notes["aws_vpc_endpoint.s3"] == ["route_table_ids: (same elements, reordered) -> (same elements, reordered)"]


def test_long_strings_and_json_documents_show_the_region_that_changed() -> None:
    """Defect: values cut at 60 characters printed identical before and after."""
    notes = rows(summary_of("sets-and-documents.json"))
    assert notes["aws_iam_role_policy.nodes"] == ['policy{Statement[0].Action}: + "s3:PutObject"']
    (user_data,) = notes["aws_launch_template.nodes"]
    before, after = user_data.removeprefix("user_data: ").split(" -> ")
    assert "echo step 150\\n" in before and "echo step 150 (patched)" in after
    (content,) = notes["aws_ssm_document.boot"]
    before, after = content.removeprefix("content: ").split(" -> ")
    assert before != after and "AAAA" in before and "BBBB" in after and "(at 100 of 300)" in before


def test_sensitive_on_either_side_masks_both() -> None:
    """Defect: a value that became sensitive showed its old side in clear."""
    summary = summary_of("sensitivity-change.json")
    assert {a: n for a, n in rows(summary).items()} == {
        f"aws_ssm_parameter.{name}": ["value: (sensitive) -> (sensitive)"] for name in ("config", "runtime", "same")}
    for output in (plan_render.render_markdown(summary), plan_render.render_text(summary),
                   plan_render.as_json([summary])):
        for secret in ("old-clear-text-token", "new-secret-token", "was-secret-value", "now-public-value",
                       "unchanged-but-now-secret"):
            assert secret not in output


def test_nothing_in_a_plan_can_inject_markdown_html_or_mentions() -> None:
    """Defect: addresses and values went into the comment as live Markdown/HTML (`|` broke the table,
    @mentions notified, <img> rendered). GFM: code spans are never parsed; `|` in a table cell needs
    a backslash even inside one; a fence longer than any backtick run inside cannot be closed early."""
    markdown = plan_render.render_markdown(summary_of("injection.json"))
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            outside = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", line)  # drop code spans
            assert set(outside) <= set("| abcdefghijklmnopqrstuvwxyz-<>br"), line
            assert outside.count("|") - outside.count("\\|") == 4, f"a row has exactly 3 cells: {line}"
    assert "\n### pwned" not in markdown and "\\n### pwned" in markdown, "a newline cannot start a heading"
    assert "\\u202e" in markdown, "a right-to-left override is shown, not obeyed"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_bom_and_utf16_plans_are_read(tmp_path: Path, encoding: str) -> None:
    """Defect: UTF-8-with-BOM and UTF-16 plans (PowerShell's `>` writes UTF-16 with a BOM) were refused."""
    plan = tmp_path / "plan.json"
    plan.write_text((PLANS / "forget-deposed.json").read_text(encoding="utf-8"), encoding=encoding)
    result = run(str(plan), "--format", "text")
    assert result.exit_code == 0 and "1 to forget" in result.output
    if encoding == "utf-16":
        assert plan.read_bytes()[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def test_every_aws_data_store_is_flagged_and_the_list_is_configurable() -> None:
    """Defect: the stateful list missed AWS data stores (caches, search, FSx, queues)."""
    flagged = [c.type for c in summary_of("data-stores.json").dangerous]
    assert flagged == ["aws_elasticache_replication_group", "aws_fsx_ontap_file_system", "aws_sqs_queue",
                       "aws_opensearch_domain"]
    policy = StatefulPolicy(extra=("aws_lb_target_group",), exempt=("aws_sqs_*",))
    assert [c.type for c in summary_of("data-stores.json", policy=policy).dangerous] == [
        "aws_elasticache_replication_group", "aws_fsx_ontap_file_system", "aws_lb_target_group",
        "aws_opensearch_domain"]
    result = run(str(PLANS / "data-stores.json"), "--strict", "--stateless", "aws_*", "--format", "text")
    assert result.exit_code == 0 and "!!!" not in result.output


# --- several plans, the size limit, JSON ---------------------------------------------------------

def taggable(resource_type: str) -> bool:
    """Whether the AWS provider (6.25, through its cdktf bindings) gives the type `tags_all`."""
    import importlib

    module_name = resource_type.removeprefix("aws_")
    try:
        module = importlib.import_module(f"cdktf_cdktf_provider_aws.{module_name}")
    except ImportError:
        return False
    cls = getattr(module, "".join(part.capitalize() for part in module_name.split("_")), None)
    return cls is not None and hasattr(cls, "tags_all")


def retag_plan(stack: dict[str, Any]) -> dict[str, Any]:
    """What `terraform show -json` gives when the bank re-tags a stack to a new tagging standard: the
    provider's default_tags keys move to `bank:<kebab-case>` (CostCenter -> bank:cost-center), so every
    taggable resource is updated in place with `tags_all` changing (`tags`, the resource's own, stays)."""
    defaults = stack["provider"]["aws"][0]["default_tags"][0]["tags"]
    changes = []
    for resource_type, resources in sorted(stack.get("resource", {}).items()):
        if not resource_type.startswith("aws_") or not taggable(resource_type):
            continue
        for name, body in sorted(resources.items()):
            own = {k: v for k, v in (body.get("tags") or {}).items() if isinstance(v, str)}
            before = {**defaults, **own}
            after = {**{"bank:" + re.sub(r"(?<!^)([A-Z])", r"-\\1", k).lower(): v for k, v in defaults.items()},
                     **own}
            changes.append({"address": f"{resource_type}.{name}", "mode": "managed", "type": resource_type,
                            "name": name, "change": {"actions": ["update"],
                                                     "before": {"tags": own or None, "tags_all": before},
                                                     "after": {"tags": own or None, "tags_all": after},
                                                     "after_unknown": {}, "before_sensitive": {},
                                                     "after_sensitive": {}}})
    return {"format_version": "1.2", "terraform_version": "1.11.4", "complete": True, "applyable": True,
            "errored": False, "resource_changes": changes}


@pytest.mark.synth
def test_a_three_stack_retag_fits_in_one_comment(synth: Synth, tmp_path: Path) -> None:
    """Defect: a three-stack re-tag made a comment over GitHub's 65,536-character limit. Each stack
    keeps its counts; the rows that do not fit say so and point to the artifact."""
    paths = []
    for name in ("prod", "staging", "dev"):
        path = tmp_path / f"plan-{name}.json"
        path.write_text(json.dumps(retag_plan(synth.stack(name))))
        paths.append(str(path))
    result = run(*paths, "--title", "Plan")
    assert result.exit_code == 0
    comment = result.output
    size = len(comment)
    print(f"three-stack re-tag comment: {size} characters")  # reported in the closing note
    assert size <= plan_render.DEFAULT_BUDGET < GITHUB_COMMENT_LIMIT
    summaries = [plan_summary.summarize(json.loads(Path(p).read_text())) for p in paths]
    for name, summary in zip(("prod", "staging", "dev"), summaries, strict=True):
        assert summary.counts["update"] > 50
        assert f"### Plan / {name}" in comment and f"**0 to create, {summary.counts['update']} to update" in comment
    assert "the full summary is in the plan artifact of this run" in comment
    unbounded = plan_render.render_markdown(summaries, "Plan", limit=10**9)
    assert len(unbounded) > GITHUB_COMMENT_LIMIT, "the fixture is big enough to need folding"


def test_several_plans_one_section_each_named_after_the_stack(tmp_path: Path) -> None:
    (tmp_path / "prod").mkdir()
    (tmp_path / "prod" / "plan.json").write_text((PLANS / "data-stores.json").read_text())
    result = run(str(tmp_path / "prod" / "plan.json"), f"dev={PLANS / 'drift.json'}",
                 str(PLANS / "routine-scaling.json"), "--title", "Plan")
    assert [line for line in result.output.splitlines() if line.startswith("### ")] == [
        "### Plan / prod", "### Plan / dev", "### Plan / routine\\-scaling"] or [
        line for line in result.output.splitlines() if line.startswith("### ")] == [
        "### Plan / prod", "### Plan / dev", "### Plan / routine-scaling"]


# --- properties -----------------------------------------------------------------------------------

SECRET = "QQSECRET"
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                     st.text(alphabet=st.characters(exclude_characters="Q"), max_size=30))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=6).filter(
                                                             lambda k: "Q" not in k), inner, max_size=4)),
                       max_leaves=12)
ACTIONS = [["no-op"], ["create"], ["read"], ["update"], ["delete"], ["delete", "create"], ["create", "delete"],
           ["forget"], ["create", "forget"], []]


@st.composite
def marked(draw: st.DrawFn, value: Any, depth: int = 0) -> tuple[Any, Any]:
    """A value with some leaves replaced by secrets, and the matching *_sensitive marks."""
    if depth < 4 and isinstance(value, dict):
        pairs = {k: draw(marked(v, depth + 1)) for k, v in value.items()}
        return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items() if p[1] is not False}
    if depth < 4 and isinstance(value, list):
        pairs = [draw(marked(v, depth + 1)) for v in value]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if draw(st.integers(0, 3)) == 0:
        return f"{SECRET}{draw(st.integers(0, 999))}", True
    return value, False


@st.composite
def plans(draw: st.DrawFn) -> dict[str, Any]:
    changes = []
    for i in range(draw(st.integers(0, 8))):
        before, before_marks = draw(marked(draw(_values)))
        after, after_marks = draw(marked(draw(_values)))
        address = draw(st.text(min_size=1, max_size=40).filter(lambda a: "Q" not in a)) + f"#{i}"
        changes.append({"address": address, "mode": draw(st.sampled_from(["managed", "data"])),
                        "type": draw(st.sampled_from(["aws_db_instance", "aws_lb", "aws_s3_bucket", "x"])),
                        "deposed": draw(st.sampled_from([None, "0001"])),
                        "change": {"actions": draw(st.sampled_from(ACTIONS)), "before": before, "after": after,
                                   "after_unknown": draw(st.sampled_from([{}, True, [], {"a": True}])),
                                   "before_sensitive": before_marks, "after_sensitive": after_marks,
                                   "replace_paths": draw(st.sampled_from([[], [["a", 0]], [["b"]]]))}})
    drift = draw(st.lists(st.sampled_from(changes), max_size=3)) if changes else []
    return {"format_version": draw(st.sampled_from(["1.0", "1.2", "1.99"])),
            "errored": draw(st.booleans()), "complete": draw(st.sampled_from([True, False, None])),
            "resource_changes": changes, "resource_drift": drift,
            "relevant_attributes": [{"resource": c["address"], "attribute": ["a"]} for c in drift[:1]],
            "output_changes": {"o": {"actions": ["update"], "before": drift[0]["change"]["before"] if drift else 1,
                                     "after": SECRET, "after_sensitive": True, "before_sensitive": True}},
            "checks": [{"address": {"to_display": "check.x"}, "status": draw(st.sampled_from(["fail", "pass"])),
                        "instances": [{"problems": [{"message": draw(st.text(max_size=20))}]}]}]}


@settings(max_examples=150)
@given(plans(), st.integers(1_000, 70_000))
def test_any_plan_summarizes_without_traceback_secrets_or_overflow(plan: dict[str, Any], limit: int) -> None:
    """Properties over generated format-1.x plans: no exception; the counts equal the actions of the
    managed changes; no sensitive value is printed in any format; Markdown stays within its budget."""
    summary = plan_summary.summarize(plan, name="stack")
    managed = [c for c in plan["resource_changes"] if c["mode"] == "managed"]
    assert sum(summary.counts.values()) == len(managed)
    for action, count in summary.counts.items():
        assert count == sum(plan_summary.action_of(c["change"]["actions"]) == action for c in managed)
    outputs = [plan_render.render_markdown([summary, summary], limit=limit), plan_render.render_text(summary),
               plan_render.as_json([summary])]
    assert all(SECRET not in out for out in outputs), "a sensitive value was printed"
    assert len(outputs[0]) <= limit


@settings(max_examples=60)
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-16")))
def test_any_bytes_give_a_summary_or_one_line_never_a_traceback(tmp_path_factory: pytest.TempPathFactory,
                                                                data: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "plan.json"
    path.write_bytes(b'{"format_version": "1.0", "resource_changes": [' + data + b"]}" if data[:1] == b"{" else data)
    result = run(str(path))
    assert result.exit_code in (0, 2) and "Traceback" not in result.output
    if result.exit_code == 2:
        assert len(result.output.strip().splitlines()) == 1
