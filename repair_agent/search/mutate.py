"""Program mutations at one suspicious line, with no model.

Each mutant changes one thing in the statement that starts (or sits) on the line: an operator
(comparison, arithmetic, bitwise, boolean, augmented assignment), a constant or an index by one,
a name for another name in scope, an attribute for another attribute the file uses (the nearest
NEAREST of either, see `closest`), the operands or arguments swapped, a `not` added or removed,
the statement deleted, or a nearby statement copied before or after it; then, at most SHAPES of
them, the shapes of real Python fixes (`fix_shapes.py`: guards, regular expressions, safer
accesses...). Only the source text of the mutated node is replaced (operators in place
between their operands), so every other byte of the file, the user's formatting included, is kept.
A mutant is checked (does it parse, is it new) by parsing its statement's lines alone and splicing
their tree into the file's (`_spliced_keys`): the file is parsed once a line, not once a mutant.

Why not libcst or cosmic-ray: both rebuild or re-render a module per mutant, and cosmic-ray runs
its own test loop; column offsets from `ast` give the exact span to replace, which is all a
one-line edit needs.
"""

from __future__ import annotations

import ast
import difflib
from itertools import islice
from typing import Callable, Iterator

from ..state import Location
from ..syntax import ARITH, BITWISE, COMPARE, PAIRS, SYMBOL, Source, block_of, first_line, parameters
from . import Edit, SearchContext, fix_shapes
from .schedule import normalized

BUILTIN_SWAPS = {"any": "all", "all": "any", "min": "max", "max": "min"}
SHAPES = 16  # fix-shape mutants a line, after the operators: ten lines add 160 runs at most to the budget
NEAREST = 8  # alternatives per name or attribute: a real module has hundreds, and each is a test run
# a compound replacement needs parentheses unless its slot is delimited on both sides
DELIMITED = {("Subscript", "slice"), ("Call", "args"), ("Return", "value"), ("Assign", "value"),
             ("AugAssign", "value"), ("If", "test"), ("While", "test"), ("Expr", "value"),
             ("List", "elts"), ("Tuple", "elts"), ("Slice", "lower"), ("Slice", "upper"),
             ("keyword", "value"), ("AnnAssign", "value"), ("Assert", "test")}


def candidates(loc: Location, ctx: SearchContext) -> Iterator[Edit]:
    source = ctx.source_text(loc["file"])
    for text, note, tree in _mutants(source, loc["line"]):
        yield Edit(file=loc["file"], text=text, line=loc["line"], source="mutate", note=note, tree=tree)


def mutants(source: str, line: int) -> Iterator[tuple[str, str]]:
    """(new source, what changed) for each mutant of the statement at `line`; valid Python only."""
    for text, note, _tree in _mutants(source, line):
        yield text, note


def _mutants(source: str, line: int, keys=None) -> Iterator[tuple[str, str, str]]:
    """The mutants with their dumped syntax trees. `keys(text, tree, stmt)` gives the file's tree
    dump and `normalized` for the edits of the statement (`_spliced_keys` unless given)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    stmt, func = _statement_at(tree, line)
    if stmt is None:
        return
    text = Source(source)
    whole, key = (keys or _spliced_keys)(text, tree, stmt)
    parents = {child: (node, name) for node in ast.walk(stmt) for name, child in _children(node)}
    names = _names_in_scope(func or tree)
    module_nodes = list(ast.walk(tree))  # walked once a line: a big module has 100,000 nodes
    attrs: dict[str, set] = {}  # attribute -> the objects the file uses it on (`self`, `os.path`)
    for n in module_nodes:
        if isinstance(n, ast.Attribute):
            attrs.setdefault(n.attr, set()).add(ast.dump(n.value))
    seen = {whole}
    yield from _unique(_edits(stmt, text, parents, names, attrs, func), seen, key)
    head = _header_nodes(stmt)
    nodes = [n for n in ast.walk(stmt) if hasattr(n, "lineno") and (head is None or n in head)]
    yield from islice(_unique(fix_shapes.edits(stmt, nodes, line, text, module_nodes, func), seen, key), SHAPES)


def _unique(edits, seen: set, key) -> Iterator[tuple[str, str, str]]:
    """The edits that parse and differ from the file and from every one before."""
    for new, note in edits:
        dump = key(new)
        if dump is not None and dump not in seen:
            seen.add(dump)
            yield new, note, dump


class _Hole:
    """Stands for a statement in the file's dump: its text, a NUL, is nowhere else in a dump."""

    def __repr__(self):
        return "\0"


