"""Let execution do the work: many small candidates at the ranked lines, each checked by the tests.

The failing tests run first (stop at the first failure), then the full suite; a candidate's
per-test timeout derives from how long the original run took (policy.candidate_timeout), so a
mutant that never ends costs about a second, not a minute. The plausible fixes go to the judge.
"""

from __future__ import annotations

import ast
import time

from .. import patching, policy
from ..checks import run_checks
from ..judge.antipatterns import suspicions
from ..outcomes import counts, failure_lines, promise
from ..search import SOURCES, SearchContext, chain, record_search
from ..search.schedule import run_search
from ..state import RepairState


def search(state: RepairState, deps) -> dict:
    s = deps.settings
    sources = [name for name in s.strategy_list() if name in SOURCES]
    if "infill" in sources and deps.model is None:
        sources.remove("infill")
    ranked = [loc for loc in ranked_lines(state["locations"], deps.workdir) if loc["line"] > 0]
    ctx = SearchContext(root=deps.workdir, settings=s, model=deps.model, profile=deps.profile, log=deps.log,
                        failure=failure_lines(state["tests_before"], among=state["failing"]),
                        bases=chain.Bases(state["tests_before"], state["failing"]) if "mutate" in sources else None)
    timeout = policy.candidate_timeout(state, s)
    tried: list[dict] = []
    closest: dict = {}  # the failing candidate that came closest: shown when nothing fixes

    def keep_if_closer(record: dict, edit) -> None:
        tests = {k: counts(v) for k, v in (record.get("tests") or {}).items() if v}
        if record["status"] == "fixed" or not tests.get("failing", {}).get("passed"):
            return
        rank = promise(tests, patching.overlay_diff(deps.workdir, {edit["file"]: edit["text"]}))
        if edit.get("chain") and closest and rank[0] <= closest["rank"][0]:
            return  # two edits are the closer attempt only where they pass more of the failing tests
        if not closest or rank > closest["rank"]:
            closest.update(rank=rank, record=record, edit=edit, tests=tests)

    def check(edit) -> dict:
        start = time.monotonic()
        record = validate_edit(edit, state, deps, timeout)
        if record["status"] == "fixed":
            record["suspect"] = suspicions(ctx.source_text(edit["file"]), edit["text"])
        record["seconds"] = round(time.monotonic() - start, 3)
        tried.append(record)
        keep_if_closer(record, edit)
        deps.recorder.write("candidate", **{k: v for k, v in record.items() if k != "tests"})
        if record["status"] != "failed" or len(tried) % 25 == 0:
            deps.log(f"  {len(tried)} tried; {edit['source']} {edit['file']}:{edit['line']} {edit['note']}: "
                     f"{record['status']}")
        return record

    # a mutation costs one test run, an infill sample model time too: mutate visits twice the lines,
    # infill masks the first half of them in the order the mutants' evidence gives (schedule.by_evidence);
    # second edits on the mutants that got further (chain.py) come before the model is asked
    visited = ranked[:2 * s.search_lines]
    plan = [(name, visited, s.search_lines) if name == "infill" else (name, visited) for name in sources]
    if ctx.bases is not None:
        plan.insert(sources.index("mutate") + 1, ("chain", visited))
    out = run_search(plan, ctx, check, policy.search_budget(state, s)) if sources else None
    tokens = state.get("tokens") or {"prompt": 0, "completion": 0}
    tokens = {k: tokens[k] + ctx.tokens[k] for k in ("prompt", "completion")}
    fixes = out.fixes if out else []
    # the judge (nodes/judge.py) fills in the plausible fixes, ranked, and how sure it is
    summary = {"sources": sources, "lines": [f"{x['file']}:{x['line']}" for x in visited],
               "tried": out.tried if out else 0, "by_source": out.by_source if out else {},
               "stop_reason": out.stop_reason if out else "no search source asked for",
               "timeout_s": timeout, "plausible": [], "confidence": None, "confidence_reason": "",
               "disagreement": None, "guard": None, "failure": ctx.failure}
    if not fixes:
        record_search(summary, deps)
    return {"fixes": fixes, "search": summary, "tokens": tokens,
            "attempt": None if fixes or not closest else closest_attempt(closest, deps.workdir)}


def closest_attempt(closest: dict, root) -> dict:
    """The closest failing candidate with its diff, made now: only fixes get one as they are checked."""
    record, edit = closest["record"], closest["edit"]
    return {**{k: record[k] for k in ("source", "file", "line", "note", "status", "reason")},
            "patch": diff_of(root, {edit["file"]: edit["text"]}), "tests": closest["tests"]}


def ranked_lines(locations: list, root) -> list:
    """Locations best first; among equal scores (when every test fails, Ochiai ties every line the
    tests ran), statements that compute or decide come before plain calls, loops and definitions."""
    kinds: dict = {}
    for loc in locations:
        if loc["file"] not in kinds:
            kinds[loc["file"]] = statement_kinds(root / loc["file"])
    return sorted(locations, key=lambda loc: (-loc["score"], kinds[loc["file"]].get(loc["line"], 3)))


def statement_kinds(path) -> dict[int, int]:
    """line -> 0 (computes or decides: an operator, an index, a return), 1 (other assignment or
    loop header), 2 (anything else)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return {}
    out: dict[int, int] = {}
    for stmt in ast.walk(tree):
        if not isinstance(stmt, ast.stmt) or isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
            continue
        head = [stmt.test] if isinstance(stmt, (ast.If, ast.While)) else [stmt.iter] if isinstance(stmt, ast.For) \
            else [] if hasattr(stmt, "body") else [stmt]
        deciding = any(isinstance(n, (ast.Compare, ast.BinOp, ast.BoolOp, ast.Subscript, ast.AugAssign, ast.Return,
                                      ast.UnaryOp)) for part in head for n in ast.walk(part)) or isinstance(stmt, ast.Return)
        out[stmt.lineno] = 0 if deciding else 1 if isinstance(stmt, (ast.Assign, ast.For, ast.While)) else 2
    return out


def validate_edit(edit, state: RepairState, deps, timeout: float) -> dict:
    """Run the failing tests, then the suite, on the tree with the edited file; a fix gets its diff."""
    record = {"index": len(state.get("candidates", [])), "source": edit["source"], "file": edit["file"],
              "line": edit["line"], "note": edit["note"], "logprob": edit.get("logprob")}
    if patching.is_test_file(edit["file"]) and not deps.settings.allow_test_edits:
        return {**record, "status": "test_edit", "reason": f"edits test file {edit['file']}"}
    overlay = {edit["file"]: edit["text"]}
    run_timeout, per_test_timeout = policy.candidate_limits(timeout)
    record = run_checks(record, state, deps, overlay, timeout=run_timeout, per_test_timeout=per_test_timeout)
    if record["status"] == "fixed":
        record["patch"] = diff_of(deps.workdir, overlay)
    return record


def diff_of(root, overlay: dict) -> str:
    """The unified diff of the overlay against the snapshot; the tree is reset afterwards."""
    try:
        for rel, text in overlay.items():
            (root / rel).write_text(text, encoding="utf-8")
        return patching.current_diff(root)
    finally:
        patching.reset(root)
