"""Fault localization on QuixBugs (Python): top-1/3/5 line hit rates, SBFL, the agent's ranking, the last frame.

    .venv/bin/python benchmarks/localization_quixbugs.py [--data PATH] [--only gcd,sqrt] [--json OUT]

For each of the 40 programs the folder is rebuilt as the dataset's README says, from
`buggy_source` only (the fixed source and the diffs are never read), the tests run once in a
LocalSandbox with `--timeout=2` per test (some buggy programs hang) to get the failing ids and their
tracebacks, then once more under coverage with per-test contexts (sandbox/tools/coverage_contexts.py).

- SBFL: lines of python_programs/<id>.py ranked by Ochiai; ties go to the line fewer passing tests
  ran, then file order.
- Ranked: what the agent's localize step ranks (repair_agent.localize.rank: functions first, then
  lines; the slice from one more run, the first failing test traced through the top functions).
- Baseline: the traceback frames inside python_programs/<id>.py, the deepest first (over all
  failing tests; see repair_agent.localize.frames.rank_frames).

A program counts as a top-k hit when one of the first k ranked lines is in its `bug_lines`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from repair_agent.localize import rank  # noqa: E402
from repair_agent.localize.frames import rank_frames  # noqa: E402
from repair_agent.localize.sbfl import rank_lines, spectrum  # noqa: E402
from repair_agent.sandbox import LocalSandbox  # noqa: E402
from repair_agent.localize.slice import trace_last_call  # noqa: E402

DATA = Path("/work/shared/benchmarks/quixbugs")
KS = (1, 3, 5)


def rebuild(rec: dict, support: dict[str, str], dest: Path) -> None:
    for rel, text in support.items():
        p = dest / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for rel, text in ((rec["buggy_path"], rec["buggy_source"]), (rec["test_path"], rec["test_source"]),
                      (rec.get("json_testcases_path"), rec.get("json_testcases"))):
        if rel and text is not None:
            p = dest / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)


def hits(ranked_lines: list[int], bug: set[int]) -> dict[int, bool]:
    return {k: any(line in bug for line in ranked_lines[:k]) for k in KS}


def evaluate(rec: dict, support: dict[str, str], python: str) -> dict:
    # Only what a repair agent would see: the buggy program, its tests, and bug_lines for scoring.
    bug = set(rec["bug_lines"])
    prog = rec["buggy_path"]
    with tempfile.TemporaryDirectory(prefix=f"quix-{rec['id']}-") as tmp:
        folder = Path(tmp)
        rebuild(rec, support, folder)
        sb = LocalSandbox(folder, python=python)
        try:
            t0 = time.monotonic()
            run = sb.run_tests(["--timeout=2", rec["test_path"]], timeout=900)
            failed = [c for c in run["cases"] if c["outcome"] in ("failed", "error")]
            t1 = time.monotonic()
            spec = spectrum(sb, ["--timeout=2", rec["test_path"]], [c["id"] for c in failed],
                            timeout=900)
            t2 = time.monotonic()
            ids, details = [c["id"] for c in failed], [c["details"] or c["message"] for c in failed]
            first = rank.rank(spec, details, folder, ids)
            steps = trace_last_call(sb, ids[0], rank.trace_targets(first), timeout=10) if ids else []
            ranked = [loc["line"] for loc in rank.rank(spec, details, folder, ids, trace=steps) if loc["file"] == prog]
            t3 = time.monotonic()
        finally:
            sb.close()
        sbfl_lines = [loc["line"] for loc in rank_lines(spec) if loc["file"] == prog]
        frame_lines = [loc["line"] for loc in rank_frames([c["details"] for c in failed], folder)
                       if loc["file"] == prog]
    return {"id": rec["id"], "bug_lines": sorted(bug), "n_tests": len(run["cases"]), "n_failed": len(failed),
            "sbfl_top5": sbfl_lines[:5], "ranked_top5": ranked[:5], "frames_top5": frame_lines[:5],
            "sbfl": hits(sbfl_lines, bug), "ranked": hits(ranked, bug), "frames": hits(frame_lines, bug),
            "seconds": {"tests": round(t1 - t0, 1), "coverage": round(t2 - t1, 1), "trace": round(t3 - t2, 1)}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--only", default="", help="comma-separated program ids")
    ap.add_argument("--python", default=sys.executable, help="interpreter with pytest, pytest-timeout, coverage")
    ap.add_argument("--json", type=Path, help="write per-program results here")
    args = ap.parse_args(argv)

    support = json.loads((args.data / "support_files.json").read_text())
    records = [json.loads(line) for line in (args.data / "quixbugs_python.jsonl").read_text().splitlines()
               if line.strip()]
    only = {s for s in args.only.split(",") if s}
    if only:
        records = [r for r in records if r["id"] in only]
    results = []
    start = time.monotonic()
    for rec in records:
        r = evaluate(rec, support, args.python)
        results.append(r)
        print(f"{r['id']:<28} bug={r['bug_lines']} sbfl={r['sbfl_top5']} ranked={r['ranked_top5']} frames={r['frames_top5']} "
              f"failed={r['n_failed']}/{r['n_tests']} ({r['seconds']['tests']}+{r['seconds']['coverage']}s)",
              flush=True)
    n = len(results)
    summary = {"programs": n, "seconds": round(time.monotonic() - start, 1)}
    for method in ("sbfl", "ranked", "frames"):
        summary[method] = {f"top{k}": sum(r[method][k] for r in results) for k in KS}
    print()
    print(f"{'method':<22}" + "".join(f"{'top-' + str(k):>12}" for k in KS))
    for method, label in (("sbfl", "SBFL (Ochiai)"), ("ranked", "ranked (localize)"),
                          ("frames", "last traceback frame")):
        row = "".join(f"{summary[method][f'top{k}']:>5}/{n} {100 * summary[method][f'top{k}'] / max(1, n):3.0f}%"
                      for k in KS)
        print(f"{label:<22}{row}")
    print(f"\n{n} programs in {summary['seconds']} s")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