def _spliced_keys(text: Source, tree, stmt) -> tuple[str, Callable[[str], str | None]]:
    """The file's `normalized` dump, and `normalized` of an edit of the statement's lines at the
    cost of parsing those lines alone (a big module's parse per mutant was what a mutant cost).

    The edit's lines are parsed after a `pass` at their indentation, under `if 1:`, and their
    statements' dumps put in the file's in place of the statement's. Exact when the lines hold
    whole statements and nothing else: a text that parses alone then parses the same way in the
    file (it ends outside any bracket or string, where the statement ended). The innermost
    statement around `stmt` that has its lines to itself is the one replaced; an edit outside its
    lines, or one that does not parse alone, is parsed whole."""
    for block, i in reversed(_ancestors(tree, stmt)):
        if _own_lines(text, block[i]):
            break
    else:
        return ast.dump(tree), normalized
    old = block[i]
    block[i] = _Hole()
    try:
        head, tail = ast.dump(tree).split("\0")
    finally:
        block[i] = old
    first, last = first_line(old), old.end_lineno
    prefix = text.raw[:text.starts[first - 1]].decode()
    suffix = text.raw[text.starts[last]:].decode()
    indent = text.indent_of(first)

    def key(new: str) -> str | None:
        if len(new) < len(prefix) + len(suffix) or not (new.startswith(prefix) and new.endswith(suffix)):
            return normalized(new)
        lines = new[len(prefix):len(new) - len(suffix)]
        try:
            body = ast.parse(f"if 1:\n{indent}pass\n{lines}").body[0].body[1:] if indent else ast.parse(lines).body
        except (SyntaxError, ValueError):
            return normalized(new)
        if body:
            return head + ", ".join(map(ast.dump, body)) + tail
        if len(block) == 1:
            return normalized(new)  # the block left empty
        return head[:-2] + tail if i else head + tail[2:]  # the list's separator goes with the statement

    return head + ast.dump(old) + tail, key


def _ancestors(tree, stmt) -> list[tuple[list, int]]:
    """(the block, the index in it) of each statement from the module's down to `stmt`."""
    out, node = [], tree
    where = (stmt.lineno, stmt.col_offset), (stmt.end_lineno, stmt.end_col_offset)
    while node is not stmt:
        block, i = next((b, i) for b in _blocks(node) for i, s in enumerate(b)
                        if (s.lineno, s.col_offset) <= where[0] and where[1] <= (s.end_lineno, s.end_col_offset))
        out.append((block, i))
        node = block[i]
    return out


def _blocks(node) -> Iterator[list]:
    """The statement lists right under `node` (its `except` clauses' and `case`s' included)."""
    for part in [node, *getattr(node, "handlers", []), *getattr(node, "cases", [])]:
        for name in ("body", "orelse", "finalbody"):
            value = getattr(part, name, None)
            if isinstance(value, list):
                yield value


def _own_lines(text: Source, stmt) -> bool:
    """Whether the statement's lines (its decorators' included) hold nothing else but comments,
    and the line before does not run on into them."""
    first = first_line(stmt)
    start = next(n for n in [*getattr(stmt, "decorator_list", []), stmt] if n.lineno == first)
    before = text.lines[first - 1][:start.col_offset].strip()
    after = text.lines[stmt.end_lineno - 1][stmt.end_col_offset:].strip()
    run_on = first > 1 and text.lines[first - 2].rstrip(b"\r\n").endswith(b"\\")
    return before == (b"" if start is stmt else b"@") and after[:1] in (b"", b"#") and not run_on


