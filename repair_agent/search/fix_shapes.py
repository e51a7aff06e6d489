"""Fix shapes taken from real Python fixes (the catalogue and its sources: docs/fix_shapes.md).

The mutation source (`mutate.py`) tries these after its own operators at each line, at most
`mutate.SHAPES` of them a line. Each shape edits the statement through `syntax.Source`, so every
byte outside the edit is kept:
- a literal: an `os` constant for a separator string; a regular expression edited at the
  character level (an anchor, a negated class one character wider or narrower, a class that stops
  at the next delimiter, a quantifier); another string literal of the module;
- a safer access: `o.a` -> `getattr(o, "a", None)`, `d["k"]` -> `d.get("k")`;
- a method for a slice and a concatenation: `"p" + s[n:]` -> `s.replace("p"[:n], "p")`;
- an argument moved from an inner call to the call around it;
- a function used as a value called with the enclosing lambda's parameters;
- a guard: the statement under `if x:` or `if x is not None:`, or `if x is None: return R`
  before it (R a value the function returns elsewhere, or the empty value of what it returns);
- a clause dropped from a boolean condition; a caught exception widened to `Exception`.
"""

from __future__ import annotations

import ast
import difflib
import re
from typing import Iterator

from ..syntax import Source

OS_CONSTANTS = {":": "os.pathsep", ";": "os.pathsep", "/": "os.sep", "\\": "os.sep", "\n": "os.linesep"}
REGEX_CALLS = {"compile", "match", "fullmatch", "search", "sub", "subn", "findall", "finditer", "split",
               "_search_regex", "_html_search_regex"}
GUARDED = 2  # values a statement is guarded on (the nearest first): each gives up to four candidates
PER_LITERAL = 8  # character-level edits of one regular expression
NEGATED = re.compile(r"\[\^((?:\\.|[^\]\\])+)\]")
CLASS_THEN_DELIMITER = re.compile(r"\[(?!\^)(?:\\.|[^\]\\])+\](?=[+*]\)*(\\?[^\\()\[\]|?*+.^$]))")
QUANTIFIER = re.compile(r"(?<!\\)[+*](?!\?)")
PUNCTUATION = set("&\"'/#:=,;<>@%!~`")


def edits(stmt, nodes: list, line: int, text: Source, module_nodes: list, func) -> Iterator[tuple[str, str]]:
    """(new source, what changed) for each shape that fits the statement's `nodes` (a compound
    statement's header only), those on `line` first; `module_nodes`: every node of the module."""
    nodes = sorted(nodes, key=lambda n: n.lineno != line)  # a statement over many lines: the suspicious one first
    imported = {(a.asname or a.name).split(".")[0] for n in module_nodes
                if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    uses_os = any(isinstance(n, ast.alias) and n.name == "os" and not n.asname for n in module_nodes)
    lambdas = {child: fn for fn in nodes if isinstance(fn, ast.Lambda) for child in ast.walk(fn.body)}
    for node in nodes:
        if isinstance(node, ast.Constant) and node.value in OS_CONSTANTS and uses_os:
            yield text.replace(node, OS_CONSTANTS[node.value]), f"`{text.get(node)}` -> `{OS_CONSTANTS[node.value]}`"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and _is_str(node.left) \
                and isinstance(node.right, ast.Subscript) and isinstance(node.right.slice, ast.Slice) \
                and _int(node.right.slice.lower) and node.right.slice.upper is None:
            whole, cut = node.left.value, node.right.slice.lower.value
            new = f"{text.get(node.right.value)}.replace({whole[:cut]!r}, {text.get(node.left)})"
            yield text.replace(node, new), f"`{text.get(node)}` -> `{new}`"
        if isinstance(node, ast.Call):
            yield from _moved_arguments(node, text)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node in lambdas:
            params = [a.arg for a in lambdas[node].args.args]
            if node.id not in params and params and not _is_called(node, stmt):
                new = f"{node.id}({', '.join(params)})"
                yield text.replace(node, new), f"`{node.id}` -> `{new}`"
    accesses = 0
    for node in nodes:
        if accesses < GUARDED and isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) \
                and isinstance(node.value, ast.Name) and node.value.id not in imported and not _is_called(node, stmt):
            accesses += 1
            new = f'getattr({node.value.id}, "{node.attr}", None)'
            yield text.replace(node, new), f"`{text.get(node)}` -> `{new}`"
        if accesses < GUARDED and isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) \
                and _is_str(node.slice):
            accesses += 1
            new = f"{text.get(node.value)}.get({text.get(node.slice)})"
            yield text.replace(node, new), f"`{text.get(node)}` -> `{new}`"
    for node in nodes:
        if _is_str(node) and _is_regex(node, stmt, text):
            yield from _regex_edits(node, text)
    yield from _guards(stmt, text, func)
    for node in nodes:
        if isinstance(node, ast.BoolOp):
            op = " and " if isinstance(node.op, ast.And) else " or "
            for i in range(len(node.values)):
                rest = node.values[:i] + node.values[i + 1:]
                new = op.join(text.get(v) if len(rest) == 1 else _paren(text, v) for v in rest)
                yield text.replace(node, new, wrap=len(rest) > 1), f"drop `{text.get(node.values[i])}`"
    if isinstance(stmt, ast.Try):
        for handler in stmt.handlers:
            if handler.lineno == line and handler.type is not None:
                yield text.replace(handler.type, "Exception"), \
                    f"`except {text.get(handler.type)}` -> `except Exception`"
    yield from _other_literals([n for n in nodes if n.lineno == line], text, module_nodes)


