"""Every bad environment file is rejected with one readable line per problem, never a traceback."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from configs import MINIMAL, with_values

from conftest import ROOT
from obiam.environments import ConfigError, load_all, load_environment, parse_environment

SOURCE = "environments/prod.yaml"
def problems(data: dict[str, Any], name: str = "prod") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_environment(name, data, SOURCE)
    return caught.value.problems


def test_minimal_file_is_a_production_environment() -> None:
    config = parse_environment("prod", copy.deepcopy(MINIMAL), SOURCE).config
    assert config.tier == "production"
    assert config.nodes.min_size >= 2
    assert config.availability_zone_count == 3
    assert config.data_protection.prevent_destroy


@pytest.mark.parametrize(("data", "expected"), [
    (with_values(nodes={"instance_type": "t3.small"}),
     "environments/prod.yaml: nodes.instance_type = 't3.small': has 2 GiB of memory; WSO2 needs at least 4 GiB"),
    (with_values(nodes={"instance_type": "x9.huge"}),
     "environments/prod.yaml: nodes.instance_type = 'x9.huge': unknown instance type; allowed: t3.{medium,"),
    (with_values(nodes={"root_volume_size": 8}),
     "environments/prod.yaml: nodes.root_volume_size = 8: allowed: at least 10 GiB"),
    (with_values(nodes={"jvm_heap_mib": 1024}),
     "environments/prod.yaml: nodes.jvm_heap_mib = 1024: allowed: at least 2048 MiB"),
    (with_values(nodes={"instance_type": "t3.medium", "jvm_heap_mib": 3072}),
     "environments/prod.yaml: nodes.jvm_heap_mib = 3072: leaves 1024 MiB of the 4096 MiB of t3.medium to the OS"),
    (with_values(nodes={"jdk": "1.8.0_151"}),
     "environments/prod.yaml: nodes.jdk = '1.8.0_151': WSO2's deployment guide names a known issue with JDK "
     "1.8.0_151"),
    (with_values(nodes={"min_size": 1, "desired_capacity": 1}),
     "environments/prod.yaml: nodes.min_size = 1: production needs at least 2 nodes"),
    (with_values(nodes={"min_size": 4, "max_size": 3, "desired_capacity": 3}),
     "environments/prod.yaml: nodes.min_size = 4: must not exceed max_size (3)"),
    (with_values(nodes={"min_size": 2, "max_size": 4, "desired_capacity": 5}),
     "environments/prod.yaml: nodes.desired_capacity = 5: allowed: between min_size (2) and max_size (4)"),
    (with_values(database={"engine": "db2"}),
     "environments/prod.yaml: database.engine = 'db2': Input should be 'mysql', 'postgres'"),
    (with_values(network={"vpc_cidr": "10.0.0.0/33"}),
     "environments/prod.yaml: network.vpc_cidr = '10.0.0.0/33': allowed: an IPv4 network in CIDR notation"),
    (with_values(load_balancer={"certificate_arn": "arn:aws:acm:eu-west-2:1:certificate/x"}),
     "environments/prod.yaml: load_balancer.certificate_arn = 'arn:aws:acm:eu-west-2:1:certificate/x': allowed: "
     "an ACM certificate ARN"),
    (with_values(product={"pack_s3_uri": "https://example.com/wso2.zip"}),
     "environments/prod.yaml: product.pack_s3_uri = 'https://example.com/wso2.zip': allowed: s3://<bucket>/<key>"),
    (with_values(product={"pack_sha256": "16D67B308763CB50B7FAD336E8507680377C6FF6E36462ED9D82F60E97A8F509"}),
     "environments/prod.yaml: product.pack_sha256 = '16D67B308763CB50B7FAD336E8507680377C6FF6E36462ED9D82F60E97A8F50"
     "9': allowed: the pack's SHA-256 as 64 lower-case hex digits"),
    ({**with_values(), "product": {k: v for k, v in MINIMAL["product"].items() if k != "pack_sha256"}},
     "environments/prod.yaml: product.pack_sha256"),
    (with_values(databse={"engine": "mysql"}),
     "environments/prod.yaml: databse = {...}: unknown key (did you mean 'database'?); allowed keys in the top "
     "level: tier, account, region,"),
    (with_values(nodes={"instance_typ": "m6i.large"}),
     "environments/prod.yaml: nodes.instance_typ = 'm6i.large': unknown key (did you mean 'instance_type'?); "
     "allowed keys in nodes: instance_type,"),
    ({k: v for k, v in with_values().items() if k != "account"},
     "environments/prod.yaml: account: required"),
    (with_values(account={"id": 111111111111}),
     "environments/prod.yaml: account.id = 111111111111: Input should be a valid string (YAML read 111111111111 "
     "as a number: quote it"),
    (with_values(account={"id": "222222222222"}),
     "environments/prod.yaml: load_balancer.certificate_arn = 'arn:aws:acm:eu-west-2:111111111111:certificate/"),
    (with_values(account={"id": "111111111111", "assume_role_arn": "arn:aws:iam::222222222222:role/deploy"}),
     "environments/prod.yaml: account.assume_role_arn = 'arn:aws:iam::222222222222:role/deploy': allowed: a role "
     "in the environment's own account 111111111111"),
], ids=["memory-under-4gib", "unknown-instance-type", "disk-under-10gib", "heap-under-2gib",
        "heap-starves-os", "jdk-1.8.0_151", "prod-single-node", "min-over-max", "desired-outside-range",
        "unknown-db-engine", "malformed-cidr", "malformed-arn", "malformed-s3-uri", "pack-sha256-upper-case",
        "pack-sha256-missing", "unknown-top-level-key",
        "unknown-nested-key", "account-missing", "account-id-not-a-string", "certificate-of-another-account",
        "role-of-another-account"])
def test_bad_value_is_reported_with_file_path_value_and_what_is_allowed(data: dict[str, Any], expected: str) -> None:
    found = problems(data)
    assert any(line.startswith(expected) for line in found), "\n".join(found)


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    found = problems(with_values(nodes={"instance_type": "t3.small", "root_volume_size": 8},
                                 database={"engine": "db2"}, network={"vpc_cidr": "nope"}))
    assert len(found) == 4
    assert all(line.startswith("environments/prod.yaml: ") for line in found)


def test_missing_required_fields_are_named() -> None:
    found = problems({})
    for field in ("product", "load_balancer", "tags", "state"):
        assert f"environments/prod.yaml: {field}: required, and has no default" in found


def test_yaml_boolean_gotcha_is_explained() -> None:
    found = problems(with_values(network={"nat_gateways": False}))
    assert any("quote the value" in line for line in found), found


def test_unquoted_version_number_is_explained() -> None:
    found = problems(with_values(database={"engine_version": 8.0}))
    assert any('quote it, e.g. "8.0"' in line for line in found), found


def test_jdk_must_fit_the_product_version() -> None:
    found = problems(with_values(nodes={"jdk": "8"}))
    assert any(line.startswith("environments/prod.yaml: nodes.jdk = '8': WSO2 OB 3.0.0 runs on JDK 11")
               for line in found), found


def test_certificate_must_be_in_the_stack_region() -> None:
    found = problems(with_values(region="us-east-1"))
    assert any("load_balancer.certificate_arn" in line and "its own region (us-east-1)" in line for line in found)


def test_production_cannot_switch_off_data_protection() -> None:
    found = problems(with_values(data_protection={"prevent_destroy": False}))
    assert "environments/prod.yaml: data_protection.prevent_destroy = False: must stay true in production" in found


def test_non_production_may_run_a_single_node() -> None:
    config = parse_environment("dev", with_values(tier="development", nodes={"min_size": 1, "desired_capacity": 1}),
                               SOURCE).config
    assert config.nodes.min_size == 1


def test_extra_tags_cannot_override_the_toolkit_tags() -> None:
    found = problems(with_values(tags={"extra": {"Environment": "prod2"}}))
    assert any(line.startswith("environments/prod.yaml: tags.extra.Environment = 'prod2': tag key is reserved")
               for line in found), found


def test_dynamodb_lock_needs_a_table() -> None:
    found = problems(with_values(state={"lock": "dynamodb"}))
    assert "environments/prod.yaml: state.dynamodb_table: required when lock is dynamodb" in found


def test_environment_name_must_fit_aws_resource_names() -> None:
    found = problems(copy.deepcopy(MINIMAL), name="Production_EU_West_2")
    assert found[0].startswith("environments/prod.yaml: environment name 'Production_EU_West_2': allowed: 2-20")


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def test_unreadable_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "prod", "region: eu-west-2\nnodes: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_environment(path, tmp_path)
    assert caught.value.problems[0].startswith("prod.yaml: not valid YAML: line ")


def test_duplicate_keys_are_rejected_not_silently_merged(tmp_path: Path) -> None:
    path = write(tmp_path, "prod", yaml.safe_dump(MINIMAL) + "state:\n  bucket: other-bucket\n")
    with pytest.raises(ConfigError) as caught:
        load_environment(path, tmp_path)
    assert "duplicate key 'state'" in caught.value.problems[0]


def test_non_mapping_file_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "prod", "- just\n- a list\n")
    with pytest.raises(ConfigError) as caught:
        load_environment(path, tmp_path)
    assert caught.value.problems == ["prod.yaml: the top level must be a mapping of keys to values, not a list"]


def test_problems_from_every_file_are_collected(tmp_path: Path) -> None:
    write(tmp_path, "prod", yaml.safe_dump(with_values(nodes={"instance_type": "t3.small"})))
    write(tmp_path, "dev", "tier: development\n")
    with pytest.raises(ConfigError) as caught:
        load_all(tmp_path, tmp_path)
    sources = {line.split(":")[0] for line in caught.value.problems}
    assert sources == {"prod.yaml", "dev.yaml"}


def test_repo_environments_are_all_valid() -> None:
    names = {e.name for e in load_all(ROOT / "environments", ROOT)}
    assert {"prod", "staging", "dev", "ephemeral"} <= names


def run_main(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=120)


def test_bad_file_exits_non_zero_without_traceback_or_output(tmp_path: Path) -> None:
    envs = tmp_path / "environments"
    envs.mkdir()
    write(envs, "prod", yaml.safe_dump(with_values(nodes={"instance_type": "t3.small", "jdk": "1.8.0_151"})))
    result = run_main("--environments-dir", str(envs), "--outdir", str(tmp_path / "cdktf.out"), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Configuration error (2 problem(s)); nothing was synthesized:"
    assert any("nodes.instance_type = 't3.small'" in line for line in lines)
    assert any("nodes.jdk = '1.8.0_151'" in line for line in lines)
    assert not (tmp_path / "cdktf.out").exists()


def test_unknown_environment_argument_is_an_error(tmp_path: Path) -> None:
    result = run_main("--environments-dir", str(ROOT / "environments"), "--outdir", str(tmp_path / "out"), "prdo",
                      cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown environment 'prdo'; environments/ has: dev, prod, staging" in result.stderr
    assert "Traceback" not in result.stderr


def test_hazelcast_aws_discovery_with_imdsv2_only_is_rejected_with_the_reason() -> None:
    found = problems(with_values(tier="development", product={"clustering": {"membership_scheme": "aws"}}))
    assert any(line.startswith("environments/prod.yaml: product.clustering.membership_scheme = 'aws': the "
                               "Hazelcast in WSO2 OB 3.0.0 fetches AWS credentials through IMDSv1 only")
               for line in found), found


def test_production_nodes_cannot_allow_imdsv1() -> None:
    found = problems(with_values(nodes={"metadata_http_tokens": "optional"}))
    assert any(line.startswith("environments/prod.yaml: nodes.metadata_http_tokens = 'optional': production nodes "
                               "require IMDSv2") for line in found), found


def test_ephemeral_environments_switch_every_protection_off() -> None:
    found = problems(with_values(tier="ephemeral", ephemeral={"ttl_hours": 24}))
    assert any(line.startswith("environments/prod.yaml: data_protection = ") and "one destroy removes them" in line
               for line in found), found


def test_every_engines_jdbc_driver_reaches_the_node_from_the_pack_or_s3() -> None:
    """IS 5.11 ships H2's driver only: wso2/product-is v5.11.0 LICENSE.txt lists h2-1.4.199 and no
    MySQL or PostgreSQL connector; OB 3.0 "Setting up databases" step 3 adds the DBMS driver. The pack
    `obiam pack build` makes carries it (`--jdbc-driver`, checked by `obiam pack verify --engine`), so the
    S3 jar is optional; the node's boot script refuses a components/lib without the engine's driver class."""
    from obiam import bootstrap
    from obiam.environments import parse_environment

    for engine, driver_class in (("mysql", "com/mysql/cj/jdbc/Driver.class"),
                                 ("postgres", "org/postgresql/Driver.class")):
        data = with_values(tier="staging", database={"engine": engine, "jdbc_driver_s3_uri": None})
        environment = parse_environment("staging", data, "environments/staging.yaml")  # no driver URI: valid
        script = bootstrap.render_user_data(bootstrap.settings_for(environment))
        assert f"grep -xF '{driver_class}'" in script
        assert 'no jar in $lib has' in script
        assert "[[ -z $JDBC_DRIVER_S3_URI ]] || aws s3 cp" in script


def test_ldaps_is_refused_until_the_nodes_can_trust_and_resolve_the_directory() -> None:
    found = problems(with_values(directory={"type": "MicrosoftAD", "ldaps": True}))
    assert any(line.startswith("environments/prod.yaml: directory.ldaps = True: not built yet: LDAPS needs the "
                               "directory's certificate authority") for line in found), found


def test_simple_ad_cannot_use_ldaps() -> None:
    found = problems(with_values(directory={"type": "SimpleAD", "ldaps": True}))
    assert "environments/prod.yaml: directory.ldaps = True: Simple AD does not offer LDAPS; use MicrosoftAD for it" \
        in found


def test_pack_uri_with_shell_characters_is_rejected() -> None:
    found = problems(with_values(product={"pack_s3_uri": "s3://bucket-a/wso2$(reboot).zip"}))
    assert any(line.startswith("environments/prod.yaml: product.pack_s3_uri = 's3://bucket-a/wso2$(reboot).zip': "
                               "allowed: s3://") for line in found), found


def test_outdir_holding_a_checkout_is_refused_and_left_intact(tmp_path: Path) -> None:
    """`--outdir .` once replaced a whole checkout, .git included (issue 13): never again."""
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (checkout / "notes.txt").write_text("mine\n")
    result = run_main("--environments-dir", str(ROOT / "environments"), "--outdir", ".", cwd=checkout)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "--outdir .: holds files this command did not write ('.git', 'notes.txt')" in result.stderr
    assert (checkout / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert sorted(p.name for p in checkout.iterdir()) == [".git", "notes.txt"]


def test_outdir_that_contains_the_environments_directory_is_refused(tmp_path: Path) -> None:
    envs = tmp_path / "config" / "environments"
    envs.mkdir(parents=True)
    write(envs, "prod", yaml.safe_dump(with_values()))
    result = run_main("--environments-dir", str(envs), "--outdir", str(tmp_path / "config"), cwd=tmp_path)
    assert result.returncode == 2
    assert f"--outdir {tmp_path / 'config'}: is or contains {envs}" in result.stderr
    assert (envs / "prod.yaml").exists()


def test_an_environments_directory_with_nothing_to_synthesize_keeps_the_previous_output(tmp_path: Path) -> None:
    envs = tmp_path / "environments"
    envs.mkdir()
    # The template alone, without the branch base it names (which would be a stack to synthesize).
    template = yaml.safe_load((ROOT / "environments" / "ephemeral.yaml").read_text())
    del template["ephemeral"]["base"]
    template["database"] = yaml.safe_load((ROOT / "environments" / "ephemeral-base.yaml").read_text())["database"]
    write(envs, "ephemeral", yaml.safe_dump(template))
    previous = tmp_path / "cdktf.out"
    (previous / "stacks" / "prod").mkdir(parents=True)
    (previous / "manifest.json").write_text("{}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBIAM_EPHEMERAL")}
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "--environments-dir", str(envs), "--outdir",
                             str(previous)], cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
                            timeout=120)
    assert result.returncode == 2
    assert "nothing to synthesize" in result.stderr
    assert (previous / "manifest.json").read_text() == "{}"


def test_only_missing_empty_or_earlier_synth_output_directories_may_be_replaced(tmp_path: Path) -> None:
    from stacks.app import OUTPUT_MARKER, check_output_directory

    check_output_directory(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_output_directory(tmp_path / "empty")
    marked = tmp_path / "marked"
    marked.mkdir()
    (marked / OUTPUT_MARKER).write_text("")
    (marked / "whatever-cdktf-adds-later").write_text("")
    check_output_directory(marked)
    unmarked = tmp_path / "older-synth"
    (unmarked / "stacks").mkdir(parents=True)
    (unmarked / "manifest.json").write_text("{}")
    check_output_directory(unmarked)
    (tmp_path / "file").write_text("")
    for refused in (tmp_path / "file", tmp_path):
        with pytest.raises(ConfigError):
            check_output_directory(refused)


def test_alb_client_certificate_passthrough_is_refused_with_the_reason() -> None:
    """financial-open-banking 3.0.0 identity TokenFilter URL-decodes the client certificate header and
    CertificateUtils strips spaces before base64-decoding; the ALB forwards X-Amzn-Mtls-Clientcert
    URL-encoded with '+' left as is (ELB User Guide, "Mutual authentication with TLS"), so every
    certificate whose base64 holds a '+' arrives corrupted."""
    found = problems(with_values(load_balancer={**with_values()["load_balancer"],
                                                "mutual_authentication": {"mode": "passthrough"}}))
    assert any(line.startswith("environments/prod.yaml: load_balancer.mutual_authentication.mode = 'passthrough': "
                               "WSO2 OB 3.0 cannot read the certificate the ALB forwards") for line in found), found


def test_an_outdir_through_a_symbolic_link_loop_is_refused_without_a_traceback(tmp_path: Path) -> None:
    from stacks.app import check_output_directory

    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(ConfigError) as caught:
        check_output_directory(tmp_path / "loop" / "out", protected=(tmp_path / "loop",))
    assert caught.value.problems == [f"--outdir {tmp_path}/loop/out: is or passes through a symbolic link loop; "
                                     "allowed: a new or empty directory, or one this command wrote before"]