def _edits(stmt, text, parents, names, attrs, func):
    """Mutants of one statement, roughly from the most to the least often right."""
    nodes = [n for n in ast.walk(stmt) if hasattr(n, "lineno")]
    head = _header_nodes(stmt)
    for node in nodes:
        if head is not None and node not in head:
            continue  # a compound statement mutates its header only (its body has lines of its own)
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                for alt in (COMPARE if type(op) in COMPARE else PAIRS.get(type(op), [])):
                    if alt is not type(op):
                        yield text.replace_op(node.left if i == 0 else node.comparators[i - 1],
                                              node.comparators[i], SYMBOL[alt]), \
                            f"`{SYMBOL[type(op)]}` -> `{SYMBOL[alt]}`"
        elif isinstance(node, ast.BinOp):
            group = BITWISE if type(node.op) in BITWISE else ARITH
            for alt in group + (ARITH[:2] if group is BITWISE else BITWISE[:3]):
                if alt is not type(node.op):
                    yield text.replace_op(node.left, node.right, SYMBOL[alt]), \
                        f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[alt]}`"
        elif isinstance(node, ast.AugAssign):
            for alt in ARITH + BITWISE:
                if alt is not type(node.op):
                    yield text.replace_op(node.target, node.value, SYMBOL[alt] + "="), \
                        f"`{SYMBOL[type(node.op)]}=` -> `{SYMBOL[alt]}=`"
        elif isinstance(node, ast.BoolOp):
            alt = ast.Or if isinstance(node.op, ast.And) else ast.And
            yield text.replace_ops(node.values, SYMBOL[alt]), f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[alt]}`"
    for node in nodes:
        if head is not None and node not in head:
            continue
        where = parents.get(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            yield text.replace(node, text.get(node.operand), wrap=_wrap(node, where)), \
                f"drop `{'not' if isinstance(node.op, ast.Not) else '-'}`"
        if isinstance(node, ast.expr) and where and (type(where[0]).__name__, where[1]) in (
                ("If", "test"), ("While", "test"), ("IfExp", "test"), ("Assert", "test")):
            yield text.replace(node, f"not {_paren(text.get(node), node)}"), "add `not`"
        if isinstance(node, (ast.Compare, ast.BinOp)) and _swappable(node):
            left, right = (node.left, node.comparators[0]) if isinstance(node, ast.Compare) \
                else (node.left, node.right)
            yield text.swap(left, right), "swap operands"
        if isinstance(node, ast.Constant) and type(node.value) is int:
            for alt in (node.value + 1, node.value - 1):
                yield text.replace(node, str(alt), wrap=alt < 0), f"`{node.value}` -> `{alt}`"
        if isinstance(node, ast.Constant) and type(node.value) is bool:
            yield text.replace(node, str(not node.value)), f"`{node.value}` -> `{not node.value}`"
        if isinstance(node, ast.Subscript) and not isinstance(node.slice, (ast.Slice, ast.Constant)):
            for op in ("+ 1", "- 1"):
                yield text.replace(node.slice, f"{_paren(text.get(node.slice), node.slice)} {op}"), \
                    f"index {op}"
        if isinstance(node, ast.Slice):
            for bound in (node.lower, node.upper):
                if bound is not None:
                    for op in ("+ 1", "- 1"):
                        yield text.replace(bound, f"{_paren(text.get(bound), bound)} {op}"), f"slice bound {op}"
        if isinstance(node, ast.Call) and len(node.args) >= 2:
            for a, b in zip(node.args, node.args[1:]):
                if not isinstance(a, ast.Starred) and not isinstance(b, ast.Starred):
                    yield text.swap(a, b), "swap arguments"
        if isinstance(node, ast.BinOp):  # drop an operand: `1 + f(x)` -> `f(x)`
            for part in (node.left, node.right):
                yield text.replace(node, text.get(part), wrap=_wrap(node, where) and _compound(part)), \
                    f"`{text.get(node)}` -> `{text.get(part)}`"
        if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:
            yield text.replace(node, text.get(node.args[0]), wrap=_wrap(node, where) and _compound(node.args[0])), \
                f"unwrap `{text.get(node)}`"
        if isinstance(node, ast.Name) and node.id in BUILTIN_SWAPS and isinstance(node.ctx, ast.Load):
            yield text.replace(node, BUILTIN_SWAPS[node.id]), f"`{node.id}` -> `{BUILTIN_SWAPS[node.id]}`"
        if isinstance(node, (ast.Name, ast.Call, ast.Attribute, ast.Subscript)) and where \
                and isinstance(where[0], (ast.Call, ast.BinOp, ast.Compare, ast.Return)) and where[1] != "func":
            for op in ("+ 1", "- 1"):  # an argument or operand off by one
                yield text.replace(node, f"{text.get(node)} {op}", wrap=_wrap(node, where)), \
                    f"`{text.get(node)}` {op}"
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            near = closest(node.id, names)
            for alt in near:
                yield text.replace(node, alt), f"`{node.id}` -> `{alt}`"
            if where and isinstance(where[0], ast.Call) and where[1] == "args":
                for part in ("1:", ":-1"):  # recursion on the rest of a sequence
                    yield text.replace(node, f"{node.id}[{part}]"), f"`{node.id}` -> `{node.id}[{part}]`"
                for alt in near:
                    for op in ("-", "+"):
                        yield text.replace(node, f"{node.id} {op} {alt}"), f"`{node.id}` -> `{node.id} {op} {alt}`"
        if isinstance(node, ast.Tuple) and len(node.elts) == 2 and where and where[1] == "slice":
            yield text.swap(*node.elts), "swap the index pair"
        if isinstance(node, ast.Call) and where and where[1] != "func":
            for alt in closest(text.get(node), names):  # a call where a value already computed was meant
                yield text.replace(node, alt), f"`{text.get(node)}` -> `{alt}`"
        if isinstance(node, ast.List) and not node.elts:
            for alt in ["[]", *closest("", names)]:
                yield text.replace(node, f"[{alt}]"), f"`[]` -> `[{alt}]`"
        if isinstance(node, ast.Constant) and node.value is True and where and where[1] == "test":
            for alt in closest("", names):
                yield text.replace(node, alt), f"`True` -> `{alt}`"
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and where \
                and isinstance(where[0], (ast.For, ast.comprehension)) and where[1] == "iter":
            for alt in closest(node.id, names):
                for part in (f"{alt}:", f":{alt}"):
                    yield text.replace(node, f"{node.id}[{part}]"), f"`{node.id}` -> `{node.id}[{part}]`"
        if isinstance(node, ast.Attribute):
            base = ast.dump(node.value)  # attributes used on the same object come first
            for alt in closest(node.attr, sorted(attrs), prefer={a for a, on in attrs.items() if base in on}):
                yield text.replace_attr(node, alt), f"`.{node.attr}` -> `.{alt}`"
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        target, value = stmt.targets[0].id, text.get(stmt.value)
        for fn in ("max", "min"):
            yield text.replace(stmt.value, f"{fn}({target}, {value})"), f"`{value}` -> `{fn}({target}, {value})`"
            yield text.replace(stmt.value, f"{fn}(0, {value})"), f"`{value}` -> `{fn}(0, {value})`"
    yield from _statement_edits(stmt, text, func)


def _statement_edits(stmt, text, func):
    """Delete the statement; copy a nearby simple statement of the same block before or after it."""
    lines = [line.decode() for line in text.lines]
    a, b = stmt.lineno - 1, stmt.end_lineno
    indent = lines[a][: len(lines[a]) - len(lines[a].lstrip())]
    block = block_of(func, stmt) if func else None
    if block and len(block) > 1 and not isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
        yield text.drop_lines(stmt.lineno, stmt.end_lineno), "delete the statement"
    for other in (block or []):
        if other is stmt or abs(other.lineno - stmt.lineno) > 6 or other.lineno != other.end_lineno \
                or isinstance(other, (ast.FunctionDef, ast.ClassDef, ast.Return)):
            continue
        copy = indent + lines[other.lineno - 1].lstrip()
        yield "".join(lines[:a] + [copy] + lines[a:]), f"insert `{copy.strip()}` before"
        yield "".join(lines[:b] + [copy] + lines[b:]), f"insert `{copy.strip()}` after"


def _statement_at(tree, line: int):
    """The innermost statement that starts on `line` (else the one spanning it), and its function."""
    best, func = None, None

    def walk(node, fn):
        nonlocal best, func
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)) \
                    or hasattr(child, "lineno") and not child.lineno <= line <= child.end_lineno:
                continue  # a statement sits only in a statement (or clause) that spans its lines
            if isinstance(child, ast.stmt):
                if best is None or child.lineno == line or best.lineno != line:
                    best, func = child, fn
            inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn
            walk(child, inner)

    walk(tree, None)
    return best, func


