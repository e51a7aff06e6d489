"""Fault localization alone on the reproducible BugsInPy dev bugs, scored against the human fixes.

    .venv/bin/python benchmarks/localization_bugsinpy.py collect --data /work/bugsinpy/data \
        --repos /work/bugsinpy/repos --cache CACHE [--ids tqdm-1,...]
    .venv/bin/python benchmarks/localization_bugsinpy.py score --data /work/bugsinpy/data \
        --repos /work/bugsinpy/repos --cache CACHE [--json OUT]

No model and no search. `collect` runs, per bug, in the Docker sandbox the bench gives it
(reproducibility.task_settings: its base image and requirements; an image already built is reused):
the failing tests once (their tracebacks, as the agent's reproduce step sees them), the bug's test
files once under coverage with per-test contexts (the spectrum), and the first failing test once
under the tracer through the top functions (the data-flow slice). What a bug's runs printed is kept
in CACHE/<bug>.json, so scoring is repeatable without Docker.

`score` ranks each bug's lines two ways, from the same evidence:
- `main`: what localize did before issue 32: Ochiai lines, traceback lines lifted, else the functions
  of the modules the failing test imports;
- `new`: repair_agent.localize.rank.rank (functions first, the slice and frames inside them; a name
  the test cannot import sends localization to its module).
A bug's human-fix lines come from BugsInPy's bug_patch.txt (read here only, by the scorer; the agent
never reads it): the buggy side's removed lines, and for a pure insertion the lines on either side.
A fix line inside a multi-line statement also counts as the statement's first line (coverage and the
tracer see a statement there). Its functions are the functions holding those lines. A bug counts at statement level top-k when one
of the first k ranked lines is a fix line, at function level when one of the first k distinct ranked
functions holds one. The tree the lines refer to is the task's materialized buggy tree.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from repair_agent.bench.bugsinpy import load_bugsinpy, reference_patch  # noqa: E402
from repair_agent.localize import frames, rank, sbfl  # noqa: E402
from repair_agent.nodes.localize import imported_functions  # noqa: E402

REPRODUCED = ROOT / "benchmarks" / "results" / "bugsinpy-reproduce-dev.jsonl"
KS = (1, 3, 5, 10)
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@")


def reproducible() -> list[str]:
    rows = [json.loads(line) for line in REPRODUCED.read_text().splitlines() if line.strip()]
    return [r["task"] for r in rows if r.get("reproduced")]


# -- collect -------------------------------------------------------------------------------------
def collect_one(task, work: Path, cached: dict | None = None, per_test: int = 60, coverage_s: float = 600) -> dict:
    """The bug's runs; with `cached` (an earlier record), only the trace again, through the functions
    the current ranking puts first."""
    from repair_agent.bench.reproducibility import task_settings
    from repair_agent.config import Settings
    from repair_agent.sandbox import open_sandbox
    from repair_agent.localize.slice import trace_last_call

    settings = task_settings(task, Settings(sandbox="docker", test_timeout_s=300, per_test_timeout_s=60))
    repo = task.materialize(work / task.task_id)
    t0 = time.monotonic()
    box = open_sandbox("docker", repo, image=settings.image, log=lambda m: print(m, file=sys.stderr), deps=settings.deps,
                       install_project=settings.install_project)
    try:
        t1 = time.monotonic()
        if cached:
            failed, spec = cached["failed"], cached["spectrum"]
        else:
            run = box.run_tests(list(task.failing_tests or task.test_args), timeout=300, per_test_timeout=60)
            failed = [c for c in run["cases"] if c["outcome"] in ("failed", "error")]
        t2 = time.monotonic()
        if not cached:
            spec = sbfl.spectrum(box, list(task.test_args), [c["id"] for c in failed], timeout=coverage_s,
                                 per_test_timeout=per_test)
        t3 = time.monotonic()
        targets = rank.trace_targets(rank.rank(spec, [c["details"] or c["message"] for c in failed], repo,
                                               [c["id"] for c in failed]))
        steps = trace_last_call(box, failed[0]["id"], targets, timeout=30) if failed and targets else []
        t4 = time.monotonic()
    finally:
        box.close()
    seconds = {"sandbox": round(t1 - t0, 1), "tests": round(t2 - t1, 1), "coverage": round(t3 - t2, 1),
               "trace": round(t4 - t3, 1)}
    if cached:  # the first collection's test and coverage times stand
        seconds = {**cached["seconds"], "trace": seconds["trace"]}
    return {"task": task.task_id, "failed": [{k: c[k] for k in ("id", "outcome", "message", "details")} for c in failed],
            "spectrum": spec, "targets": targets, "trace": steps, "seconds": seconds}


def collect(args) -> int:
    args.cache.mkdir(parents=True, exist_ok=True)
    ids = args.ids.split(",") if args.ids else reproducible()
    with tempfile.TemporaryDirectory(prefix="locbench-") as tmp:
        for task in load_bugsinpy(args.data, args.repos, ids=ids):
            out = args.cache / f"{task.task_id}.json"
            cached = json.loads(out.read_text()) if out.is_file() else None
            if cached and not (args.again or args.retrace):
                continue
            if args.retrace and (not cached or cached.get("error")):
                continue
            start = time.monotonic()
            try:
                record = collect_one(task, Path(tmp), cached if args.retrace else None, args.per_test_timeout,
                                     args.coverage_timeout)
            except Exception as exc:  # noqa: BLE001 - one bug's failure is its record, not the run's end
                record = {"task": task.task_id, "error": f"{type(exc).__name__}: {exc}"}
            record["total_s"] = round(sum(record["seconds"].values()), 1) if args.retrace and "seconds" in record \
                else round(time.monotonic() - start, 1)
            out.write_text(json.dumps(record))
            shutil.rmtree(Path(tmp) / task.task_id, ignore_errors=True)
            print(task.task_id, record.get("error") or record["seconds"], record["total_s"], flush=True)
    return 0


# -- score ---------------------------------------------------------------------------------------
def fix_lines(patch: str) -> dict[str, set[int]]:
    """file -> the buggy side's lines the human fix changes (a pure insertion: the lines around it)."""
    out: dict[str, set[int]] = {}
    file, old = None, 0
    pending_insert = False
    for line in patch.splitlines():
        if line.startswith("--- "):
            continue
        if line.startswith("+++ "):
            name = line[4:].split("\t")[0].strip()
            file = name[2:] if name.startswith("b/") else name
            continue
        if m := HUNK.match(line):
            old = int(m[1])
            continue
        if file is None or not line or line.startswith("\\"):
            continue
        tag = line[0]
        if tag == "-":
            out.setdefault(file, set()).add(old)
            old += 1
            pending_insert = False
        elif tag == "+":
            if not pending_insert:  # an insertion before line `old`: the lines on either side
                out.setdefault(file, set()).update({max(1, old - 1), old})
                pending_insert = True
        else:
            old += 1
            pending_insert = False
    return {f: lines for f, lines in out.items() if not frames.is_test_file(f)}


