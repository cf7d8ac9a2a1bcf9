"""The node boot script, as it sits (base64) in the synthesized launch template.

shellcheck runs on the script and on every script it installs; the deployment.toml
it writes is parsed with tomllib; the JSON with json.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from conftest import Synth
from obiam import bootstrap
from tfjson import deployment_toml, embedded_files, only, resources, user_data

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
    assert {"/opt/obiam/bin/db-init", "/opt/obiam/bin/refresh-cluster-members"} <= set(scripts)
    for path, body in scripts.items():
        shellcheck(body, tmp_path, Path(path).name)


def test_shellcheck_would_catch_a_broken_script(tmp_path: Path) -> None:
    with pytest.raises(AssertionError):
        shellcheck("#!/bin/bash\necho $UNQUOTED_VARIABLE\n", tmp_path, "broken.sh")


def test_user_data_fits_the_ec2_limit(synth: Synth) -> None:
    for name in synth.environments:
        assert len(user_data(synth.stack(name)).encode()) <= 16384, name


def test_user_data_is_plain_static_text(stack: dict[str, Any]) -> None:
    # No Terraform interpolation: the launch template changes only when the script does.
    assert "${" not in only(stack, "aws_launch_template")["user_data"]


def test_deployment_toml_sets_hostname_offset_proxy_port_and_health_check(stack: dict[str, Any],
                                                                           synth: Synth) -> None:
    toml = deployment_toml(stack)
    config = synth.environments[stack["//"]["metadata"]["stackName"]].config
    assert toml["server"]["hostname"] == config.load_balancer.hostname
    assert toml["server"]["offset"] == 3
    assert toml["transport"]["https"]["properties"]["proxyPort"] == 443
    assert toml["carbon_health_check"]["enable"] is True


def test_every_node_joins_one_cluster(stack: dict[str, Any]) -> None:
    clustering = deployment_toml(stack)["clustering"]
    name = stack["//"]["metadata"]["stackName"]
    assert clustering["membership_scheme"] == "wka"
    assert clustering["local_member_host"] == "@OBIAM_LOCAL_IP@"
    assert clustering["local_member_port"] == "5701"
    assert clustering["domain"] == f"wso2.obiam.{name}.domain"
    script = user_data(stack)
    # Members are listed before every start by the same tag and security group the nodes carry.
    unit = embedded_files(script)["/etc/systemd/system/wso2-obiam.service"]
    assert "ExecStartPre=+/opt/obiam/bin/refresh-cluster-members" in unit
    members = embedded_files(script)["/opt/obiam/bin/refresh-cluster-members"]
    assert f"Name=tag:obiam:cluster,Values=obiam-{name}" in members
    assert f"Name=instance.group-name,Values=obiam-{name}-nodes" in members


def test_aws_membership_scheme_renders_the_kernel_property_names(variants: dict[str, dict[str, Any]]) -> None:
    clustering = deployment_toml(variants["aws-discovery"])["clustering"]
    assert clustering["membership_scheme"] == "aws"
    assert clustering["properties"] == {
        "region": "eu-west-2", "securityGroup": "obiam-aws-discovery-nodes", "tagKey": "obiam:cluster",
        "tagValue": "obiam-aws-discovery", "iamRole": "obiam-aws-discovery-node"}
    assert "refresh-cluster-members" not in user_data(variants["aws-discovery"])


def test_refresh_members_rewrites_only_the_marked_block(tmp_path: Path, environments: dict[str, Any]) -> None:
    # Run the installed script's awk against the rendered toml with a fake member list.
    settings = bootstrap.settings_for(environments["dev"])
    toml = bootstrap.render_deployment_toml(settings)
    script = bootstrap.render("refresh-cluster-members.sh.j2", settings)
    awk = re.search(r"awk -v block=\"\$block\" '(.*?)' \"\$TOML\"", script, re.S)
    assert awk
    (tmp_path / "deployment.toml").write_text(toml)
    (tmp_path / "block").write_text('[[clustering.members]]\nhostName = "10.40.0.5"\nport = "5701"\n\n')
    out = subprocess.run(["awk", "-v", f"block={tmp_path / 'block'}", awk.group(1), str(tmp_path / "deployment.toml")],
                         capture_output=True, text=True, check=True).stdout
    parsed = tomllib.loads(out)
    assert parsed["clustering"]["members"] == [{"hostName": "10.40.0.5", "port": "5701"}]
    assert parsed["server"] == tomllib.loads(toml)["server"]


def test_heap_is_2g_by_default(cheapest: dict[str, Any]) -> None:
    assert 'readonly JVM_MEM_OPTS_VALUE="-Xms2048m -Xmx2048m"' in user_data(cheapest)
    assert "printf 'JVM_MEM_OPTS=%s\\n'" in user_data(cheapest)


def test_prod_heap_follows_the_config(prod: dict[str, Any]) -> None:
    assert 'readonly JVM_MEM_OPTS_VALUE="-Xms4096m -Xmx4096m"' in user_data(prod)


def test_bootstrap_installs_the_configured_jdk_and_fetches_the_pack(stack: dict[str, Any], synth: Synth) -> None:
    config = synth.environments[stack["//"]["metadata"]["stackName"]].config
    script = user_data(stack)
    assert 'readonly JDK_MAJOR="11"' in script
    assert '"java-$JDK_MAJOR-amazon-corretto-headless"' in script
    assert f'readonly PACK_S3_URI="{config.product.pack_s3_uri}"' in script
    assert 'aws s3 cp --region "$REGION" --only-show-errors "$PACK_S3_URI"' in script


def test_service_runs_wso2_unprivileged_after_the_artifact_mounts(stack: dict[str, Any]) -> None:
    unit = embedded_files(user_data(stack))["/etc/systemd/system/wso2-obiam.service"]
    assert "User=wso2carbon" in unit
    assert "EnvironmentFile=/etc/obiam/wso2.env" in unit
    mounts = re.search(r"^RequiresMountsFor=(.*)$", unit, re.M)
    assert mounts and sorted(mounts.group(1).split()) == sorted(
        f"/mnt/obiam-artifacts/{d}" for d in ("eventpublishers", "userstores", "eventstreams", "humantasks", "bpel"))


def test_logs_are_shipped_to_the_stack_log_groups(stack: dict[str, Any]) -> None:
    agent = json.loads(embedded_files(user_data(stack))[
        "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"])
    shipped = {f["log_group_name"] for f in agent["logs"]["logs_collected"]["files"]["collect_list"]}
    created = {g["name"] for g in resources(stack, "aws_cloudwatch_log_group").values()}
    assert shipped <= created
    assert {g.rsplit("/", 1)[-1] for g in shipped} == {"bootstrap", "carbon", "audit", "http-access"}


def test_no_secret_value_is_written_into_deployment_toml(stack: dict[str, Any]) -> None:
    toml = deployment_toml(stack)
    passwords = [toml["super_admin"]["password"], toml["user_store"]["connection_password"]]
    passwords += [section["password"] for section in toml["database"].values()]
    passwords += [ds["password"] for ds in toml["datasource"]]
    assert set(passwords) <= {"$env{OBIAM_DB_PASSWORD}", "$env{OBIAM_LDAP_PASSWORD}"}


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


@pytest.mark.parametrize("password", ['plain', 'with "quotes"', "back\\slash", "$HOME and `id`", "end\\"])
def test_secrets_are_quoted_for_the_systemd_environment_file(cheapest: dict[str, Any], password: str) -> None:
    # Run the script's own systemd_quote in bash, then undo systemd's double-quote escapes.
    (function,) = [line for line in user_data(cheapest).splitlines() if line.startswith("systemd_quote()")]
    out = subprocess.run(["bash", "-c", f'{function}\nsystemd_quote "$1"', "_", password], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith('"') and out.endswith('"')
    assert re.sub(r"\\(.)", r"\1", out[1:-1]) == password
    assert '"' not in re.sub(r"\\.", "", out[1:-1]), "an unescaped quote would end the value early"