def _header_nodes(stmt) -> set | None:
    """The nodes of a compound statement's header (test, iterator, ...); None for a simple one."""
    fields = {ast.If: ["test"], ast.While: ["test"], ast.For: ["target", "iter"], ast.With: ["items"],
              ast.FunctionDef: [], ast.ClassDef: [], ast.Try: []}
    for kind, names in fields.items():
        if isinstance(stmt, kind):
            out = set()
            for name in names:
                value = getattr(stmt, name)
                for part in value if isinstance(value, list) else [value]:
                    out |= set(ast.walk(part))
            return out
    return None


def _children(node):
    for name, value in ast.iter_fields(node):
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, ast.AST):
                yield name, child


def closest(word: str, pool: list[str], prefer: set = frozenset(), k: int = NEAREST) -> list[str]:
    """The `k` alternatives to `word` in `pool` most like it (those in `prefer` first, then by
    spelling), in the pool's own order; the whole pool when it is that small."""
    pool = [w for w in pool if w != word]
    if len(pool) <= k:
        return pool
    like = sorted(pool, key=lambda w: (w not in prefer, -difflib.SequenceMatcher(None, word, w).ratio()))
    keep = set(like[:k])
    return [w for w in pool if w in keep]


def _names_in_scope(scope) -> list[str]:
    """Parameters and local names of the function (module names at top level), first seen first."""
    names = parameters(scope) if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)) else []
    for node in ast.walk(scope):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.append(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node is not scope:
            names.append(node.name)
    return list(dict.fromkeys(names))


def _swappable(node) -> bool:
    """Swapping the operands of `*`, `&`, `|`, `^` changes nothing."""
    if isinstance(node, ast.Compare):
        return len(node.ops) == 1
    return not isinstance(node.op, (ast.Mult, ast.BitAnd, ast.BitOr, ast.BitXor))  # `+` joins strings


def _compound(node) -> bool:
    return isinstance(node, (ast.BinOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.UnaryOp, ast.Lambda,
                             ast.NamedExpr))


def _paren(text: str, node) -> str:
    return f"({text})" if _compound(node) else text


def _wrap(node, where) -> bool:
    return where is not None and (type(where[0]).__name__, where[1]) not in DELIMITED
