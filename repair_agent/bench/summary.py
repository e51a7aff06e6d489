"""Benchmark summaries: fix rate per round, self-refinement rate, pass@1, cost (report.py shows them).

Input: one record per task (JSONL, `records.jsonl` in a result folder), each holding what
`repair-agent fix --json` prints plus the bench fields `task_id`, `dataset`, `model`, `mode`,
`fixed_round`, `verified` and optionally `faithfulness`.

A task counts as fixed ONLY when `status == "fixed"` and `verified is True` (the benchmark's own
tests passed on the final patch in a fresh sandbox). Candidate statuses never count by themselves.
Such a fix is *plausible*; it is *correct* when its record also says `correct is True` (it agrees
with the reference program, see correctness.py). Records scored before that have no `correct`:
then the correct counts are None, "not measured".

A task with `status == "env_error"` could not run its tests at all (a missing dependency, see
repair_agent/envfault.py): it is counted apart (`env_errors`) and left out of every rate's denominator.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from .report import plot_comparison, print_comparison, run_label, write_report

RECORDS_FILE = "records.jsonl"
SUMMARY_FILE = "summary.json"


# ----------------------------------------------------------------------------- records

def load_records(path: Path | str) -> list[dict]:
    """Records from a JSONL file, or from `<dir>/records.jsonl`. Later lines for the same
    task_id replace earlier ones (a resumed run appends)."""
    path = Path(path)
    if path.is_dir():
        path = path / RECORDS_FILE
    by_id: dict[str, dict] = {}
    anon: list[dict] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            if rec.get("task_id") is None:
                anon.append(rec)
            else:
                by_id.pop(str(rec["task_id"]), None)
                by_id[str(rec["task_id"])] = rec
    return list(by_id.values()) + anon


def is_fixed(rec: dict) -> bool:
    return rec.get("status") == "fixed" and rec.get("verified") is True


def is_correct(rec: dict) -> bool:
    return is_fixed(rec) and rec.get("correct") is True


def _rounds_seen(rec: dict) -> list[int]:
    out = []
    for r in rec.get("rounds") or []:
        if isinstance(r, dict) and isinstance(r.get("round"), int):
            out.append(r["round"])
    return out


def fix_round(rec: dict) -> int | None:
    """The round in which a counted fix happened; None when the task is not a counted fix."""
    if not is_fixed(rec):
        return None
    fr = rec.get("fixed_round")
    if isinstance(fr, int) and not isinstance(fr, bool) and fr >= 0:
        return fr
    # No fixed_round: the first round with a fixed candidate, else the last round run, else 0.
    for r in sorted(rec.get("rounds") or [], key=lambda r: r.get("round", 0)):
        if any(c.get("status") == "fixed" for c in r.get("candidates") or []):
            return int(r.get("round", 0))
    seen = _rounds_seen(rec)
    return max(seen) if seen else 0


def _tokens(rec: dict) -> tuple[int, int]:
    t = rec.get("tokens") or {}
    return int(t.get("prompt") or 0), int(t.get("completion") or 0)


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


def _failing(run: Any) -> int | None:
    """Failing tests in `tests_before`/`tests_after`: the counts view that `fix --json` prints
    (`{"passed", "failed", "errors", "skipped", "failing": [...]}`) or a full TestRun."""
    if not isinstance(run, dict):
        return None
    if isinstance(run.get("failing"), list):
        return len(run["failing"])
    if isinstance(run.get("cases"), list):
        return sum(1 for c in run["cases"] if c.get("outcome") in ("failed", "error"))
    if "failed" in run or "errors" in run:
        return int(run.get("failed") or 0) + int(run.get("errors") or 0)
    return None


def _one_or_mixed(values: Iterable[Any]) -> Any:
    vals = sorted({str(v) for v in values if v is not None})
    if not vals:
        return None
    return vals[0] if len(vals) == 1 else ",".join(vals)


# ----------------------------------------------------------------------------- summary

def is_env_error(rec: dict) -> bool:
    return rec.get("status") == "env_error"


def is_unscored(rec: dict) -> bool:
    """An environment error, or a benchmark bug that did not reproduce (its tests pass on the buggy
    code, or fail with the reference fix): the agent never ran, so no rate counts it."""
    return rec.get("status") in ("env_error", "not_reproduced")


def summarize(records: list[dict], settings: dict | None = None, **labels: Any) -> dict:
    """The numbers of one run. `labels` (dataset=, model=, mode=) override the records' own.
    Rates are over the scored tasks: all but the environment errors."""
    env_errors = sum(map(is_env_error, records))
    not_reproduced = sum(r.get("status") == "not_reproduced" for r in records)
    n = len(records) - env_errors - not_reproduced
    rounds_max = 0
    for rec in records:
        seen = _rounds_seen(rec)
        if seen:
            rounds_max = max(rounds_max, max(seen))
        fr = fix_round(rec)
        if fr is not None:
            rounds_max = max(rounds_max, fr)

    fix_rounds = [fr for fr in map(fix_round, records) if fr is not None]
    fixed = len(fix_rounds)
    fixed_by_round = [sum(1 for fr in fix_rounds if fr <= r) for r in range(rounds_max + 1)]
    fixed_r0 = fixed_by_round[0] if fixed_by_round else 0
    later = fixed - fixed_r0
    correctness = _correctness(records, rounds_max)

    prompt = sum(_tokens(r)[0] for r in records)
    completion = sum(_tokens(r)[1] for r in records)
    tokens_total = prompt + completion
    wall = sum(_num(r.get("duration_s")) or 0.0 for r in records)
    faith = [f for f in (_num(r.get("faithfulness")) for r in records) if f is not None]
    cand_status: Counter = Counter()
    for r in records:
        for rd in r.get("rounds") or []:
            for c in rd.get("candidates") or []:
                cand_status[str(c.get("status"))] += 1

    per_task = []
    for r in records:
        p, c = _tokens(r)
        per_task.append({
            "task_id": r.get("task_id"),
            "status": r.get("status"),
            "verified": r.get("verified"),
            "fixed": is_fixed(r),
            "fixed_round": fix_round(r),
            "rounds": len(r.get("rounds") or []),
            "candidates": sum(len(rd.get("candidates") or []) for rd in r.get("rounds") or []),
            "failing_before": _failing(r.get("tests_before")),
            "failing_after": _failing(r.get("tests_after")),
            "tokens": p + c,
            "duration_s": _num(r.get("duration_s")),
            "faithfulness": _num(r.get("faithfulness")),
            "root_cause": (r.get("root_cause") or "").strip(),
            "explanation": _explained(r),
            "error": r.get("error") or "",
            "run_id": r.get("run_id"),
            "source": r.get("source") if is_fixed(r) else None,
            "candidates_tried": _tried(r),
            **({k: r.get(k) for k in ("correct", "correct_reason", "first_difference", "patch_lines",
                                      "patch_noise_lines")} if is_fixed(r) else {}),
        })

    return {
        "dataset": labels.get("dataset") or _one_or_mixed(r.get("dataset") for r in records),
        "model": labels.get("model") or _one_or_mixed(r.get("model") for r in records),
        "mode": labels.get("mode") or _one_or_mixed(r.get("mode") for r in records),
        "tasks": len(records),
        "interrupted": bool(labels.get("interrupted")),  # stopped early: the summary of the tasks that finished
        "env_errors": env_errors,  # not scored: the tests could not run (not in any rate's denominator)
        "not_reproduced": not_reproduced,  # not scored either: the benchmark's bug did not show, not run
        "fixed": fixed,
        "fix_rate": _div(fixed, n),
        "fixed_by_round": fixed_by_round,
        "fix_rate_by_round": [x / n for x in fixed_by_round] if n else [],
        "pass_at_1": _div(fixed_r0, n),
        "self_refinement_rate": _div(later, n - fixed_r0),
        "claimed_not_verified": sum(1 for r in records
                                    if r.get("status") == "fixed" and r.get("verified") is not True),
        "status_counts": dict(Counter(str(r.get("status")) for r in records)),
        "candidate_status_counts": dict(cand_status),
        "tokens_prompt": prompt,
        "tokens_completion": completion,
        "tokens_total": tokens_total,
        "wall_s": wall,
        "tokens_per_task": _div(tokens_total, n),
        "wall_s_per_task": _div(wall, n),
        "tokens_per_fix": _div(tokens_total, fixed),
        "wall_s_per_fix": _div(wall, fixed),
        "wall_clock_s": _num(labels.get("wall_clock_s")),  # the run's real time; wall_s sums the tasks
        "candidates_tried": sum(_tried(r) for r in records),
        "fixed_by_source": dict(Counter(str(r.get("source") or "refine") for r in records if is_fixed(r))),
        "correct_by_source": dict(Counter(str(r.get("source") or "refine") for r in records if is_correct(r))),
        "median_tokens_per_fixed_task": _median([sum(_tokens(r)) for r in records if is_fixed(r)]),
        "median_wall_s_per_task": _median([_num(r.get("duration_s")) or 0.0 for r in records]),
        "mean_faithfulness": sum(faith) / len(faith) if faith else None,
        "faithfulness_n": len(faith),
        **explanations(records),
        "settings": dict(settings or {}),
        # the commits that ran; >1: a resumed run spans versions; "unknown": records older than `code`
        "code_versions": sorted({str(r.get("code") or "unknown") for r in records}),
        **correctness,
        **cluster_use(records),
        "per_task": per_task,
    }


def cluster_use(records: list[dict]) -> dict:
    """On Ray (records with a `node`): the nodes used, each one's tasks and the wall time its tasks took,
    and the tasks run more than once because a node or worker was lost."""
    nodes: dict[str, dict] = {}
    for r in records:
        if r.get("node"):
            n = nodes.setdefault(r["node"], {"tasks": 0, "wall_s": 0.0})
            n["tasks"] += 1
            n["wall_s"] = round(n["wall_s"] + (_num(r.get("task_wall_s")) or 0.0), 1)
    if not nodes:
        return {}
    return {"nodes": nodes, "retried": sum(1 for r in records if (r.get("attempts") or 1) > 1)}


def _tried(rec: dict) -> int:
    """Candidates a task checked: the search's, else the model's answers (older records)."""
    if isinstance(rec.get("candidates_tried"), int):
        return rec["candidates_tried"]
    return sum(len(rd.get("candidates") or []) for rd in rec.get("rounds") or [])


def _median(xs: list[float]) -> float | None:
    xs = sorted(xs)
    if not xs:
        return None
    mid = len(xs) // 2
    return float(xs[mid]) if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def _correctness(records: list[dict], rounds_max: int) -> dict:
    """Plausible (= fixed) against correct, by round; the patch size per plausible fix."""
    n = sum(not is_unscored(r) for r in records)
    plausible = [r for r in records if is_fixed(r)]
    measured = any("correct" in r for r in plausible) or not plausible
    rounds = [fix_round(r) for r in plausible if r.get("correct") is True]
    by_round = [sum(1 for fr in rounds if fr <= k) for k in range(rounds_max + 1)] if measured else None
    sizes = [r for r in plausible if isinstance(r.get("patch_lines"), int)]
    correct = len(rounds) if measured else None
    chosen = [r for r in plausible if r.get("first_found_correct") is not None]
    return {
        "plausible": len(plausible),
        "plausible_rate": _div(len(plausible), n),
        "correct": correct,
        "correct_rate": _div(correct, n) if measured else None,
        "correct_of_plausible": _div(correct, len(plausible)) if measured else None,
        "overfitting": sum(1 for r in plausible if r.get("correct") is False) if measured else None,
        "correct_unknown": sum(1 for r in plausible if r.get("correct") == "unknown") if measured else None,
        "correct_by_round": by_round,
        "correct_rate_by_round": [x / n for x in by_round] if by_round and n else [],
        # what the agent said of its own fix (the guard's confidence) against what the reference says
        "by_confidence": {c: {"plausible": sum(1 for r in plausible if r.get("confidence") == c),
                              "correct": sum(1 for r in plausible if r.get("confidence") == c
                                             and r.get("correct") is True) if measured else None}
                          for c in sorted({str(r.get("confidence")) for r in plausible if r.get("confidence")})},
        # where the search found several plausible patches: the guard's pick against the first found
        "choice": {"tasks": len(chosen), "pick_correct": sum(r.get("correct") is True for r in chosen),
                   "first_found_correct": sum(r["first_found_correct"] is True for r in chosen)},
        "patch_lines_per_fix": _div(sum(r["patch_lines"] for r in sizes), len(sizes)),
        "patch_noise_lines_per_fix": _div(sum(r.get("patch_noise_lines") or 0 for r in sizes), len(sizes)),
    }


def write_summary(out_dir: Path | str, records: list[dict] | None = None,
                  settings: dict | None = None, **labels: Any) -> dict:
    """Summarize `records` (default: `<out_dir>/records.jsonl`) and write summary.json,
    report.md and fix_rate.png into `out_dir`. Returns the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if records is None:
        records = load_records(out_dir)
    s = summarize(records, settings=settings, **labels)
    (out_dir / SUMMARY_FILE).write_text(json.dumps(s, indent=2) + "\n", encoding="utf-8")
    write_report(s, out_dir)
    return s


