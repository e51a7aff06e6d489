"""Python source through its syntax tree: the functions a module defines, the operators a mutation
swaps, and edits made at a node's own offsets (so every other byte of the file is kept).

Used by the mutation search (`search/mutate.py`), the synthetic bugs (`training/synth.py`), the
judge and the localizer; one copy of each so that they agree on what a function and a span are.
"""

from __future__ import annotations

import ast
import re

# an operator node's type -> its token
SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
          ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
          ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Div: "/", ast.Mod: "%",
          ast.Pow: "**", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
          ast.RShift: ">>", ast.And: "and", ast.Or: "or"}
# families an operator is swapped within, every member tried (the search)
COMPARE = [ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq]
ARITH = [ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Div, ast.Mod, ast.Pow]
BITWISE = [ast.BitAnd, ast.BitOr, ast.BitXor, ast.LShift, ast.RShift]
PAIRS = {ast.Is: [ast.IsNot, ast.Eq], ast.IsNot: [ast.Is, ast.NotEq], ast.In: [ast.NotIn], ast.NotIn: [ast.In]}
# the one slip a person most often makes with each operator (synthetic bugs)
SLIP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult, ast.Div: ast.Mult,
        ast.Mod: ast.FloorDiv, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.LShift: ast.RShift,
        ast.RShift: ast.LShift, ast.Pow: ast.Mult, ast.And: ast.Or, ast.Or: ast.And,
        ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
        ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
GAP = re.compile(r"^([\s)]*)(.*?)([\s(]*)$", re.S)  # `) + (`: closers, operator, openers


def functions(tree: ast.AST, blocks: bool = True) -> list[tuple[str, ast.AST, tuple]]:
    """(qualified name, node, the classes and functions around it, outermost first) of each function
    in `tree`, in source order, each before those it holds. `blocks=False` leaves out the ones
    inside another statement (an `if`, a `try`)."""
    out = []
    todo = [(child, (), "") for child in reversed(list(ast.iter_child_nodes(tree)))]
    while todo:  # a stack, not recursion: a long `a + b + ...` is a deep tree
        node, owners, prefix = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if not isinstance(node, ast.ClassDef):
                out.append((prefix + node.name, node, owners))
            owners, prefix = (*owners, node), f"{prefix}{node.name}."
        elif not blocks:
            continue
        todo += [(child, owners, prefix) for child in reversed(list(ast.iter_child_nodes(node)))]
    return out


def top_level(tree: ast.Module) -> list[tuple[str, ast.AST, ast.ClassDef | None]]:
    """(qualified name, node, its class or None) of the module-level functions and the methods of
    module-level classes."""
    return [(name, fn, owners[0] if owners else None) for name, fn, owners in functions(tree, blocks=False)
            if not owners or len(owners) == 1 and isinstance(owners[0], ast.ClassDef)]


def first_line(stmt: ast.AST) -> int:
    """A statement's first line, a definition's decorators included."""
    return min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])


def parameters(fn: ast.AST) -> list[str]:
    args = fn.args
    return [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]] + \
        [a.arg for a in (args.vararg, args.kwarg) if a]


def block_of(scope: ast.AST, stmt: ast.stmt) -> list | None:
    """The list of statements in `scope` that holds `stmt`."""
    for node in ast.walk(scope):
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and any(s is stmt for s in block):
                return block
    return None


class Source:
    """A text with `ast` positions (lines from 1, UTF-8 byte columns) turned into edits of it; a text
    cut out of a file (one function's lines) says which line of the file it starts on."""

    def __init__(self, text: str, first_line: int = 1):
        self.text = text
        self.raw = text.encode()
        self.lines = self.raw.splitlines(keepends=True)  # as `ast` counts them: \n, \r\n, \r only
        self.first = first_line
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col: int) -> int:
        return self.starts[lineno - self.first] + col

    def span(self, node) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def get(self, node) -> str:
        a, b = self.span(node)
        return self.raw[a:b].decode()

    def line(self, lineno: int) -> str:
        return self.lines[lineno - self.first].decode()

    def splice(self, a: int, b: int, new: str) -> str:
        return (self.raw[:a] + new.encode() + self.raw[b:]).decode()

    def replace(self, node, new: str, wrap: bool = False) -> str:
        return self.splice(*self.span(node), f"({new})" if wrap else new)

    def between(self, left, right) -> tuple[int, int]:
        """The gap from the end of one node to the start of the next (where an operator sits)."""
        return self.span(left)[1], self.span(right)[0]

    def replace_op(self, left, right, symbol: str) -> str:
        """The operator between two operands; parentheses and spaces around it kept."""
        a, b = self.between(left, right)
        pre, _op, post = GAP.match(self.raw[a:b].decode()).groups()
        if symbol[0].isalpha():  # `and`, `not in`: never glued to a neighbour
            pre, post = (pre if pre.endswith(" ") else pre + " "), (post if post.startswith(" ") else " " + post)
        return self.splice(a, b, pre + symbol + post)

    def replace_ops(self, values, symbol: str) -> str:
        out = self
        for i in range(len(values) - 1, 0, -1):  # right to left: earlier offsets stay valid
            out = Source(out.replace_op(values[i - 1], values[i], symbol), self.first)
        return out.text

    def swap(self, a_node, b_node) -> str:
        (a1, a2), (b1, b2) = self.span(a_node), self.span(b_node)
        return (self.raw[:a1] + self.raw[b1:b2] + self.raw[a2:b1] + self.raw[a1:a2] + self.raw[b2:]).decode()

    def replace_attr(self, node: ast.Attribute, attr: str) -> str:
        b = self.span(node)[1]
        return self.splice(b - len(node.attr.encode()), b, attr)

    def drop_lines(self, first: int, last: int) -> str:
        return b"".join(self.lines[:first - self.first] + self.lines[last - self.first + 1:]).decode()

    def indent_of(self, lineno: int) -> str:
        line = self.line(lineno)
        return line[: len(line) - len(line.lstrip())]

    def insert_before(self, lineno: int, lines: list[str]) -> str:
        """Whole lines (each without its newline) put before `lineno`, in the file's own newline."""
        eol = self.lines[lineno - self.first][len(self.lines[lineno - self.first].rstrip(b"\r\n")):] or b"\n"
        new = b"".join(line.encode() + eol for line in lines)
        i = lineno - self.first
        return b"".join(self.lines[:i] + [new] + self.lines[i:]).decode()

    def wrap_lines(self, first: int, last: int, header: str, unit: str) -> str:
        """Lines `first`..`last` indented by `unit` under `header` (a line such as `if x:`, put at
        the first line's indentation); blank lines stay blank."""
        a, b = first - self.first, last - self.first + 1
        body = [line if not line.strip() else unit.encode() + line for line in self.lines[a:b]]
        eol = self.lines[a][len(self.lines[a].rstrip(b"\r\n")):] or b"\n"
        head = (self.indent_of(first) + header).encode() + eol
        return b"".join(self.lines[:a] + [head] + body + self.lines[b:]).decode()
