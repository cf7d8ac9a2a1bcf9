"""The wheel carries what the code reads at run time: the node boot script's templates.

`obiam.bootstrap` loads its Jinja templates with `jinja2.PackageLoader("obiam.bootstrap", "templates")`,
so they must travel as package data (setuptools, "Data Files Support": `[tool.setuptools.package-data]`).
The test builds the wheel as a user would (`pip wheel . --no-deps`, build isolation with the pinned
setuptools from the configured, offline index), installs it into a bare directory, and has the
boot script's Jinja loader find them there.

Cost: one wheel build and an import in a subprocess, ~4 s; builds in a copy so the checkout gets no
`build/` or egg-info.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT

TEMPLATES = sorted(p.name for p in (ROOT / "obiam" / "bootstrap" / "templates").glob("*.j2"))


def test_the_wheel_carries_the_bootstrap_templates_and_the_installed_package_finds_them(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    for package in ("obiam", "stacks", "constructs"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--quiet", "-w", str(tmp_path / "dist")],
                   cwd=source, env=env, check=True, capture_output=True, text=True)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert TEMPLATES, "the templates folder moved: update this test"
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("obiam/bootstrap/templates/")) == TEMPLATES
    assert any(n.startswith("wso2_on_aws/") for n in names) and any(n.startswith("stacks/") for n in names)
    assert not any(n.startswith(("tests/", "constructs/")) for n in names), "test code or the bare folder shipped"

    installed = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(installed),
                    str(wheel)], env=env, check=True, capture_output=True, text=True)
    # Only the installed copy (and the venv's third-party packages): not the checkout.
    probe = (f"import sys; sys.path.insert(0, {str(installed)!r}); import obiam.bootstrap as b; "
             f"assert b.__file__.startswith({str(installed)!r}), b.__file__; "
             "print(sorted(b._TEMPLATES.list_templates()))")
    out = subprocess.run([sys.executable, "-I", "-c", probe], cwd=tmp_path, check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == str(TEMPLATES)
