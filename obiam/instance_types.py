"""Memory of the EC2 instance types the toolkit allows for IAM nodes.

WSO2 asks for at least 4 GB per node: 2 GB for the JVM heap and 2 GB for the
operating system. The config model checks the chosen type against this table
offline; `obiam preflight` asks DescribeInstanceTypes in the target region.

Source: AWS, "Amazon EC2 instance type specifications", memory (GiB) column of
https://docs.aws.amazon.com/ec2/latest/instancetypes/gp.html (t3, t3a, m*),
.../co.html (c*) and .../mo.html (r*). Only x86_64 families are listed: the
default AMI is the x86_64 Amazon Linux 2023 image, and WSO2 tests its packs on
x86_64 JDKs. Types under 4 GiB are listed too, so that choosing one is reported
as "too small" rather than "unknown".
"""

from __future__ import annotations

MIN_NODE_MEMORY_MIB = 4096
MIN_OS_MEMORY_MIB = 2048
MIN_HEAP_MIB = 2048

_T_SIZES: dict[str, float] = {"nano": 0.5, "micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16, "2xlarge": 32}
_GENERAL: dict[str, float] = {
    "large": 8, "xlarge": 16, "2xlarge": 32, "4xlarge": 64,
    "8xlarge": 128, "12xlarge": 192, "16xlarge": 256,
}
_COMPUTE: dict[str, float] = {
    "large": 4, "xlarge": 8, "2xlarge": 16, "4xlarge": 32,
    "8xlarge": 64, "12xlarge": 96, "16xlarge": 128,
}
_COMPUTE_C5: dict[str, float] = {
    "large": 4, "xlarge": 8, "2xlarge": 16, "4xlarge": 32,
    "9xlarge": 72, "12xlarge": 96, "18xlarge": 144,
}
_MEMORY: dict[str, float] = {"large": 16, "xlarge": 32, "2xlarge": 64, "4xlarge": 128, "8xlarge": 256, "16xlarge": 512}

MEMORY_GIB_BY_FAMILY: dict[str, dict[str, float]] = {
    "t3": _T_SIZES,
    "t3a": _T_SIZES,
    "m5": _GENERAL,
    "m6i": _GENERAL,
    "m6a": _GENERAL,
    "m7i": _GENERAL,
    "m7a": {"medium": 4.0, **_GENERAL},
    "c5": _COMPUTE_C5,
    "c6i": _COMPUTE,
    "c6a": _COMPUTE,
    "c7i": _COMPUTE,
    "r5": _MEMORY,
    "r6i": _MEMORY,
    "r7i": _MEMORY,
}

MEMORY_MIB: dict[str, int] = {
    f"{family}.{size}": int(gib * 1024)
    for family, sizes in MEMORY_GIB_BY_FAMILY.items()
    for size, gib in sizes.items()
}


def memory_mib(instance_type: str) -> int | None:
    """The instance type's memory in MiB, or None when the type is not in the table."""
    return MEMORY_MIB.get(instance_type)


def allowed_types() -> list[str]:
    """Every type with enough memory for a node, cheapest-looking first within a family."""
    return [t for t, mib in MEMORY_MIB.items() if mib >= MIN_NODE_MEMORY_MIB]


def describe_known_types() -> str:
    """The allowed types, compactly: `t3.{medium,large}, m6i.{large,xlarge,...}`."""
    parts = []
    for family, sizes in MEMORY_GIB_BY_FAMILY.items():
        ok = [s for s, gib in sizes.items() if gib * 1024 >= MIN_NODE_MEMORY_MIB]
        parts.append(f"{family}.{{{','.join(ok)}}}")
    return ", ".join(parts)
