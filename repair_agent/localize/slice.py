"""The failure's data flow: a dynamic backward slice over a trace recorded by sandbox/tools/tracer.py.

The slice starts where the failure took its value: the line that raised, when the exception left
the outermost traced call, else the last return of the outermost traced call (the value the test's
assertion then checked). From there it walks back through the recorded steps of the same call: a
line whose recorded change (the tracer's `locals`: what executing it changed) sets a name still
needed joins the slice, and the names that line reads (found with `ast`) are needed in its place.
A traced call made by a slice line (its steps lie between that line and the one before it) is
sliced from its return the same way. Arguments stop the walk: the caller's side is the test's.
Lines the failure never depended on, though they ran, stay out.

`trace_last_call(sandbox, node_id, targets)` records what the slice needs: the tracer's
`--last-call` keeps only the last outermost call of the targets, the one the failing assertion
checked (a test that calls the function twenty times fails on the last call it made).
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

from ..tracing import parse_trace

LINE_EVENTS = ("line", "exception")


def trace_last_call(sandbox, node_id: str, targets: list[tuple[str, str]], timeout: float = 20.0,
                    max_steps: int = 1500) -> list[dict]:
    """The steps of the last outermost call of `targets` ((file, function) pairs) while `node_id` runs."""
    cmd = [sandbox.python, sandbox.tool("tracer.py"), "--last-call", "--max-steps", str(max_steps),
           "--timeout", str(timeout)]
    for file, func in targets:
        cmd += ["--target", f"{file}::{func}"]
    _rc, out = sandbox.run([*cmd, "--", node_id], timeout=timeout + 60)  # + pytest start-up
    return parse_trace(out)[0]


@lru_cache(maxsize=256)
def _statements(path: str, mtime: float) -> dict[int, frozenset[str]]:
    """line -> the names the statement starting there reads (a compound statement: its header only)."""
    try:
        tree = ast.parse(Path(path).read_text(errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return {}
    out: dict[int, frozenset[str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt) or node.lineno in out:
            continue
        parts: list[ast.AST] = [node]
        if isinstance(node, (ast.If, ast.While)):
            parts = [node.test]
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            parts = [node.iter]
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            parts = list(node.items)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Try)):
            parts = []
        names = {n.id for p in parts for n in ast.walk(p) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        out[node.lineno] = frozenset(names)
    return out


def reads(repo_dir: Path, file: str, line: int) -> frozenset[str]:
    p = Path(repo_dir) / file
    try:
        return _statements(str(p), p.stat().st_mtime).get(line, frozenset())
    except OSError:
        return frozenset()


def _calls(steps: list[dict]) -> list[int]:
    """Each step's call instance: a number per traced call, from the call events and depths."""
    current: dict[int, int] = {}
    out: list[int] = []
    n = 0
    for s in steps:
        d = s.get("depth", 0)
        if s["event"] == "call":
            n += 1
            current[d] = n
        out.append(current.get(d, 0))
    return out


def dynamic_slice(steps: list[dict], repo_dir: Path) -> set[tuple[str, int]]:
    """(file, line) of the lines the failing value or exception came from; empty without a trace."""
    steps = [s for s in steps if s.get("file") and s.get("line")]
    if not steps:
        return set()
    calls = _calls(steps)
    top = min(s.get("depth", 0) for s in steps)
    exits = [i for i, s in enumerate(steps) if s.get("depth", 0) == top and s["event"] in ("return", "raise")]
    if exits and steps[exits[-1]]["event"] == "raise":  # the exception left the test's call: start where it began
        begin = max((i for i, s in enumerate(steps[:exits[-1]]) if s["event"] == "call" and s.get("depth", 0) == top),
                    default=0)
        start = next(i for i in range(begin, exits[-1] + 1) if steps[i]["event"] in ("exception", "raise"))
    elif exits:
        start = exits[-1]
    else:  # cut short (a hang, the step limit): no value reached the test
        return set()
    out: set[tuple[str, int]] = set()
    _walk(steps, calls, start, repo_dir, out, budget=[5000])
    return out


def _walk(steps: list[dict], calls: list[int], start: int, repo_dir: Path, out: set, budget: list[int]) -> None:
    """Slice backwards from steps[start] (its line joins, its reads are needed) within its call."""
    s = steps[start]
    call = calls[start]
    out.add((s["file"], s["line"]))
    needed = set(reads(repo_dir, s["file"], s["line"]))
    later = start  # the slice line whose callees lie between it and the next own step back
    for j in range(start - 1, -1, -1):
        budget[0] -= 1
        if budget[0] <= 0:
            return
        if calls[j] != call:
            continue
        step = steps[j]
        if later is not None:
            _callees(steps, calls, j, later, repo_dir, out, budget)
            later = None
        if step["event"] == "call":
            return  # what is still needed came in as arguments
        if step["event"] not in LINE_EVENTS:
            continue
        changed = set(step.get("locals") or {})
        if changed & needed:
            out.add((step["file"], step["line"]))
            needed = (needed - changed) | set(reads(repo_dir, step["file"], step["line"]))
            later = j
    if later is not None:
        _callees(steps, calls, -1, later, repo_dir, out, budget)


def _callees(steps, calls, lo: int, hi: int, repo_dir: Path, out: set, budget: list[int]) -> None:
    """Slice each traced call made between steps lo and hi (exclusive) from its return."""
    depth = steps[hi].get("depth", 0) + 1
    for k in range(lo + 1, hi):
        if steps[k].get("depth", 0) == depth and steps[k]["event"] == "return":
            _walk(steps, calls, k, repo_dir, out, budget)
