"""Benchmark summaries: fix rate per round, self-refinement rate, pass@1, cost; report and plots.

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
import math
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

RECORDS_FILE = "records.jsonl"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.md"
PLOT_FILE = "fix_rate.png"
COST_PLOT_FILE = "fix_cost.png"
COMPARE_PLOT_FILE = "compare_fix_rate.png"


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


# ----------------------------------------------------------------------------- outputs

def _fmt(x: Any, pct: bool = False, digits: int = 1) -> str:
    if x is None:
        return "-"
    if pct:
        return f"{100 * x:.{digits}f}%"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _metric_rows(s: dict) -> list[tuple[str, str]]:
    server = (s.get("settings") or {}).get("model_server")  # the embedded one that the workers share
    return [
        ("dataset", _fmt(s.get("dataset"))),
        ("model", _fmt(s.get("model"))),
        ("mode", _fmt(s.get("mode"))),
        ("tasks", _fmt(s["tasks"])),
        ("environment errors (the tests could not run; left out of every rate)", _fmt(s.get("env_errors", 0))),
        ("bugs that did not reproduce (not run; left out of every rate)", _fmt(s.get("not_reproduced", 0))),
        ("fixed (verified)", f"{s['fixed']} ({_fmt(s.get('fix_rate'), pct=True)})"),
        ("correct (agrees with the reference)", _correct_text(s)),
        ("patch lines per fix (of them comments or blank)",
         f"{_fmt(s.get('patch_lines_per_fix'))} ({_fmt(s.get('patch_noise_lines_per_fix'))})"),
        ("pass@1 (round 0)", _fmt(s.get("pass_at_1"), pct=True)),
        ("self-refinement rate", _fmt(s.get("self_refinement_rate"), pct=True)),
        ("fixed by round (cumulative)", " / ".join(map(str, s.get("fixed_by_round") or [])) or "-"),
        ("claimed fixed, not verified", _fmt(s.get("claimed_not_verified", 0))),
        ("tokens total", _fmt(s.get("tokens_total"))),
        ("tokens per task", _fmt(s.get("tokens_per_task"), digits=0)),
        ("tokens per fix", _fmt(s.get("tokens_per_fix"), digits=0)),
        ("fixes by source (correct)", ", ".join(f"{k} {v} ({(s.get('correct_by_source') or {}).get(k, 0)})"
                                               for k, v in sorted((s.get("fixed_by_source") or {}).items())) or "-"),
        ("candidates tried", _fmt(s.get("candidates_tried"))),
        ("median tokens per fixed task", _fmt(s.get("median_tokens_per_fixed_task"), digits=0)),
        ("wall clock of the run (s)", _fmt(s.get("wall_clock_s"))),
        ("wall time total (s)", _fmt(s.get("wall_s"))),
        ("wall time per task (s)", _fmt(s.get("wall_s_per_task"))),
        ("wall time per fix (s)", _fmt(s.get("wall_s_per_fix"))),
        ("mean faithfulness", _fmt(s.get("mean_faithfulness"), digits=3)
         + (f" (n={s['faithfulness_n']})" if s.get("faithfulness_n") else "")),
    ] + ([("model server", server)] if server else []) + ([
        ("nodes used (Ray)", _fmt(len(s["nodes"]))),
        ("wall time per node (s), tasks", "; ".join(f"{k}: {v['wall_s']:,.1f}, {v['tasks']}"
                                                    for k, v in sorted(s["nodes"].items()))),
        ("tasks retried (a node or worker lost)", _fmt(s.get("retried", 0))),
    ] if s.get("nodes") else [])


def _correct_text(s: dict) -> str:
    if s.get("correct") is None:
        return "not measured"
    return (f"{s['correct']} ({_fmt(s.get('correct_rate'), pct=True)}); "
            f"{_fmt(s.get('correct_of_plausible'), pct=True)} of the plausible; "
            f"{s.get('overfitting', 0)} overfitting, {s.get('correct_unknown', 0)} unknown"
            + "".join(f"; confidence {c}: {n['correct']} of {n['plausible']} correct"
                      for c, n in (s.get("by_confidence") or {}).items())
            + (f"; with several plausible patches ({c['tasks']} tasks) the guard's pick was correct "
               f"{c['pick_correct']} times, the first found {c['first_found_correct']}"
               if (c := s.get("choice") or {}).get("tasks") else ""))


def _md_cell(x: str) -> str:
    return x.replace("|", "\\|").replace("\n", " ")


def render_report(summary: dict) -> str:
    s = summary
    title = " / ".join(str(x) for x in (s.get("dataset"), s.get("model"), s.get("mode")) if x)
    out = [f"# Benchmark report: {title or 'run'}", ""]
    if s.get("interrupted"):
        out += ["The run was interrupted: these are the tasks that finished. The same command resumes it.", ""]
    out += ["| metric | value |", "|---|---|"]
    out += [f"| {_md_cell(k)} | {_md_cell(v)} |" for k, v in _metric_rows(s)]
    if s.get("fixed_by_round"):
        out += ["", "## Fix rate by round (cumulative)", "", "| round | fixed | rate |",
                "|---|---|---|"]
        for r, (k, rate) in enumerate(zip(s["fixed_by_round"], s["fix_rate_by_round"])):
            out.append(f"| {r} | {k} | {100 * rate:.1f}% |")
    if s.get("settings"):
        out += ["", "## Settings", ""]
        out += [f"- `{k}`: `{json.dumps(v)}`" for k, v in sorted(s["settings"].items())]
    if s.get("code_versions"):
        out += [f"- code: {', '.join(f'`{v}`' for v in s['code_versions'])}"]
    out += ["", "## Tasks", ""]
    for t in s.get("per_task") or []:
        if t["fixed"]:
            verdict = f"fixed in round {t['fixed_round']}"
        elif t["status"] == "env_error":
            verdict = "environment error, not scored"
        elif t["status"] == "not_reproduced":
            verdict = "did not reproduce, not run"
        elif t["status"] == "fixed":
            verdict = "agent claimed a fix, NOT verified"
        else:
            verdict = str(t["status"])
        bits = [f"{t['rounds']} round(s), {t.get('candidates_tried') or t['candidates']} candidate(s)"]
        if t.get("source"):
            verdict += f" by {t['source']}"
        if t["failing_before"] is not None:
            after = "-" if t["failing_after"] is None else t["failing_after"]
            bits.append(f"failing {t['failing_before']} -> {after}")
        bits.append(f"{t['tokens']:,} tokens")
        if t["duration_s"] is not None:
            bits.append(f"{t['duration_s']:.1f} s")
        if t["faithfulness"] is not None:
            bits.append(f"faithfulness {t['faithfulness']:.2f}")
        line = f"- `{t['task_id']}`: **{verdict}**{_correct_note(t)}; " + ", ".join(bits)
        if t["root_cause"]:
            rc = " ".join(t["root_cause"].split())
            line += f". Root cause: {rc[:300]}{'...' if len(rc) > 300 else ''}"
        if t.get("error"):
            line += f". {' '.join(t['error'].split())[:400]}"
        out.append(line)
    return "\n".join(out) + "\n"


def _correct_note(t: dict) -> str:
    """`, correct` / `, NOT CORRECT (why; the first differing input)` / `, correctness unknown (why)`."""
    if not t.get("fixed") or "correct" not in t or t["correct"] is None:
        return ""
    size = f", {t['patch_lines']} lines changed" if t.get("patch_lines") is not None else ""
    if t["correct"] is True:
        return f", correct{size}"
    if t["correct"] is False:
        d = t.get("first_difference") or {}
        shown = d.get("text") or json.dumps(d.get("input"))[:300]
        return f", **NOT CORRECT** ({t.get('correct_reason')}: `{shown}`){size}"
    return f", correctness unknown ({t.get('correct_reason')}){size}"


def plot_fix_rate(runs: list[tuple[str, dict]], path: Path | str, title: str | None = None) -> Path:
    """One line per run: cumulative verified (plausible) fix rate (%) after each round, and beside
    it, dashed in the same colour, the correct fix rate where it was measured. Agg, no pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # the legend goes under the axes, so it never hides a line: the figure grows with the runs
    styles = any(s.get("correct_rate_by_round") for _, s in runs)  # two more legend rows: the line styles
    fig = Figure(figsize=(6.4, 4.0 + 0.22 * (len(runs) + 2 * styles)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    rmax, ymax = 0, 0.0
    for label, s in runs:
        ys = [100 * x for x in s.get("fix_rate_by_round") or []]
        if not ys:
            continue
        rmax, ymax = max(rmax, len(ys) - 1), max(ymax, *ys)
        (line,) = ax.plot(range(len(ys)), ys, marker="o", label=label)
        correct = [100 * x for x in s.get("correct_rate_by_round") or []]
        if correct:
            ax.plot(range(len(correct)), correct, marker="x", linestyle="--", color=line.get_color())
    ax.set_xlabel("round")
    ax.set_ylabel("tasks fixed, cumulative (%)")
    ax.set_xticks(range(rmax + 1))
    ax.set_ylim(0, min(105, max(10, 10 * math.ceil(ymax * 1.25 / 10))))  # low rates stay readable
    ax.grid(True, alpha=0.3)
    ax.set_title(title or "Fix rate by refinement round: plausible and correct")
    if runs:
        handles = ax.get_legend_handles_labels()[0]
        if styles:
            from matplotlib.lines import Line2D

            handles += [Line2D([], [], color="gray", marker="o", label="plausible (the benchmark's tests pass)"),
                        Line2D([], [], color="gray", marker="x", linestyle="--",
                               label="correct (agrees with the reference program)")]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def _run_label(s: dict, fallback: str = "run") -> str:
    strategies = (s.get("settings") or {}).get("strategies")
    parts = [str(x) for x in (s.get("model") or (strategies and "no model"), s.get("mode"), strategies) if x]
    return " / ".join(parts) or fallback


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
    (out_dir / REPORT_FILE).write_text(render_report(s), encoding="utf-8")
    plot_fix_rate([(_run_label(s, out_dir.name), s)], out_dir / PLOT_FILE,
                  title=f"Fix rate by round, plausible and correct: {s.get('dataset') or out_dir.name}")
    plot_fix_cost([(_run_label(s, out_dir.name), s)], out_dir / COST_PLOT_FILE)
    return s


COSTS = (("candidates_tried", "candidates tried per task"), ("tokens", "model tokens per task"),
         ("duration_s", "wall time per task (s)"))


def plot_fix_cost(runs: list[tuple[str, dict]], path: Path | str) -> Path:
    """Fixes against what they cost: for each budget x, the tasks fixed (plausible, solid; correct,
    dashed) at a cost of at most x per task, in candidates, model tokens and wall time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.0 + 0.22 * len(runs)), dpi=100)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, len(COSTS), i + 1) for i in range(len(COSTS))]
    for ax, (key, label) in zip(axes, COSTS):
        for name, s in runs:
            tasks = s.get("per_task") or []
            for which, style in (("fixed", "-"), ("correct", "--")):
                xs = sorted(float(t.get(key) or 0) for t in tasks if t.get(which) is True)
                if xs:
                    ax.step([0, *xs], range(len(xs) + 1), where="post", linestyle=style,
                            label=name if which == "fixed" else None,
                            color=None if which == "fixed" else ax.lines[-1].get_color())
        ax.set_xlabel(label)
        ax.set_ylabel("tasks fixed")
        ax.grid(True, alpha=0.3)
        if key != "candidates_tried":
            ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(0, max([1.0, *(float(t.get(key) or 0) for _, s in runs for t in s.get("per_task") or [])]) * 1.1)
    axes[0].set_title("solid: plausible; dashed: correct", fontsize="small")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", fontsize="small", ncol=1)
    fig.tight_layout(rect=(0, 0.03 + 0.06 * len(runs), 1, 1))
    path = Path(path)
    fig.savefig(path)
    return path


def print_summary(summary: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="Benchmark summary", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in _metric_rows(summary):
        table.add_row(k, v)
    console.print(table)


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
    from rich import box
    from rich.console import Console
    from rich.table import Table

    if not dirs:
        raise ValueError("compare needs at least one result folder")
    runs = []
    rows = []
    names = [Path(d).name for d in dirs]
    for d, name in zip(dirs, names):
        s = load_summary(d)
        label = name if names.count(name) == 1 else str(d)
        runs.append((f"{label} ({_run_label(s, label)})", s))
        row = {"run": label, **{k: s.get(k) for k in COMPARE_COLUMNS[1:]}}
        rows.append(row)

    datasets = sorted({str(r["dataset"]) for r in rows if r.get("dataset")})
    table = Table(title="Benchmark comparison" + (f": {', '.join(datasets)}" if datasets else ""),
                  show_header=True, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
                  collapse_padding=True,
                  caption="plausible = verified fixes/tasks (environment errors not counted); correct = those "
                          "that also agree with the reference; refine = self-refinement rate; "
                          "rounds = cumulative fixes by round; tok, s = per task")
    headers = [("run", "left"), ("model", "left"), ("mode", "left"), ("plausible", "right"),
               ("plaus%", "right"), ("correct", "right"), ("corr%", "right"), ("pass@1", "right"), ("refine", "right"),
               ("rounds", "right"), ("tok", "right"), ("s", "right"),
               ("faith", "right")]
    for h, justify in headers:
        table.add_column(h, justify=justify, no_wrap=True)
    for r in rows:
        scored = (r.get("tasks") or 0) - (r.get("env_errors") or 0)  # environment errors are not scored
        table.add_row(
            str(r["run"]), _fmt(r.get("model")), _fmt(r.get("mode")),
            f"{r.get('fixed', 0)}/{scored}", _fmt(r.get("fix_rate"), pct=True),
            "-" if r.get("correct") is None else f"{r['correct']}/{scored}",
            _fmt(r.get("correct_rate"), pct=True),
            _fmt(r.get("pass_at_1"), pct=True), _fmt(r.get("self_refinement_rate"), pct=True),
            "/".join(map(str, r.get("fixed_by_round") or [])) or "-",
            _fmt(r.get("tokens_per_task"), digits=0), _fmt(r.get("wall_s_per_task")),
            _fmt(r.get("mean_faithfulness"), digits=2))
    (console or Console()).print(table)

    out = Path(out) if out is not None else Path(dirs[0]).resolve().parent
    png = out if out.suffix == ".png" else out / COMPARE_PLOT_FILE
    png.parent.mkdir(parents=True, exist_ok=True)
    plot_fix_rate(runs, png, title="Fix rate by round: plausible and correct")
    plot_fix_cost(runs, png.with_name(png.stem + "_cost.png"))
    return rows, png