def statement_lines(repo: Path, fix: dict[str, set[int]]) -> dict[str, set[int]]:
    """The fix lines plus the first line of the statement holding each (coverage and tracing see a
    statement at its first line: a fix inside a multi-line statement is that statement)."""
    out = {f: set(lines) for f, lines in fix.items()}
    for f, lines in fix.items():
        try:
            tree = ast.parse((repo / f).read_text(errors="replace"))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.stmt):
                continue
            body = getattr(node, "body", None)
            head_end = body[0].lineno - 1 if isinstance(body, list) and body and hasattr(body[0], "lineno") \
                else node.end_lineno
            out[f].update(node.lineno for line in lines if node.lineno < line <= head_end)
    return out


def ranks(locations: list[dict], fix: dict[str, set[int]], repo: Path) -> tuple[int | None, int | None]:
    """1-based rank of the first fix line, and of the first function holding one (None: not ranked)."""
    fix_funcs = {(f, frames.function_at(repo, f, line)) for f, lines in fix.items() for line in lines}
    stmt = next((i + 1 for i, loc in enumerate(locations) if loc["line"] in fix.get(loc["file"], ())), None)
    seen: list[tuple[str, str]] = []
    func = None
    for loc in locations:
        key = (loc["file"], frames.function_at(repo, loc["file"], loc["line"]))
        if key not in seen:
            seen.append(key)
            if key in fix_funcs:
                func = len(seen)
                break
    return stmt, func


def combine(spectrum: list[dict], traceback: list[dict]) -> list[dict]:
    """SBFL scores, with lines that also sit in a traceback lifted by half their frame score."""
    bonus = {(t["file"], t["line"]): t["score"] / 2 for t in traceback}
    merged = {(s["file"], s["line"]): {**s, "score": round(s["score"] + bonus.pop((s["file"], s["line"]), 0), 6)}
              for s in spectrum}
    for t in traceback:
        if (t["file"], t["line"]) in bonus:
            merged[(t["file"], t["line"])] = {**t, "score": round(bonus[(t["file"], t["line"])], 6)}
    return sorted(merged.values(), key=lambda loc: -loc["score"])