def _moved_arguments(outer: ast.Call, text: Source) -> Iterator[tuple[str, str]]:
    """`f(g(a, b, **k))` -> `f(g(a, **k), b)`: an argument given to the wrong one of two calls."""
    for inner in outer.args:
        if not isinstance(inner, ast.Call) or any(isinstance(a, ast.Starred) for a in inner.args):
            continue
        for i, arg in enumerate(inner.args[1:], 1):
            last = outer.args[-1]  # after the last positional argument: never after a keyword
            cut_from = text.span(inner.args[i - 1])[1]  # the comma before the argument goes with it
            cut_to = text.span(arg)[1]
            end = text.span(last)[1]
            raw = text.raw
            new = (raw[:cut_from] + raw[cut_to:end] + b", " + raw[text.span(arg)[0]:cut_to] + raw[end:]).decode()
            yield new, f"move `{text.get(arg)}` from `{text.get(inner.func)}(...)` to `{text.get(outer.func)}(...)`"


def _guards(stmt, text: Source, func) -> Iterator[tuple[str, str]]:
    """The statement under `if x:` / `if x is not None:`; `if x is None: return R` before it."""
    if func is None or isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If,
                                         ast.For, ast.While, ast.With, ast.Try)):
        return
    if any(isinstance(n, ast.Constant) and isinstance(n.value, (str, bytes)) and n.lineno != n.end_lineno
           for n in ast.walk(stmt)):
        return  # indenting the statement's lines would change a multi-line string
    indent = text.indent_of(stmt.lineno)
    if stmt.col_offset != len(indent.encode()):
        return  # `if x: y` or `a; b` on one line: no line of its own to indent
    unit = "\t" if indent.startswith("\t") else "    "
    returns = _return_values(func, text)
    for value in _guard_values(stmt, text)[:GUARDED]:
        yield text.wrap_lines(stmt.lineno, stmt.end_lineno, f"if {value}:", unit), f"guard with `if {value}:`"
        yield text.wrap_lines(stmt.lineno, stmt.end_lineno, f"if {value} is not None:", unit), \
            f"guard with `if {value} is not None:`"
        for result in returns:
            yield text.insert_before(stmt.lineno, [f"{indent}if {value} is None:", f"{indent}{unit}return {result}"]), \
                f"`if {value} is None: return {result}` before"


def _guard_values(stmt, text: Source) -> list[str]:
    """The names and attribute chains (`x`, `self.items`) the statement reads or writes, in order:
    not a called function, not a name bound inside it (a lambda's parameter), not `self`."""
    bound = {a.arg for n in ast.walk(stmt) if isinstance(n, ast.Lambda) for a in n.args.args}
    bound |= {t.id for n in ast.walk(stmt) if isinstance(n, ast.comprehension)
              for t in ast.walk(n.target) if isinstance(t, ast.Name)}
    found = []
    for node in ast.walk(stmt):
        if isinstance(node, (ast.Name, ast.Attribute)) and not _is_called(node, stmt) \
                and not any(node is getattr(p, "value", None) and isinstance(p, ast.Attribute) for p in ast.walk(stmt)):
            value = text.get(node)
            root = node
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id not in bound and value not in ("self", "cls"):
                found.append(value)
    return sorted(dict.fromkeys(found), key=lambda v: _first_at(stmt, text, v))


def _first_at(stmt, text: Source, value: str) -> tuple:
    for node in ast.walk(stmt):
        if isinstance(node, (ast.Name, ast.Attribute)) and text.get(node) == value:
            return node.lineno, node.col_offset
    return (0, 0)


