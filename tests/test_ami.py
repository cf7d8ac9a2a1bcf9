"""`obiam ami latest` against moto's EC2 and SSM (which serve AWS's public AL2023 parameters and
images), and the config rule that the image is pinned or floats on purpose. About 2 s (moto loads
its public images)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from configs import with_values
from typer.testing import CliRunner

from obiam.cli import app
from obiam.environments import ConfigError, parse_environment

REGION = "eu-west-2"
PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64"
MOTO_ACCOUNT = "123456789012"


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_PROFILE", "MOTO_EC2_LOAD_DEFAULT_AMIS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def write_environment(directory: Path, ami: dict[str, Any]) -> None:
    directory.mkdir()
    data = with_values(account={"id": MOTO_ACCOUNT}, nodes={"ami": {"ssm_parameter": PARAMETER, **ami}},
                       load_balancer={"certificate_arn": f"arn:aws:acm:{REGION}:{MOTO_ACCOUNT}:certificate/"
                                                         "0b7c2d6e-4a1f-4c3e-9d2b-5e6f7a8b9c0d"})
    (directory / "prod.yaml").write_text(json.dumps(data))


def newest(session: Any) -> str:
    return str(session.client("ssm").get_parameter(Name=PARAMETER)["Parameter"]["Value"])


def test_ami_latest_prints_the_newest_image_and_the_line_that_pins_it(moto: Any, tmp_path: Path) -> None:
    older = moto.client("ec2").register_image(Name="al2023-ami-2023.6.20250101.0-kernel-6.1-x86_64",
                                              Architecture="x86_64", RootDeviceName="/dev/xvda")["ImageId"]
    write_environment(tmp_path / "environments", {"id": older})
    result = CliRunner().invoke(app, ["ami", "latest", "--env", "prod", "--environments-dir",
                                      str(tmp_path / "environments")])
    assert result.exit_code == 0, result.output
    image = newest(moto)
    lines = result.output.splitlines()
    assert lines[0].startswith(f"pinned:  {older} (al2023-ami-2023.6.20250101.0-kernel-6.1-x86_64, ")
    assert lines[1].startswith(f"newest:  {image} (al2023-ami-2023.") and lines[1].endswith(PARAMETER)
    assert lines[-3:-1] == ["nodes:", "  ami:"]
    assert lines[-1].startswith(f"    id: {image}  # al2023-ami-2023.")
    assert "then `obiam rollout --env prod`" in result.output


def test_ami_latest_says_when_the_pin_is_the_newest(moto: Any, tmp_path: Path) -> None:
    write_environment(tmp_path / "environments", {"id": newest(moto)})
    result = CliRunner().invoke(app, ["ami", "latest", "--env", "prod", "--environments-dir",
                                      str(tmp_path / "environments")])
    assert result.exit_code == 0 and result.output.splitlines()[-1].endswith(
        "already pins the newest image; nothing to change")


@pytest.mark.parametrize(("ami", "expected"), [
    ({}, "nodes.ami.id: required: pin the node image (`obiam ami latest --env <env>` prints the newest"),
    (None, "nodes.ami.id: required: pin the node image"),
    ({"id": "ami-0e5df6fd7455a69b3", "floating": True}, "nodes.ami.floating = True: a pinned id never floats"),
], ids=["neither-pinned-nor-floating", "no-image-at-all", "pinned-and-floating"])
def test_the_node_image_is_pinned_or_floats_on_purpose(ami: dict[str, Any] | None, expected: str) -> None:
    data = with_values()
    if ami is None:
        del data["nodes"]["ami"]
    else:
        data["nodes"]["ami"] = ami
    with pytest.raises(ConfigError) as caught:
        parse_environment("prod", data, "environments/prod.yaml")
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems
