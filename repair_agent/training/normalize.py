"""Code with its formatting, comments and docstrings normalized away: the key that training data
is de-duplicated on (export) and that benchmark code is recognized by (benchmarks)."""

from __future__ import annotations

import ast
import re
import textwrap

from ..syntax import functions

CONTEXT_HEADER = re.compile(r"^# \S+:\d+-\d+ \([^)]*\)\s*$", re.M)  # frames.context_for's block headers


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(textwrap.dedent(code))
    except (SyntaxError, ValueError):
        return None


def _chunks(code: str) -> list[str]:
    """The blocks of a localized context (split on its `# file:a-b (name)` headers), or the whole."""
    parts = [p for p in CONTEXT_HEADER.split(code) if p.strip()]
    return parts or [code]


def normalize(code: str) -> str:
    """Code with formatting, comments and docstrings normalized away (ast.unparse) when it parses,
    block by block; lines that do not parse keep their text with comments and blank lines dropped
    and runs of whitespace collapsed."""
    out = []
    for chunk in _chunks(code):
        tree = _parse(chunk)
        if tree is not None:
            out.append(ast.unparse(_strip_docstrings(tree)))
        else:
            lines = [re.sub(r"\s+", " ", re.sub(r"(^|\s)#.*$", "", ln)).strip() for ln in chunk.splitlines()]
            out.append("\n".join(ln for ln in lines if ln))
    return "\n".join(o for o in out if o).strip()


def function_keys(code: str) -> set[str]:
    """Normalized text of every function that parses in `code` (top level and in classes)."""
    keys = set()
    for chunk in _chunks(code):
        tree = _parse(chunk)
        if tree is None:
            continue
        keys.update(ast.unparse(fn) for _, fn, _ in functions(_strip_docstrings(tree)))
    return keys
