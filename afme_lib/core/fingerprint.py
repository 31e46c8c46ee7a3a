"""What a Python source *does*, for the fingerprints that decide whether a cached result still holds.

A run cache keyed on raw source bytes is thrown away by an edited comment or docstring, which
cannot change a result. :func:`code_digest` hashes the module's syntax tree with its docstrings
removed (comments never reach the tree), so only a change to the code itself gives a new digest.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

_WITH_DOCSTRINGS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, _WITH_DOCSTRINGS) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                # a function or class whose body is only its docstring keeps a body: as `pass`
                rest = node.body[1:]
                node.body = rest if rest or isinstance(node, ast.Module) else [ast.Pass()]
    return tree


def code_bytes(source: bytes) -> bytes:
    """The code of ``source`` without comments, docstrings or layout; the raw bytes when it does
    not parse (a broken file must still change the digest)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source
    return ast.dump(_without_docstrings(tree), include_attributes=False).encode()


def code_digest(paths: list[Path], root: Path) -> str:
    """sha1 over ``paths`` (their names relative to ``root`` and their :func:`code_bytes`)."""
    digest = hashlib.sha1()
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(code_bytes(path.read_bytes()))
    return digest.hexdigest()