# ----------------------------------------------------------------------------- compare

def load_summary(run_dir: Path | str) -> dict:
    """`<dir>/summary.json`, or a summary computed from `<dir>/records.jsonl`."""
    run_dir = Path(run_dir)
    f = run_dir / SUMMARY_FILE
    if f.is_file():
        return json.loads(f.read_text(encoding="utf-8"))
    return summarize(load_records(run_dir))


COMPARE_COLUMNS = ("run", "dataset", "model", "mode", "tasks", "env_errors", "fixed", "fix_rate", "correct",
                   "correct_rate", "pass_at_1", "self_refinement_rate", "fixed_by_round", "tokens_per_task",
                   "tokens_per_fix", "wall_s_per_task", "mean_faithfulness", "wall_clock_s",
                   "median_tokens_per_fixed_task")


def compare(dirs: list[Path | str], out: Path | str | None = None,
            console=None) -> tuple[list[dict], Path]:
    """Several result folders side by side: a rich table (printed) and one plot, a line per run.

    Returns (rows, png path); rows are dicts with COMPARE_COLUMNS. The plot goes to `out`
    (a .png path or a folder; default: the first run's parent folder).
    """
    if not dirs:
        raise ValueError("compare needs at least one result folder")
    runs = []
    rows = []
    names = [Path(d).name for d in dirs]
    for d, name in zip(dirs, names):
        s = load_summary(d)
        label = name if names.count(name) == 1 else str(d)
        runs.append((f"{label} ({run_label(s, label)})", s))
        row = {"run": label, **{k: s.get(k) for k in COMPARE_COLUMNS[1:]}}
        rows.append(row)
    print_comparison(rows, console)
    return rows, plot_comparison(runs, Path(out) if out is not None else Path(dirs[0]).resolve().parent)


