"""`obiam ami latest`: the newest image for the nodes, and the one config line that rolls it out.

A pinned `nodes.ami.id` keeps every apply from picking up whatever image AWS published last
(aws-apply-review finding 5). Patching the nodes is then a reviewed pull request that changes that
line, followed by `obiam rollout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from obiam.environments import Environment
from obiam.ops.aws import OpsError, lookup


@dataclass(frozen=True)
class Image:
    image_id: str
    name: str
    created: str
    architecture: str

    def describe(self) -> str:
        return f"{self.image_id} ({self.name}, {self.architecture}, created {self.created[:10]})"


def describe_image(ec2: Any, image_id: str) -> Image | None:
    images = lookup(lambda: ec2.describe_images(ImageIds=[image_id])["Images"],
                    missing={"InvalidAMIID.NotFound", "InvalidAMIID.Malformed"}) or []
    if not images:
        return None
    image = images[0]
    return Image(image["ImageId"], image.get("Name", "?"), image.get("CreationDate", "?"),
                 image.get("Architecture", "?"))


def latest_lines(ssm: Any, ec2: Any, environment: Environment) -> list[str]:
    ami = environment.config.nodes.ami
    assert ami is not None  # config requires it
    parameter = lookup(lambda: ssm.get_parameter(Name=ami.ssm_parameter)["Parameter"], missing={"ParameterNotFound"})
    if parameter is None:
        raise OpsError(f"SSM parameter {ami.ssm_parameter} (nodes.ami.ssm_parameter) not found in this region")
    newest = describe_image(ec2, parameter["Value"])
    if newest is None:
        raise OpsError(f"{ami.ssm_parameter} names {parameter['Value']}, which EC2 does not know in this region")
    lines = [f"newest:  {newest.describe()}, from {ami.ssm_parameter}"]
    if ami.id is None:
        lines.append(f"{environment.source}: nodes.ami floats (floating: true): every plan takes the newest image")
        return lines
    pinned = describe_image(ec2, ami.id)
    lines.insert(0, f"pinned:  {pinned.describe() if pinned else ami.id + ' (not found: deregistered?)'}")
    if ami.id == newest.image_id:
        lines.append(f"{environment.source} already pins the newest image; nothing to change")
        return lines
    lines += [f"To roll it out, change nodes.ami.id in {environment.source} (a reviewed pull request), deploy, "
              f"then `obiam rollout --env {environment.name}`:",
              "nodes:", "  ami:", f"    id: {newest.image_id}  # {newest.name}"]
    return lines
