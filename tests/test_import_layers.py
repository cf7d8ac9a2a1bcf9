"""No import cycles between the toolkit's modules, and the layers import downwards only.

A cycle makes the import order decide what exists (a half-initialized module hands out None or
raises ImportError depending on who imported first), and it means two modules cannot be understood
one without the other. The graph is read from the source (ast), module-level imports only (those under
`if TYPE_CHECKING:` too: a cycle of types is still two modules that need each other); an import inside
a function runs after every module has loaded and is how the CLI keeps the provider load out of commands
that do not synthesize.

Cost: parses every module of obiam/, stacks/ and constructs/wso2_on_aws; ~0.3 s.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGES = {"obiam": ROOT / "obiam", "stacks": ROOT / "stacks", "wso2_on_aws": ROOT / "constructs" / "wso2_on_aws"}


def module_name(package: str, path: Path) -> str:
    parts = [package, *path.relative_to(PACKAGES[package]).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_level_imports(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    found: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If):
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # `from obiam import wso2` imports the module obiam.wso2.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    sources = {module_name(package, path): path for package, root in PACKAGES.items()
               for path in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in sources.items():
        imports = module_level_imports(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py")
        graph[name] = {target for target in imports if target in sources and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_every_package() -> None:
    graph = import_graph()
    assert "obiam.config" in graph["obiam.environments"], "the reader sees `from obiam.config import ...`"
    assert "wso2_on_aws.security" in graph["wso2_on_aws.node_group"]
    assert "obiam.database_engines" in graph["wso2_on_aws.database"]


def test_no_module_imports_itself_back_through_others() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_import_downwards_only() -> None:
    # obiam (config, product facts, operations) knows nothing of constructs or stacks; constructs know
    # nothing of stacks or of the environment files; stacks compose both.
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("obiam."):
            assert not {t for t in targets if t.startswith(("wso2_on_aws", "stacks"))}, name
        if name.startswith("wso2_on_aws"):
            assert not {t for t in targets if t.startswith(("stacks", "obiam.environments", "obiam.config"))}, name