def _explained(r: dict) -> dict | None:
    """A fix's explanation check in a line: kept or set aside, names the change, what was false."""
    e = r.get("explanation") or {}
    check = e.get("check") or {}
    if not check:
        return None
    return {"replaced": e.get("replaced"), "names_change": e.get("names_change"),
            "contradicted": check.get("contradicted"), "alien": check.get("alien") or [],
            "echo": bool(check.get("echo"))}


def explanations(records: list[dict]) -> dict:
    """Of the fixes: how many carry the evidence and a checked explanation; of the root causes, how many
    name the changed expression, and of the model's answers (as checked, before any set aside) how many
    named code that exists nowhere or echoed the prompt."""
    fixes = [r for r in records if is_fixed(r)]
    checked = [x for x in (_explained(r) for r in fixes) if x]
    return {
        "fixes_with_evidence": sum(1 for r in fixes if (r.get("evidence") or {}).get("text")),
        "fixes_explained_checked": len(checked),
        "root_causes_naming_the_change": sum(1 for x in checked if x["names_change"]),
        "explanations_set_aside": sum(1 for x in checked if x["replaced"]),
        "answers_with_alien_names": sum(1 for x in checked if x["alien"]),
        "answers_echoing_the_prompt": sum(1 for x in checked if x["echo"]),
    }