def _return_values(func, text: Source) -> list[str]:
    """What `if x is None: return ...` may give back: the constants the function returns, then the
    empty value of the kind it returns (`[]` for a list), else None; two at most."""
    if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(func)):
        return []
    out, kinds = [], []
    for node in ast.walk(func):
        if isinstance(node, ast.Return) and node.value is not None:
            for value in (node.value.body, node.value.orelse) if isinstance(node.value, ast.IfExp) else (node.value,):
                if isinstance(value, ast.Constant) or isinstance(value, (ast.List, ast.Dict, ast.Tuple)) and not (
                        value.elts if hasattr(value, "elts") else value.keys):
                    out.append(text.get(value))
                kinds.append({ast.List: "[]", ast.ListComp: "[]", ast.Dict: "{}", ast.DictComp: "{}",
                              ast.Tuple: "()", ast.JoinedStr: "''"}.get(type(value), ""))
    out += [k for k in kinds if k] + ["None"]
    return list(dict.fromkeys(out))[:2]


def _is_regex(node, stmt, text: Source) -> bool:
    """A string passed to `re.*` (or a `_search_regex`), or written as a raw string."""
    if text.get(node).lstrip("bBuU")[:1] in "rR":
        return True
    for call in ast.walk(stmt):
        if isinstance(call, ast.Call) and call.args and call.args[0] is node:
            name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
            return name in REGEX_CALLS
    return False


def _regex_edits(node, text: Source) -> Iterator[tuple[str, str]]:
    """Character-level edits of a regular expression written as one literal."""
    token = text.get(node)
    m = re.match(r"([a-zA-Z]*)('''|\"\"\"|'|\")(.*)\2$", token, re.S)
    if not m:
        return  # an implicit concatenation of literals: no single body to edit
    prefix, quote, body = m.groups()
    if len(quote) == 1 and re.search(rf"(?<!\\){quote}", body):
        return  # `'a' 'b'`: two literals joined
    raw = "r" in prefix.lower()
    boundary = r"\b" if raw else r"\\b"
    found = []
    if body.startswith("^"):  # a word boundary, not no anchor: dropping one only loosens the match
        found.append((boundary + body[1:], f"`^` -> `{boundary}`"))
    for cls in NEGATED.finditer(body):
        chars = re.findall(r"\\.|.", cls.group(1))
        for i, ch in enumerate(chars):
            if len(chars) > 1:
                inner = "".join(chars[:i] + chars[i + 1:])
                found.append((body[:cls.start(1)] + inner + body[cls.end(1):], f"`[^{cls.group(1)}]` -> `[^{inner}]`"))
        near = sorted((c for c in set(body) - set(cls.group(1)) if c in PUNCTUATION and c != quote[0]),
                      key=lambda c: abs(body.find(c) - cls.start()))
        for ch in near[:2]:
            found.append((body[:cls.start(1)] + ch + body[cls.start(1):],
                          f"`[^{cls.group(1)}]` -> `[^{ch}{cls.group(1)}]`"))
    for cls in CLASS_THEN_DELIMITER.finditer(body):
        new = f"[^{cls.group(1)}]"
        found.append((body[:cls.start()] + new + body[cls.end():], f"`{cls.group(0)}` -> `{new}`"))
    for q in list(QUANTIFIER.finditer(body))[:2]:
        alt = "*" if q.group() == "+" else "+"
        found.append((body[:q.start()] + alt + body[q.end():], f"quantifier `{q.group()}` -> `{alt}` at {q.start()}"))
    for new_body, note in found[:PER_LITERAL]:
        yield text.replace(node, prefix + quote + new_body + quote), note


def _other_literals(nodes, text: Source, module_nodes: list) -> Iterator[tuple[str, str]]:
    """Each short string literal of the line (three at most) for the two most alike other string
    literals of the module (a module holds hundreds)."""
    pool = list(dict.fromkeys(n.value for n in module_nodes if _is_str(n) and "\n" not in n.value))
    strings = [n for n in nodes if _is_str(n) and "\n" not in n.value and 0 < len(n.value) < 80]
    for node in strings[:3]:
        alike = sorted((s for s in pool if s != node.value and s.strip()),
                       key=lambda s: -difflib.SequenceMatcher(None, node.value, s).ratio())
        for alt in alike[:2]:
            yield text.replace(node, repr(alt)), f"`{text.get(node)}` -> `{alt!r}`"


def _is_called(node, stmt) -> bool:
    return any(isinstance(c, ast.Call) and c.func is node for c in ast.walk(stmt))


def _is_str(node) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is str


def _int(node) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int and node.value > 0


def _paren(text: Source, node) -> str:
    compound = isinstance(node, (ast.BoolOp, ast.IfExp, ast.Lambda, ast.NamedExpr))
    return f"({text.get(node)})" if compound else text.get(node)
