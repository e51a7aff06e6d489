"""What a fix changed, read from the real execution: true by construction.

`build(before, after, patch, ...)` takes the traces of the failing test through the code before and
after the fix (steps of `repair_agent.tracing`) and the fix's diff, and says: the input that shows the
bug (the traced function's first call), the changed line, what it computed before (a value, a
return, an exception, or that the test never finished) and after, and what the test expected (from
pytest's assertion message). Nothing in it is inferred: a fact the traces do not hold is left out.
`text(evidence)` renders it for the prompt, the CLI and the PR body; `sentence(evidence)` is the root
cause written from it alone, for when the model's words fail their check.
"""

from __future__ import annotations

import ast
import re

from .faithfulness import values_at

HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_TOKEN = re.compile(r"\w+|\S")
_ASSERT_EQ = re.compile(r"^(?:AssertionError: )?assert (.+?) == (.+)$")
_LEAF = (ast.Name, ast.Constant, ast.Attribute)


def edited_lines(patch: str) -> list[dict]:
    """The diff's edits as pairs: {file, old_line, old, new_line, new}; an insertion has old None,
    a deletion new None (each still with the line number where it happened)."""
    out: list[dict] = []
    file, old_no, new_no = "", 0, 0
    removed: list[tuple[int, str]] = []
    added: list[tuple[int, str]] = []

    def flush() -> None:
        for i in range(max(len(removed), len(added))):
            o = removed[i] if i < len(removed) else (old_no, None)
            n = added[i] if i < len(added) else (new_no, None)
            out.append({"file": file, "old_line": o[0], "old": o[1], "new_line": n[0], "new": n[1]})
        removed.clear()
        added.clear()

    for line in patch.splitlines():
        if line.startswith("+++ "):
            flush()
            file = line[6:].strip() if line.startswith("+++ b/") else line[4:].strip()
        elif line.startswith("--- ") or line.startswith("diff --git") or line.startswith("index "):
            flush()
        elif m := HUNK.match(line):
            flush()
            old_no, new_no = int(m[1]), int(m[2])
        elif line.startswith("-"):
            removed.append((old_no, line[1:]))
            old_no += 1
        elif line.startswith("+"):
            added.append((new_no, line[1:]))
            new_no += 1
        elif line.startswith(" "):
            flush()
            old_no, new_no = old_no + 1, new_no + 1
    flush()
    return out


def changed_expression(old: str | None, new: str | None) -> tuple[str, str]:
    """The smallest expression of each line that holds the part that differs (`items[2]`, not `2`;
    `gcd(a % b, b)` for swapped arguments); a whole statement when it is an insertion or deletion."""
    a, b = (old or "").strip(), (new or "").strip()
    if not a or not b:
        return _statement(a), _statement(b)
    ta, tb = list(_TOKEN.finditer(a)), list(_TOKEN.finditer(b))
    p = 0
    while p < min(len(ta), len(tb)) and ta[p].group() == tb[p].group():
        p += 1
    s = 0
    while s < min(len(ta), len(tb)) - p and ta[-1 - s].group() == tb[-1 - s].group():
        s += 1
    return _enclosing(a, ta, p, s), _enclosing(b, tb, p, s)


def _statement(line: str) -> str:
    return line.rstrip(":").strip()


def _enclosing(line: str, tokens: list, p: int, s: int) -> str:
    lo = tokens[p].start() if p < len(tokens) else len(line)
    hi = tokens[len(tokens) - 1 - s].end() if len(tokens) - s > p else lo
    code, shift = line, 0
    if code.startswith("elif "):
        code, shift = code[2:], 2
    if code.endswith(":"):
        code += " pass"
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return _statement(line)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    best = None
    for node in ast.walk(tree):
        if isinstance(node, ast.expr) and node.lineno == node.end_lineno == 1 and \
                node.col_offset + shift <= lo and node.end_col_offset + shift >= hi:
            if best is None or node.end_col_offset - node.col_offset < best.end_col_offset - best.col_offset:
                best = node
    while best is not None and isinstance(best, _LEAF) and isinstance(parents.get(best), ast.expr):
        best = parents[best]  # `2` says nothing; `items[2]` does
    if best is None or isinstance(best, _LEAF):
        return _statement(line)
    return line[best.col_offset + shift:best.end_col_offset + shift]


# -- reading the traces ------------------------------------------------------------------------------
def _call_text(step: dict) -> str:
    args = ", ".join(f"{k}={v}" for k, v in (step.get("locals") or {}).items())
    return f"{str(step.get('function')).replace('.<locals>', '')}({args})"


def _at_line(steps: list[dict], file: str, line: int | None, expr: str) -> str:
    """What the line computed the first time it did something the trace recorded; for a line that
    assigns nothing (a condition), the value of the changed expression each time it ran."""
    if line is None:
        return ""
    runs = [s for s in steps if s.get("file") == file and int(s.get("line") or 0) == line]
    for s in runs:
        ev = s.get("event")
        if ev == "return":
            return f"returned {s.get('value')}"
        if ev == "exception":
            return f"raised {s.get('exception')}"
        if ev == "line" and s.get("locals"):
            return "set " + ", ".join(f"{k} = {v}" for k, v in s["locals"].items())
    values = values_at(steps, file, line, expr) if expr else []
    if values:
        more = sum(int(s.get("skipped") or 0) for s in runs if s.get("event") == "loop")
        return (f"evaluated `{expr}` to {', '.join(repr(v) for v in values[:4])}{', ...' if len(values) > 4 else ''}"
                + (f" (and ran {more} more times)" if more else ""))
    if runs:
        return "ran (it assigns nothing the trace records)"
    # a line that never finished (a recursion too deep): the call it made, when it calls the traced function
    calls = [s for s in steps if s.get("event") == "call" and s.get("file") == file]
    nested = [s for s in calls[1:] if int(s.get("depth") or 1) > int(calls[0].get("depth") or 1)]
    if nested and f"{str(nested[0].get('function')).rpartition('.')[2]}(" in expr:
        return f"called {_call_text(nested[0])}" + (", and so on, deeper" if len(nested) > 1 else "")
    return ""


