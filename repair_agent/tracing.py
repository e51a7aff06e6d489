"""Line-by-line execution trace of one failing test through the suspicious function(s).

`trace_test(sandbox, node_id, targets)` runs `sandbox/tools/tracer.py` in the sandbox (pytest in-process
under `sys.settrace`, limited to the target functions) and returns the steps, a JSON-ready list of
`{file, line, event, function, depth, locals, ...}` (see the tracer's docstring for the events).
A run that hit its deadline or was killed keeps the steps printed so far and ends with a
`timeout` step. `around(steps, file, line)` keeps the steps near one line, and
`trace_text(steps, budget_tokens)` renders steps as compact text for a prompt, never longer than
budget_tokens * 4 characters.
"""

from __future__ import annotations

import json
from typing import Iterable

from .state import Location

STEP, FINISH = "@@STEP ", "@@END "


def _targets(targets: Iterable) -> list[str]:
    out: list[str] = []
    for t in targets:
        if isinstance(t, str):
            file, _, func = t.rpartition("::")
        elif isinstance(t, dict):
            file, func = t["file"], t["function"]
        else:
            file, func = t
        if file and func and func != "<module>":
            spec = f"{file}::{func}"
            if spec not in out:
                out.append(spec)
    return out


def parse_trace(output: str) -> tuple[list[dict], dict]:
    """Steps and the final record (empty when the run was killed before it ended)."""
    steps: list[dict] = []
    end: dict = {}
    for line in output.splitlines():
        if line.startswith(STEP):
            try:
                steps.append(json.loads(line[len(STEP):]))
            except json.JSONDecodeError:
                continue  # a line cut by a kill
        elif line.startswith(FINISH):
            try:
                end = json.loads(line[len(FINISH):])
            except json.JSONDecodeError:
                pass
    return steps, end


def trace_test(sandbox, node_id: str, targets: Iterable[tuple[str, str] | Location | str], *,
               max_steps: int = 400, loop_keep: int = 3, max_depth: int = 8,
               timeout: float = 20.0, extra_args: list[str] | None = None) -> list[dict]:
    """Trace `node_id` through the target functions ((file, function) pairs, `Location`s or
    "file::function" strings; file relative to the repository). Returns the steps."""
    specs = _targets(targets)
    if not specs:
        return []
    cmd = [sandbox.python, sandbox.tool("tracer.py")]
    for spec in specs:
        cmd += ["--target", spec]
    cmd += ["--max-steps", str(max_steps), "--loop-keep", str(loop_keep), "--max-depth", str(max_depth),
            "--timeout", str(timeout), "--", node_id, *(extra_args or [])]
    rc, out = sandbox.run(cmd, timeout=timeout + 60)  # + pytest start-up
    steps, end = parse_trace(out)
    timed_out = any(s.get("event") == "timeout" for s in steps)
    if not end and not timed_out:
        steps.append({"file": "", "line": 0, "event": "timeout" if rc in (124, 137) else "killed",
                      "locals": {}, "returncode": rc})
    elif end.get("outcome"):
        steps.append({"file": "", "line": 0, "event": "test", "locals": {},
                      "outcome": end["outcome"], "message": end.get("message", "")})
    elif end and not timed_out:
        steps.append({"file": "", "line": 0, "event": "test", "locals": {}, "outcome": "not_run",
                      "message": f"pytest ran no such test (exit code {end.get('pytest_rc')})"})
    return steps


# -- text for the prompt ---------------------------------------------------------------------------
def _function(step: dict) -> str:
    """`outer.inner` for `outer.<locals>.inner`: the name the prompt's code listing uses."""
    return str(step.get("function")).replace(".<locals>", "")


def _step_text(s: dict) -> str:
    ev = s.get("event")
    ind = "  " * max(0, int(s.get("depth") or 1) - 1)
    loc = ", ".join(f"{k}={v}" for k, v in (s.get("locals") or {}).items())
    if ev == "call":
        return f"{ind}call {_function(s)}({loc})  [{s.get('file')}:{s.get('line')}]"
    if ev == "line":
        return f"{ind}L{s['line']}: {loc}" if loc else f"{ind}L{s['line']}"
    if ev == "return":
        return f"{ind}L{s['line']}: return {s.get('value')}"
    if ev == "exception":
        return f"{ind}L{s['line']}: exception {s.get('exception')}"
    if ev == "raise":
        return f"{ind}L{s['line']}: {_function(s)} exits by the exception"
    if ev == "loop":
        return f"{ind}L{s['line']}: ... ran {s.get('skipped')} more times (last run below)"
    if ev == "depth_limit":
        return f"... deeper calls not traced (depth limit {s.get('depth')})"
    if ev == "trace_lost":
        return "... tracing stopped here (recursion limit reached in the traced code)"
    if ev == "truncated":
        return "... trace truncated (step limit)"
    if ev in ("timeout", "killed"):
        return f"... {ev}: the test did not finish; trace is partial"
    if ev == "test":
        msg = f": {s['message']}" if s.get("message") else ""
        return f"test {s.get('outcome')}{msg}"
    return f"{ind}{ev} L{s.get('line')}"


def around(steps: list[dict], file: str, line: int, radius: int = 1) -> list[dict]:
    """The steps at the lines within `radius` of `file:line`, with every call, return, exception
    and the test's outcome: what a prompt about one changed line needs of a whole trace."""
    return [s for s in steps if s.get("event") not in ("line", "loop")
            or (s.get("file") == file and abs(int(s.get("line") or 0) - line) <= radius)]


def trace_text(steps: list[dict], budget_tokens: int = 600) -> str:
    """Compact text of the steps within budget_tokens * 4 characters: when the whole does not fit,
    the head and the tail are kept around a line saying how many steps were left out."""
    budget = max(0, int(budget_tokens) * 4)
    lines = [_step_text(s)[:240] for s in steps]
    full = "\n".join(lines)
    if len(full) <= budget:
        return full
    # head gets 60% of the room, tail 40%, around an elision line
    head: list[str] = []
    tail: list[str] = []
    room = budget - 40  # the elision line
    used_h = used_t = 0
    i, j = 0, len(lines) - 1
    while i <= j:
        if used_h <= used_t * 1.5 and used_h + len(lines[i]) + 1 <= room - used_t:
            head.append(lines[i])
            used_h += len(lines[i]) + 1
            i += 1
        elif used_t + len(lines[j]) + 1 <= room - used_h:
            tail.append(lines[j])
            used_t += len(lines[j]) + 1
            j -= 1
        elif used_h + len(lines[i]) + 1 <= room - used_t:
            head.append(lines[i])
            used_h += len(lines[i]) + 1
            i += 1
        else:
            break
    omitted = j - i + 1
    parts = head + ([f"... {omitted} steps omitted ..."] if omitted > 0 else []) + tail[::-1]
    return "\n".join(parts)[:budget]