def main_ranking(rec: dict, repo: Path) -> list[dict]:
    """localize's ranking before issue 32 (nodes/localize.py at e665866)."""
    details = [c["details"] or c["message"] for c in rec["failed"]]
    locations = frames.rank_frames(details, repo)
    locations = combine(sbfl.with_functions(sbfl.rank_lines(rec["spectrum"]), repo), locations)
    if not locations and rec["failed"]:
        locations = imported_functions(repo, rec["failed"][0]["id"])
    return locations


def new_ranking(rec: dict, repo: Path) -> list[dict]:
    details = [c["details"] or c["message"] for c in rec["failed"]]
    locations = rank.rank(rec["spectrum"], details, repo, [c["id"] for c in rec["failed"]], trace=rec.get("trace"))
    return locations or imported_functions(repo, rec["failed"][0]["id"])  # as nodes/localize.py falls back


def score(args) -> int:
    ids = args.ids.split(",") if args.ids else reproducible()
    rows = []
    with tempfile.TemporaryDirectory(prefix="locscore-") as tmp:
        for task in load_bugsinpy(args.data, args.repos, ids=ids):
            f = args.cache / f"{task.task_id}.json"
            rec = json.loads(f.read_text()) if f.is_file() else {"task": task.task_id, "error": "not collected"}
            row = {"task": task.task_id, "seconds": rec.get("total_s")}
            if rec.get("error") or not rec.get("failed"):
                rows.append({**row, "error": rec.get("error") or "no failing test"})
                continue
            repo = task.materialize(Path(tmp) / task.task_id)
            fix = statement_lines(repo, fix_lines(reference_patch(task) or ""))
            row["fix"] = {k: sorted(v) for k, v in fix.items()}
            for method, ranking in (("main", main_ranking), ("new", new_ranking)):
                t0 = time.monotonic()
                locations = ranking(rec, repo)
                stmt, func = ranks(locations, fix, repo)
                row[method] = {"statement": stmt, "function": func, "rank_s": round(time.monotonic() - t0, 2),
                               "top3": [f"{loc['file']}:{loc['line']}" for loc in locations[:3]]}
            rows.append(row)
            shutil.rmtree(Path(tmp) / task.task_id, ignore_errors=True)
            print(task.task_id, {m: (row[m]["statement"], row[m]["function"]) for m in ("main", "new")}, flush=True)

    def top(method: str, level: str) -> dict[int, int]:
        return {k: sum(1 for r in rows if method in r and (r[method][level] or 10 ** 9) <= k) for k in KS}

    secs = [r["seconds"] for r in rows if r.get("seconds")]
    code = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "repair_agent/localize", "repair_agent/nodes/localize.py",
                            "benchmarks/localization_bugsinpy.py"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    summary = {"bugs": len(rows), "code": code + ("+uncommitted" if dirty else ""),
               "statement_top": top("new", "statement"), "function_top": top("new", "function"),
               "before": {"statement_top": top("main", "statement"), "function_top": top("main", "function")},
               "errors": sum(1 for r in rows if "error" in r),
               "seconds_per_bug": {"mean": round(sum(secs) / max(1, len(secs)), 1), "max": max(secs, default=0)},
               "command": "benchmarks/localization_bugsinpy.py collect, then score (see its docstring)",
               "results": rows}
    print(json.dumps({k: v for k, v in summary.items() if k != "results"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("collect", "score"))
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--repos", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True, help="one JSON per bug: what its runs printed")
    ap.add_argument("--ids", default="", help="comma-separated bug ids (default: the reproducible dev bugs)")
    ap.add_argument("--again", action="store_true", help="collect bugs already in the cache again")
    ap.add_argument("--per-test-timeout", type=int, default=60, help="collect: one test's limit in the coverage run")
    ap.add_argument("--coverage-timeout", type=float, default=600, help="collect: the coverage run's limit")
    ap.add_argument("--retrace", action="store_true", help="cached bugs: only the trace again (the ranking changed)")
    ap.add_argument("--json", type=Path, help="score: write the summary and per-bug rows here")
    args = ap.parse_args(argv)
    return collect(args) if args.step == "collect" else score(args)


if __name__ == "__main__":
    sys.exit(main())
