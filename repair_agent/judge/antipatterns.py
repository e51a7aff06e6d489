"""Edits that pass tests more often than they fix bugs: anti-patterns of search-based repair.

A mutation search tries thousands of edits, and a weak test suite lets some through that delete
the work instead of repairing it (Tan et al., "Anti-patterns in search-based program repair",
FSE 2016). Two of their patterns are cheap to see in a syntax tree:

- the edit removes the last recursive call of a function: the search, the traversal or the
  recursion it performed is gone (a test that checks only "found or not" may still pass);
- the edit lets a function that always returned something fall off its end and return None
  (a test that checks only truthiness may still pass).

A suspect fix still counts as plausible; the search goes on for a clean one, the guard ranks it
below clean ones, and its confidence is low.
"""

from __future__ import annotations

import ast

from .. import syntax


def suspicions(old: str, new: str) -> list[str]:
    """What the edit from `old` to `new` (one file's texts) does that fixes seldom do."""
    try:
        before, after = functions(ast.parse(old)), functions(ast.parse(new))
    except (SyntaxError, ValueError):
        return []
    found = []
    for name, fn in after.items():
        was = before.get(name)
        if was is None or ast.dump(was) == ast.dump(fn):
            continue
        short = name.rpartition(".")[2]
        if calls_itself(was) and not calls_itself(fn):
            found.append(f"it removes the last recursive call of `{short}`")
        if returns_value(was) and not falls_through(was.body) and falls_through(fn.body) and not generator(fn):
            found.append(f"it lets `{short}` reach its end and return None, where it always returned a value")
    return found


def functions(tree: ast.AST) -> dict[str, ast.FunctionDef]:
    """Every function by qualified name, nested ones included (not those under an `if` or a `try`)."""
    return {name: fn for name, fn, _ in syntax.functions(tree, blocks=False)}


def own_nodes(fn: ast.AST):
    """The nodes of a function's body, not those of the functions and classes defined inside it."""
    todo = list(ast.iter_child_nodes(fn))
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))


def calls_itself(fn) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == fn.name
               for n in own_nodes(fn))


def returns_value(fn) -> bool:
    return any(isinstance(n, ast.Return) and n.value is not None and not
               (isinstance(n.value, ast.Constant) and n.value.value is None) for n in own_nodes(fn))


def generator(fn) -> bool:
    return any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in own_nodes(fn))


def falls_through(body: list[ast.stmt]) -> bool:
    """Can control reach the end of this block? (When unsure: yes.)"""
    return all(continues(stmt) for stmt in body)


def continues(stmt: ast.stmt) -> bool:
    if isinstance(stmt, (ast.Return, ast.Raise)):
        return False
    if isinstance(stmt, ast.If):
        return falls_through(stmt.body) or falls_through(stmt.orelse)
    if isinstance(stmt, ast.While):  # only `while True:` without a break never ends by itself
        forever = isinstance(stmt.test, ast.Constant) and bool(stmt.test.value)
        return not forever or breaks(stmt.body)
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
        return falls_through(stmt.body)
    if isinstance(stmt, ast.Try):
        if not falls_through(stmt.finalbody):
            return False
        return falls_through(stmt.body + stmt.orelse) or any(falls_through(h.body) for h in stmt.handlers)
    return True


def breaks(body: list[ast.stmt]) -> bool:
    """Does a `break` in this block leave the loop that owns it (not an inner loop)?"""
    todo = list(body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Break):
            return True
        if not isinstance(node, (ast.For, ast.AsyncFor, ast.While, ast.FunctionDef, ast.AsyncFunctionDef,
                                 ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(node))
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            todo.extend(node.orelse)  # a loop's else belongs to the outer loop
    return False