def _result(steps: list[dict], file: str) -> str:
    """What the traced function's outermost call gave the test: a value, an exception, or nothing."""
    calls = [s for s in steps if s.get("event") == "call" and s.get("file") == file]
    if not calls:
        return ""
    depth = int(calls[0].get("depth") or 1)
    started = False
    for s in steps:
        if s is calls[0]:
            started = True
        if not started or int(s.get("depth") or 1) != depth or s.get("file") != file:
            continue
        if s.get("event") == "return":
            return f"returned {s.get('value')}"
        if s.get("event") == "raise":
            exc = next((e.get("exception") for e in reversed(steps[:steps.index(s) + 1])
                        if e.get("event") == "exception"), "")
            return f"raised {exc}" if exc else "ended by an exception"
    return ""


def _outcome(steps: list[dict], message: str) -> tuple[str, str]:
    """(outcome, pytest's message): passed | failed | timed out | unknown."""
    for s in reversed(steps):
        if s.get("event") in ("timeout", "killed"):
            return "did not finish (timed out)", message
        if s.get("event") == "test":
            return str(s.get("outcome")), s.get("message") or message
    return ("failed" if message else "unknown"), message


def build(before: list[dict], after: list[dict], patch: str, message: str = "") -> dict:
    """The evidence of one fix. `message`: the failing test's failure line from the run before the fix
    (used when the trace has none, e.g. without --no-trace)."""
    edits = edited_lines(patch)
    edit = edits[0] if edits else {"file": "", "old_line": None, "old": None, "new_line": None, "new": None}
    file = edit["file"]
    old_expr, new_expr = changed_expression(edit["old"], edit["new"])
    first_call = next((s for s in before if s.get("event") == "call" and s.get("file") == file), None)
    outcome_before, said = _outcome(before, message)
    outcome_after, _ = _outcome(after, "") if after else ("", "")
    result_before = _result(before, file)
    expected = ""
    if m := _ASSERT_EQ.match(said.strip()):
        actual = m[1].strip()
        if result_before == f"returned {actual}" or not result_before:
            expected = m[2].strip()
    return {
        "file": file, "line": edit["old_line"] if edit["old"] is not None else edit["new_line"],
        "before_line": (edit["old"] or "").strip(), "after_line": (edit["new"] or "").strip(),
        "changed_before": old_expr, "changed_after": new_expr,
        "edits": len(edits),
        "input": _call_text(first_call) if first_call else "",
        "computed_before": _at_line(before, file, edit["old_line"] if edit["old"] is not None else None, old_expr),
        "computed_after": _at_line(after, file, edit["new_line"] if edit["new"] is not None else None, new_expr),
        "result_before": result_before, "result_after": _result(after, file),
        "outcome_before": outcome_before, "outcome_after": outcome_after,
        "test_message": said, "expected": expected,
    }


def text(ev: dict) -> str:
    """The evidence as lines a reader (and the model) can check against the traces."""
    where = f"{ev['file']}:{ev['line']}"
    if ev["before_line"] and ev["after_line"]:
        change = f"changed line {where}: `{ev['before_line']}` -> `{ev['after_line']}`"
    elif ev["after_line"]:
        change = f"added at {where}: `{ev['after_line']}`"
    else:
        change = f"removed at {where}: `{ev['before_line']}`"
    lines = [change + (f" (and {ev['edits'] - 1} more edited line(s))" if ev["edits"] > 1 else "")]
    if ev["input"]:
        lines.append(f"input: {ev['input']}")
    for when in ("before", "after"):
        bits = []
        if ev[f"computed_{when}"]:
            bits.append(f"the line {ev[f'computed_{when}']}")
        if ev[f"result_{when}"] and ev[f"result_{when}"] != ev[f"computed_{when}"]:
            bits.append(f"the function {ev[f'result_{when}']}")
        if ev[f"outcome_{when}"]:
            said = f" ({ev['test_message']})" if when == "before" and ev["test_message"] else ""
            bits.append(f"the test {ev[f'outcome_{when}']}{said}")
        if bits:
            lines.append(f"{when} the fix: " + "; ".join(bits))
    if ev["expected"]:
        lines.append(f"expected: {ev['expected']}")
    return "\n".join(lines)


def sentence(ev: dict) -> str:
    """A root cause from the evidence alone: which expression was wrong, what it did, what fixed it."""
    old, new = ev["changed_before"], ev["changed_after"]
    where = f"{ev['file']}:{ev['line']}"
    out = f"`{old}` at {where} was wrong" if old else f"{where} lacked `{new}`"
    did = _did(ev, "before", old)
    if did:
        out += f": for {ev['input']}, {did}" if ev["input"] else f": {did}"
    if ev["outcome_before"].startswith("did not finish"):
        out += ", and the test never finished"
    if old and new:
        after = _did(ev, "after", new)
        out += f"; with `{new}`, {after}" if after else f"; `{new}` fixes it"
    else:
        out += "; removing it fixes it" if old else "; adding it fixes it"
    return out + (f" (the test expected {ev['expected']})." if ev["expected"] else ".")


def _did(ev: dict, when: str, expr: str) -> str:
    if ev[f"computed_{when}"]:
        return "the line " + ev[f"computed_{when}"].replace(f"evaluated `{expr}` to", "evaluated to")
    return f"the function {ev[f'result_{when}']}" if ev[f"result_{when}"] else ""
