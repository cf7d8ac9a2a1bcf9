"""Shared fixtures.

The AWS provider bindings cost ~7-10 s to import, so the synthesized stacks are
built once per test session (`synth`), in one App, and every test reads JSON.
Tests that do not ask for `synth` never import cdktf.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, settings

from obiam import ephemeral
from obiam.config import BranchBaseConfig, EnvironmentConfig
from obiam.environments import EPHEMERAL_TEMPLATE, BranchBase, Environment, load_all, load_catalog

if TYPE_CHECKING:
    from tests.rehearsal.session import Rehearsal

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

# Hypothesis profiles, chosen by HYPOTHESIS_PROFILE: ci (the default: derandomized, the same examples
# every run, so CI never flakes on a new one), explore (200 random examples), long (5,000 random
# examples for the fuzz tests of tests/test_fuzz_input.py; minutes).
_QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
settings.register_profile("ci", derandomize=True, deadline=None, database=None, suppress_health_check=_QUIET)
settings.register_profile("explore", deadline=None, max_examples=200, suppress_health_check=_QUIET)
settings.register_profile("long", deadline=None, max_examples=5000, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS_DIR = ROOT / "environments"
EPHEMERAL_BRANCH = "feature/JIRA-123-login-page"
EPHEMERAL_CREATED_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
CHECKOV_TEST = "test_security_gates.py::test_checkov_accepts_nothing_outside_the_reviewed_skip_file"


def load_repo_bases() -> dict[str, BranchBase]:
    """The repo's branch bases (`kind: branch-base`): environments/ephemeral-base.yaml."""
    return {b.name: b for b in load_catalog(ENVIRONMENTS_DIR, ROOT).bases}


def load_repo_environments() -> dict[str, Environment]:
    environments = {e.name: e for e in load_all(ENVIRONMENTS_DIR, ROOT)}
    template = environments.pop(EPHEMERAL_TEMPLATE)
    branch_env = ephemeral.from_template(template, EPHEMERAL_BRANCH, EPHEMERAL_CREATED_AT)
    environments[branch_env.name] = branch_env
    return environments


@dataclass
class Synth:
    """Synthesized output of every repo environment, one ephemeral branch environment and the branch
    base it stands on."""

    outdir: Path
    environments: dict[str, Environment]
    bases: dict[str, BranchBase] = field(default_factory=dict)
    checkov: subprocess.Popen[str] | None = None
    _cache: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ephemeral_name(self) -> str:
        return ephemeral.stack_name(EPHEMERAL_BRANCH)

    @property
    def server_stacks(self) -> dict[str, EnvironmentConfig | BranchBaseConfig]:
        """Every stack with a database server and directory of its own, and its config: the environments
        that stand on no branch base, and the branch bases."""
        return {**{n: e.config for n, e in self.environments.items() if e.base is None},
                **{n: b.config for n, b in self.bases.items()}}

    def path(self, name: str) -> Path:
        return self.outdir / "stacks" / name / "cdk.tf.json"

    def stack(self, name: str) -> dict[str, Any]:
        if name not in self._cache:
            self._cache[name] = json.loads(self.path(name).read_text())
        return self._cache[name]


@pytest.fixture(scope="session")
def environments() -> dict[str, Environment]:
    return load_repo_environments()


@dataclass
class SecondCheckout:
    """`python main.py` running in a copy of the repo at another path, started in the background."""

    path: Path
    process: subprocess.Popen[str]


