"""The node's Python tool as shipped in the user data: the same program without comments and docstrings.

EC2 takes at most 16 KiB of user data, and the boot script is close to the toolkit's 12 KiB guard;
the tool's comments and docstrings are a quarter of it and mean nothing to the interpreter. The
source under obiam/bootstrap/node/ stays the commented one; `ast.unparse` of its syntax tree is the
shipped one, so what runs is what was parsed (not a text edit that could cut into a string), and it
is byte-identical on every synth with the pinned Python. The module docstring's first line stays:
the tool's --help reads it.
"""

from __future__ import annotations

import ast

_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _docstring(body: list[ast.stmt]) -> ast.Expr | None:
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first
    return None


def without_comments(source: str) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if not isinstance(node, _DOCUMENTED) or (doc := _docstring(node.body)) is None:
            continue
        if isinstance(node, ast.Module):
            assert isinstance(doc.value, ast.Constant)
            doc.value = ast.Constant(str(doc.value.value).strip().splitlines()[0])
        else:
            node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree) + "\n"
