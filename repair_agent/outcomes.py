"""Small views of a TestRun: counts, failing ids, the first failure's text."""

from __future__ import annotations

import re

from .state import TestRun

BAD = ("failed", "error")
FRAME_END = re.compile(r"^(\S+\.py):(\d+):(?: ([A-Za-z_][\w.]*))?\s*$", re.M)  # pytest's `path:line: Error`, a frame's end


def failing_ids(run: TestRun | None) -> list[str]:
    return [c["id"] for c in (run or {}).get("cases", []) if c["outcome"] in BAD]


def modules_of(test_ids: list[str]) -> list[str]:
    """The test modules (files) of pytest node ids, in order, once each."""
    return list(dict.fromkeys(t.split("::")[0] for t in test_ids))


def counts(run: TestRun | None) -> dict:
    cases = (run or {}).get("cases", [])
    out = {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failed", "error", "skipped")}
    return {"passed": out["passed"], "failed": out["failed"], "errors": out["error"],
            "skipped": out["skipped"], "failing": failing_ids(run)}


def ran(run: TestRun | None) -> int:
    """Tests that really ran (skips do not count: a skip cannot prove a fix)."""
    return sum(c["outcome"] != "skipped" for c in (run or {}).get("cases", []))


def promise(tests: dict, patch: str) -> tuple[int, int, int]:
    """How close a candidate that is no fix came, higher is closer: the failing tests it passed, then
    the suite's tests (or, where it never got to the suite, the covering tests'), then the fewest
    changed lines. `tests`: {"failing": counts(), "suite": counts(), "covering": counts()}."""
    changed = sum(ln.startswith(("+", "-")) and not ln.startswith(("+++", "---")) for ln in patch.splitlines())
    later = tests.get("suite") or tests.get("covering") or {}
    return ((tests.get("failing") or {}).get("passed", 0), later.get("passed", 0), -changed)


def first_failure(run: TestRun | None, limit: int = 1500) -> str:
    for c in (run or {}).get("cases", []):
        if c["outcome"] in BAD:
            text = c["details"] or c["message"]
            return f"{c['id']}\n{text[-limit:]}".strip()
    if run and run.get("timed_out"):
        return "the test run timed out (an infinite loop or very slow code)"
    return ""


def failure_lines(run: TestRun | None, among: list[str] | None = None, most: int = 6, width: int = 160) -> str:
    """The first failure (of the tests `among`, when given) in a few lines, for the model: the failing
    line of the test and the line of the code where it raised (`path:line: source`), then pytest's `E`
    lines (the values an assert compared, or the exception with its message). Only what the run
    printed; "" when it held nothing."""
    case = next((c for c in (run or {}).get("cases", [])
                 if c["outcome"] in BAD and (among is None or c["id"] in among)), None)
    if case is None:
        return "the test run timed out (an infinite loop or very slow code)" if run and run.get("timed_out") else ""
    frames, said, source = [], [], None
    for line in (case["details"] or "").splitlines():
        if line.startswith(">"):
            source = line[1:].strip()
        elif line.startswith("E "):
            said.append(line[1:].strip())
        elif (end := FRAME_END.match(line)) and source:
            frames.append(f"{end[1]}:{end[2]}: {source}")
            source = None
    if not frames and not said:  # another traceback layout: the message pytest gave
        said = case["message"].splitlines()
    kept = frames if len(frames) <= 2 else [frames[0], frames[-1]]  # the test, and where it raised
    return "\n".join(line[:width] for line in [*kept, *said][:most])


def trimmed(run: TestRun, limit: int = 2000) -> TestRun:
    """A copy small enough to keep in the checkpointed state."""
    return {**run, "output_tail": run["output_tail"][-limit:],
            "cases": [{**c, "details": c["details"][-limit:]} for c in run["cases"]]}