@pytest.fixture(scope="session")
def second_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondCheckout]:
    # Started before the in-process synthesis so its provider load runs on the other core.
    checkout = tmp_path_factory.mktemp("second") / "another checkout"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(
        ".venv*", "node_modules", "cdktf.out*", ".git", "*_cache", ".hypothesis", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBIAM_EPHEMERAL")}
    # Our modules from the copy, not from the editable install that points at ROOT.
    env["PYTHONPATH"] = os.pathsep.join([str(checkout), str(checkout / "constructs")])
    process = subprocess.Popen([sys.executable, "main.py", "--quiet"], cwd=checkout, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield SecondCheckout(checkout, process)
    if process.poll() is None:
        process.kill()
    process.communicate()


@pytest.fixture(scope="session")
def synth(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          environments: dict[str, Environment], second_checkout: SecondCheckout) -> Iterator[Synth]:
    from obiam import checkov_gate
    from stacks.app import release_jsii_runtime, synthesize

    outdir = tmp_path_factory.mktemp("synth") / "cdktf.out"
    bases = load_repo_bases()
    synthesize([*environments.values(), *bases.values()], outdir)
    result = Synth(outdir=outdir, environments=environments, bases=bases)
    # checkov reads the stacks in its own process; started now, it runs on the other core
    # while the rest of the suite inspects JSON (tests/test_security_gates.py collects it).
    if any(CHECKOV_TEST in item.nodeid for item in request.session.items):
        result.checkov = checkov_gate.start({n: result.path(n) for n in [*environments, *bases]},
                                            tmp_path_factory.mktemp("checkov"))
    yield result
    if result.checkov is not None and result.checkov.poll() is None:
        result.checkov.kill()
        result.checkov.communicate()
    # Session fixtures tear down in reverse order, so every synthesis is done by now.
    release_jsii_runtime()


EXAMPLES_DIR = ENVIRONMENTS_DIR / "examples"


def load_examples() -> dict[str, Environment]:
    """environments/examples/*.yaml: the supported shapes the repo's environments do not cover (existing
    VPC, PostgreSQL, SQL Server, Oracle, internal ALB, Simple AD), as files a user can copy."""
    return {e.name: e for e in load_all(EXAMPLES_DIR, ROOT)}


VARIANTS = tuple(sorted(load_examples()))


def with_changes(environment: Environment, name: str | None = None, **changes: Any) -> Environment:
    """The environment's config with sections changed (merged one level deep), validated again; a
    branch environment keeps its branch, expiry and branch base."""
    from obiam.environments import parse_environment

    data = environment.config.model_dump(exclude_none=True)
    for section, values in changes.items():
        data[section] = {**data.get(section, {}), **values} if isinstance(values, dict) else values
    return parse_environment(name or environment.name, data, f"{environment.source} (changed in a test)",
                             branch=environment.branch, expires_at=environment.expires_at, base=environment.base)


def variant_environment(name: str, environments: dict[str, Environment] | None = None) -> Environment:
    """The example `name` (environments/examples/<name>.yaml); `environments` is no longer needed."""
    return load_examples()[name]


@dataclass
class Examples:
    """environments/examples/ synthesized in one more App (the provider is already loaded), and checkov
    started on them at once, on the other core."""

    outdir: Path
    environments: dict[str, Environment]
    checkov: subprocess.Popen[str] | None = None


@pytest.fixture(scope="session")
def examples(tmp_path_factory: pytest.TempPathFactory, synth: Synth) -> Iterator[Examples]:
    from obiam import checkov_gate
    from stacks.app import synthesize

    chosen = load_examples()
    outdir = tmp_path_factory.mktemp("variants") / "cdktf.out"
    synthesize(list(chosen.values()), outdir)
    result = Examples(outdir, chosen)
    result.checkov = checkov_gate.start({n: outdir / "stacks" / n / "cdk.tf.json" for n in chosen},
                                        tmp_path_factory.mktemp("checkov-examples"))
    yield result
    if result.checkov.poll() is None:
        result.checkov.kill()
        result.checkov.communicate()


@pytest.fixture(scope="session")
def variants(examples: Examples) -> dict[str, dict[str, Any]]:
    """The examples' synthesized stacks, by name."""
    return {name: json.loads((examples.outdir / "stacks" / name / "cdk.tf.json").read_text()) for name in VARIANTS}


@pytest.fixture(scope="session")
def prod(synth: Synth) -> dict[str, Any]:
    return synth.stack("prod")


@pytest.fixture(scope="session")
def cheapest(synth: Synth) -> dict[str, Any]:
    """The per-branch ephemeral environment: the cheapest shape the toolkit builds."""
    return synth.stack(synth.ephemeral_name)


@pytest.fixture(params=["prod", "ephemeral"])
def stack(request: pytest.FixtureRequest, synth: Synth) -> dict[str, Any]:
    """Runs a test for prod and for the cheapest environment."""
    name = synth.ephemeral_name if request.param == "ephemeral" else request.param
    return synth.stack(name)


BRANCH_BASE = "ephemeral-base"


@pytest.fixture(params=["prod", BRANCH_BASE])
def servers_stack(request: pytest.FixtureRequest, synth: Synth) -> dict[str, Any]:
    """Runs a test for prod and for the stack that holds the cheapest environments' network, database
    server and directory: the branch base the per-branch environments stand on."""
    return synth.stack(request.param)


@pytest.fixture(params=["prod", "dev"])
def own_servers(request: pytest.FixtureRequest, synth: Synth) -> dict[str, Any]:
    """Runs a test for prod and for the cheapest environment with its own network, database and directory
    (dev): rules between the nodes and the servers of one stack."""
    return synth.stack(request.param)


@pytest.fixture(scope="session")
def branch_base(synth: Synth) -> dict[str, Any]:
    return synth.stack(BRANCH_BASE)


# -- the boot rehearsal (tests/rehearsal): run in the background, asserted last ---------------------------

REHEARSAL: pytest.StashKey[Rehearsal] = pytest.StashKey()
REHEARSAL_VARIANT = "postgres"  # the example the rehearsal boots as its PostgreSQL engine
REHEARSAL_INPUTS = ("prod", "postgres", "branch")  # the stacks the session hands the rehearsal


def is_rehearsal(item: pytest.Item) -> bool:
    return item.get_closest_marker("rehearsal") is not None


def rehearsal_stacks(environments: dict[str, Environment], pack_sha256: str,
                     outdir: Path) -> dict[str, tuple[Path, Environment]]:
    """The stacks the rehearsal boots: prod, the PostgreSQL variant and the session's branch environment
    as the repository has them, but pinned to the pack the lab built (`product.pack_sha256`), in one
    more App (the provider is loaded). The branch environment keeps its branch, expiry and base."""
    from stacks.app import synthesize

    branch = environments[ephemeral.stack_name(EPHEMERAL_BRANCH)]
    pinned = {name: with_changes(environment, product={"pack_sha256": pack_sha256})
              for name, environment in (("prod", environments["prod"]),
                                        (REHEARSAL_VARIANT, variant_environment(REHEARSAL_VARIANT, environments)))}
    pinned[branch.name] = dataclasses.replace(branch, config=with_changes(
        branch, product={"pack_sha256": pack_sha256}).config)
    synthesize(list(pinned.values()), outdir)
    return {name: (outdir / "stacks" / name / "cdk.tf.json", environment) for name, environment in pinned.items()}


class RehearsalPlugin:
    """Runs the rehearsal's scenarios in the background of the session (tests/rehearsal/session.py).

    A plugin rather than conftest hooks: pytest calls a session fixture's pytest_fixture_setup
    only on plugins, not on a conftest below the root directory.
    """

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # The rehearsal's tests go last: its boots run in the background while the rest of the suite runs.
        items.sort(key=is_rehearsal)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Starts the rehearsal's servers as soon as the session is known to run one of its tests."""
        if not any(is_rehearsal(item) for item in session.items):
            return
        from tests.rehearsal.session import Rehearsal

        rehearsal = Rehearsal(sorted({e.config.region for e in load_repo_environments().values()}))
        session.config.stash[REHEARSAL] = rehearsal
        # Runs when the session ends, however it ends: every process and mount the rehearsal started goes.
        session.config.add_cleanup(rehearsal.close)
        rehearsal.start()

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any],
                             request: pytest.FixtureRequest) -> Generator[None, Any, Any]:
        """Once the session's stacks are synthesized, synthesizes the three the rehearsal boots (prod, the
        PostgreSQL variant and the branch environment, pinned to the pack the lab built) and hands them
        over, with the branch base's stack."""
        rehearsal = request.config.stash.get(REHEARSAL, None)
        if rehearsal is None or fixturedef.argname != "synth":
            return (yield)
        try:
            result = yield
        except BaseException as error:
            for which in REHEARSAL_INPUTS:
                rehearsal.input_failed(which, error)
            raise
        try:
            stacks = rehearsal_stacks(result.environments, rehearsal.pack_sha256(),
                                      request.getfixturevalue("tmp_path_factory").mktemp("rehearsal") / "cdktf.out")
        except Exception as error:  # the rehearsal's tests report it; the rest of the session goes on
            for which in REHEARSAL_INPUTS:
                rehearsal.input_failed(which, error)
            return result
        path, environment = stacks["prod"]
        rehearsal.provide_prod(path, environment.config)
        path, environment = stacks[REHEARSAL_VARIANT]
        rehearsal.provide_postgres(REHEARSAL_VARIANT, json.loads(path.read_text()), path, environment.config)
        path, environment = stacks[result.ephemeral_name]
        assert environment.base is not None  # environments/ephemeral.yaml stands on a branch base
        # The base as the session synthesized it: nothing in it depends on the pack.
        rehearsal.provide_branch(environment.name, path, environment.config, environment.base.name,
                                 result.path(environment.base.name))
        return result

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        rehearsal = config.stash.get(REHEARSAL, None)
        if rehearsal is not None and rehearsal.timeline:
            terminalreporter.write_sep("-", "boot rehearsal stages (background, from the session's collection)")
            terminalreporter.write_line(rehearsal.summary())


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(RehearsalPlugin(), "obiam-rehearsal")


@pytest.fixture(scope="session")
def rehearsal(request: pytest.FixtureRequest, synth: Synth) -> Rehearsal:
    """The session's rehearsal, started at collection. It asks for `synth` so that a session of
    rehearsal tests alone makes it too (RehearsalPlugin then synthesizes the stacks it boots)."""
    found = request.config.stash.get(REHEARSAL, None)
    assert found is not None, "the rehearsal was not started: RehearsalPlugin starts it for its tests"
    return found
