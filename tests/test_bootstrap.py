"""The node boot script, as it sits (gzip, base64) in the synthesized launch template.

shellcheck runs on the script and on every script it installs; the deployment overlay it
writes is parsed with tomllib; the JSON with json. The WSO2 rules the merged configuration
must meet are in test_wso2_contract.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import Synth, load_repo_environments
from obiam import bootstrap
from tfjson import deployment_overlay, embedded_files, only, resources, user_data

pytestmark = pytest.mark.synth

SHELLCHECK = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")


def shellcheck(script: str, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(script)
    result = subprocess.run([SHELLCHECK, "--severity=style", "--shell=bash", str(path)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_user_data_passes_shellcheck(stack: dict[str, Any], tmp_path: Path) -> None:
    shellcheck(user_data(stack), tmp_path, "user-data.sh")


def test_installed_scripts_pass_shellcheck(stack: dict[str, Any], tmp_path: Path) -> None:
    scripts = {p: body for p, body in embedded_files(user_data(stack)).items() if body.startswith("#!/bin/bash")}
    assert {"/opt/obiam/bin/db-init", "/opt/obiam/bin/prepare-start", "/opt/obiam/bin/node-runtime",
            "/opt/obiam/bin/deep-health"} <= set(scripts)
    for path, body in scripts.items():
        shellcheck(body, tmp_path, Path(path).name)


def test_shellcheck_would_catch_a_broken_script(tmp_path: Path) -> None:
    with pytest.raises(AssertionError):
        shellcheck("#!/bin/bash\necho $UNQUOTED_VARIABLE\n", tmp_path, "broken.sh")


def test_user_data_leaves_room_under_the_ec2_limit(synth: Synth) -> None:
    """EC2 accepts 16 KiB of user data before base64; cloud-init gunzips gzip user data."""
    import base64

    for name in synth.environments:
        packed = base64.b64decode(only(synth.stack(name), "aws_launch_template")["user_data"])
        assert packed[:2] == b"\x1f\x8b", name
        assert len(packed) <= 12 * 1024, f"{name}: {len(packed)} bytes compressed"


def test_the_synthesized_user_data_embeds_exactly_the_node_files(synth: Synth) -> None:
    # The contract tests check bootstrap.node_files(); this ties them to what is deployed.
    for name, environment in synth.environments.items():
        embedded = embedded_files(user_data(synth.stack(name)))
        expected = bootstrap.node_files(bootstrap.settings_for(environment))
        assert {path: embedded.get(path) for path in expected} == expected, name


def test_user_data_that_outgrows_ec2_is_a_clear_error(environments: dict[str, Any], monkeypatch: Any) -> None:
    monkeypatch.setattr(bootstrap, "USER_DATA_LIMIT", 100)
    with pytest.raises(bootstrap.UserDataTooLarge, match=r"environments/dev: the node boot script is \d+ bytes"):
        bootstrap.user_data_base64(environments["dev"])


def test_user_data_over_the_limit_names_the_config_fields_that_weigh_most(environments: dict[str, Any],
                                                                          monkeypatch: Any) -> None:
    """EC2 refuses user data over 16 KiB (EC2 User Guide, "Run commands when you launch an EC2
    instance with user data"); the error says which of the file's values made it big."""
    dev = environments["dev"]
    long_key = "packs/" + "a-very-long-folder-name/" * 30 + "wso2-obiam-3.0.0.zip"
    config = dev.config.model_copy(update={"product": dev.config.product.model_copy(
        update={"pack_s3_uri": f"s3://example-bank-wso2/{long_key}"})})
    heavy = dataclasses.replace(dev, config=config)
    monkeypatch.setattr(bootstrap, "USER_DATA_LIMIT", 100)
    with pytest.raises(bootstrap.UserDataTooLarge) as error:
        bootstrap.user_data_base64(heavy)
    message = str(error.value)
    assert f"The values of {dev.source} that weigh most in it: product.pack_s3_uri (" in message


def test_user_data_is_plain_static_text(stack: dict[str, Any]) -> None:
    # No Terraform interpolation: the launch template changes only when the script does.
    assert "${" not in only(stack, "aws_launch_template")["user_data"]


def test_overlay_sets_hostname_offset_proxy_port_and_health_check(stack: dict[str, Any], synth: Synth) -> None:
    overlay = deployment_overlay(stack)
    config = synth.environments[stack["//"]["metadata"]["stackName"]].config
    assert overlay["server"]["hostname"] == config.load_balancer.hostname
    assert overlay["server"]["offset"] == 3
    assert overlay["transport"]["https"]["properties"]["proxyPort"] == 443
    assert overlay["carbon_health_check"]["enable"] is True


def test_every_node_joins_one_cluster(stack: dict[str, Any]) -> None:
    clustering = deployment_overlay(stack)["clustering"]
    name = stack["//"]["metadata"]["stackName"]
    assert clustering["membership_scheme"] == "wka"
    assert clustering["local_member_host"] == "@OBIAM_LOCAL_IP@"
    assert clustering["local_member_port"] == "5701"
    assert clustering["domain"] == f"wso2.obiam.{name}.domain"
    assert clustering["members"] == ["@OBIAM_CLUSTER_MEMBERS@"]
    script = user_data(stack)
    # Members are listed before every start by the same tag and security group the nodes carry.
    unit = embedded_files(script)["/etc/systemd/system/wso2-obiam.service"]
    assert "ExecStartPre=+/opt/obiam/bin/prepare-start" in unit
    prepare = embedded_files(script)["/opt/obiam/bin/prepare-start"]
    assert f"Name=tag:obiam:cluster,Values=obiam-{name}" in prepare
    assert f"Name=instance.group-name,Values=obiam-{name}-nodes" in prepare


def test_aws_membership_scheme_renders_the_kernel_property_names(variants: dict[str, dict[str, Any]]) -> None:
    clustering = deployment_overlay(variants["internal-alb"])["clustering"]
    assert clustering["membership_scheme"] == "aws"
    assert clustering["properties"] == {
        "region": "eu-west-2", "securityGroup": "obiam-internal-alb-nodes", "tagKey": "obiam:cluster",
        "tagValue": "obiam-internal-alb", "iamRole": "obiam-internal-alb-node"}
    assert "describe-instances" not in user_data(variants["internal-alb"])


def test_heap_is_2g_by_default(cheapest: dict[str, Any]) -> None:
    assert 'readonly JVM_MEM_OPTS_VALUE="-Xms2048m -Xmx2048m"' in user_data(cheapest)
    assert "printf 'JVM_MEM_OPTS=\"%s\"\\n' \"$JVM_MEM_OPTS_VALUE\"" in user_data(cheapest)


def test_prod_heap_follows_the_config(prod: dict[str, Any]) -> None:
    assert 'readonly JVM_MEM_OPTS_VALUE="-Xms4096m -Xmx4096m"' in user_data(prod)


def test_bootstrap_installs_the_configured_jdk_and_fetches_the_pack(stack: dict[str, Any], synth: Synth) -> None:
    config = synth.environments[stack["//"]["metadata"]["stackName"]].config
    script = user_data(stack)
    assert 'readonly JDK_MAJOR="11"' in script
    assert '"java-$JDK_MAJOR-amazon-corretto-headless"' in script
    assert f'readonly PACK_S3_URI="{config.product.pack_s3_uri}"' in script
    assert 'aws s3 cp --region "$REGION" --only-show-errors "$PACK_S3_URI" /tmp/obiam-pack.zip' in script
    # The pack is checked against the hash the environment pins, rendered into the user data, before
    # anything is unpacked; nothing beside the pack in S3 (which whoever can write the pack could rewrite
    # too) is trusted.
    assert f'readonly PACK_SHA256="{config.product.pack_sha256}"' in script
    assert script.index("sha256sum /tmp/obiam-pack.zip") < script.index("unzip -Z1 /tmp/obiam-pack.zip") \
        < script.index("unzip -q /tmp/obiam-pack.zip")
    assert '[[ $ACTUAL_SHA256 != "$PACK_SHA256" ]]' in script
    assert ".sha256" not in script.replace(".obiam-pack-sha256", "")


def test_a_new_pack_hash_rolls_the_nodes_like_any_launch_template_change(prod: dict[str, Any],
                                                                         synth: Synth) -> None:
    """Pinning another pack changes only the pinned hash in the user data; the launch template carries the
    user data, so a deploy of a new pin writes a new template version, and `obiam rollout` replaces the
    nodes one by one onto it (rolling back if they fail their health checks; tests/test_rollout.py)."""
    import base64
    import gzip

    from conftest import with_changes

    environment = synth.environments["prod"]
    repinned = with_changes(environment, product={"pack_sha256": "0" * 64})
    before = gzip.decompress(base64.b64decode(bootstrap.user_data_base64(environment))).decode()
    after = gzip.decompress(base64.b64decode(bootstrap.user_data_base64(repinned))).decode()
    assert before != after
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert changed == [(f'readonly PACK_SHA256="{environment.config.product.pack_sha256}"',
                        f'readonly PACK_SHA256="{"0" * 64}"')]
    template = only(prod, "aws_launch_template")
    template_name = next(iter(resources(prod, "aws_launch_template")))
    assert template["user_data"] == bootstrap.user_data_base64(environment)
    group = only(prod, "aws_autoscaling_group")
    assert group["launch_template"]["version"] == f"${{aws_launch_template.{template_name}.latest_version}}"
    assert template["update_default_version"] is True  # the version `obiam rollout` moves the group onto


def test_service_runs_wso2_unprivileged_after_the_artifact_mounts(stack: dict[str, Any]) -> None:
    unit = embedded_files(user_data(stack))["/etc/systemd/system/wso2-obiam.service"]
    assert "User=wso2carbon" in unit
    assert "EnvironmentFile=/etc/obiam/wso2.env" in unit
    mounts = re.search(r"^RequiresMountsFor=(.*)$", unit, re.M)
    assert mounts and sorted(mounts.group(1).split()) == sorted([*(
        f"/mnt/obiam-artifacts/{d}" for d in ("eventpublishers", "userstores", "eventstreams", "humantasks", "bpel")),
        "/mnt/obiam-control"])


def test_logs_are_shipped_to_the_stack_log_groups(stack: dict[str, Any]) -> None:
    agent = json.loads(embedded_files(user_data(stack))[
        "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"])
    shipped = {f["log_group_name"] for f in agent["logs"]["logs_collected"]["files"]["collect_list"]}
    created = {g["name"] for g in resources(stack, "aws_cloudwatch_log_group").values()}
    assert shipped <= created
    assert {g.rsplit("/", 1)[-1] for g in shipped} == {"bootstrap", "carbon", "audit", "http-access"}


def test_no_secret_value_is_in_the_user_data(stack: dict[str, Any]) -> None:
    """Credentials are read from Secrets Manager before every start, never baked in."""
    overlay = deployment_overlay(stack)
    passwords = [overlay["super_admin"]["password"], overlay["user_store"]["connection_password"]]
    passwords += [section["password"] for section in overlay["database"].values()]
    passwords += [ds["password"] for ds in overlay["datasource"]]
    assert set(passwords) <= {"@OBIAM_DB_PASSWORD@", "@OBIAM_DIRECTORY_BIND_PASSWORD@",
                              "@OBIAM_SUPER_ADMIN_PASSWORD@"}
    assert overlay["encryption"]["key"] == "@OBIAM_ENCRYPTION_KEY@"
    env_file = re.search(r"^\{\n(.*?)^\} > /etc/obiam/wso2.env", user_data(stack), re.M | re.S)
    assert env_file and "PASSWORD" not in env_file.group(1)


def test_values_that_could_escape_a_shell_string_are_refused(environments: dict[str, Any]) -> None:
    settings = bootstrap.settings_for(environments["dev"])
    with pytest.raises(ValueError, match="unsafe in shell/TOML"):
        bootstrap._refuse_unsafe_values(type(settings)(**{**vars(settings), "hostname": 'x"; rm -rf / #'}))



def test_no_pipeline_stops_reading_early_under_pipefail(stack: dict[str, Any]) -> None:
    # `cmd | head -1` (or grep -q) closes the pipe early; under `set -o pipefail` the SIGPIPE
    # it sends `cmd` fails the pipeline and `set -e` aborts the boot, depending on timing.
    script = user_data(stack)
    assert "set -euo pipefail" in script
    for line in script.splitlines():
        if line.lstrip().startswith("#"):
            continue
        assert not re.search(r"\|\s*(head|grep -q)\b", line), line


def test_the_shipped_config_tool_is_the_same_program_for_the_nodes_python() -> None:
    """The user data carries obiam_config.py without comments and docstrings (obiam/bootstrap/shipping.py):
    its syntax tree is the source's, docstrings aside, and it parses as Python 3.9, Amazon Linux 2023's
    /usr/bin/python3 (AL2023 User Guide, "Python in AL2023"). The boot rehearsal runs the shipped one."""
    import ast

    from obiam.bootstrap import CONFIG_TOOL, CONFIG_TOOL_PATH, node_files, settings_for, shipping

    source = CONFIG_TOOL.read_text(encoding="utf-8")
    shipped = node_files(settings_for(load_repo_environments()["prod"]))[CONFIG_TOOL_PATH]
    assert shipped == shipping.without_comments(source) and len(shipped) < len(source) * 0.85
    assert "#" not in "".join(line.split('"')[0] for line in shipped.splitlines())  # no comment survives
    ast.parse(shipped, feature_version=(3, 9))

    def without_docstrings(tree: ast.AST) -> str:
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                    and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
                node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
        return ast.dump(tree, include_attributes=False)

    shipped_tree, source_tree = ast.parse(shipped), ast.parse(source)
    for tree in (shipped_tree, source_tree):  # the module docstring is cut to its first line: compare without it
        assert isinstance(tree.body[0], ast.Expr)
        tree.body = tree.body[1:]
    assert without_docstrings(shipped_tree) == without_docstrings(source_tree)
