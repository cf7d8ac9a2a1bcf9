"""The repo's layout promises: no shadowed `constructs`, pinned versions, a working cdktf.json."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import ROOT


def test_constructs_is_the_library_not_our_folder() -> None:
    # Run from the repo root, where `constructs/` (our construct folder) is on sys.path.
    out = subprocess.run([sys.executable, "-c", "import constructs; print(constructs.__file__)"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out).parts[-3:] == ("site-packages", "constructs", "__init__.py"), out
    assert not (ROOT / "constructs" / "__init__.py").exists()


def test_construct_package_is_importable_from_the_constructs_folder() -> None:
    out = subprocess.run([sys.executable, "-c", "import wso2_on_aws; print(wso2_on_aws.__file__)"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out).resolve().is_relative_to(ROOT / "constructs" / "wso2_on_aws")


def test_direct_dependencies_are_pinned_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    assert requirements
    for requirement in requirements:
        assert "==" in requirement, f"{requirement} is not pinned exactly"


def test_installed_packages_match_the_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name, version = requirement.split("==")
        assert importlib.metadata.version(name) == version, name


def test_cdktf_cli_is_pinned_in_package_json_and_lock() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert package["devDependencies"]["cdktf-cli"] == "0.21.0"
    assert lock["packages"]["node_modules/cdktf-cli"]["version"] == "0.21.0"


def test_cdktf_json_runs_main_with_the_project_venv() -> None:
    config = json.loads((ROOT / "cdktf.json").read_text())
    assert config["language"] == "python"
    assert config["app"].split()[:2] == [".venv/bin/python", "main.py"]
    assert config["sendCrashReports"] == "false"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make synth" in readme
    assert "make test" in readme
    assert "make test" in ci
