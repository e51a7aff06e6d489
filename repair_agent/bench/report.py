"""A run's numbers (summary.py) as people read them: report.md, the console table, the plots, and
several runs side by side. Takes summaries, never records."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

REPORT_FILE = "report.md"
PLOT_FILE = "fix_rate.png"
COST_PLOT_FILE = "fix_cost.png"
COMPARE_PLOT_FILE = "compare_fix_rate.png"


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
        ("fixes with evidence, with a checked explanation", f"{_fmt(s.get('fixes_with_evidence', 0))}, "
                                                             f"{_fmt(s.get('fixes_explained_checked', 0))}"),
        ("root causes naming the changed expression (set aside)",
         f"{_fmt(s.get('root_causes_naming_the_change', 0))} ({_fmt(s.get('explanations_set_aside', 0))})"),
        ("last answers naming code found nowhere, echoing the prompt",
         f"{_fmt(s.get('answers_with_alien_names', 0))}, {_fmt(s.get('answers_echoing_the_prompt', 0))}"),
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


def run_label(s: dict, fallback: str = "run") -> str:
    strategies = (s.get("settings") or {}).get("strategies")
    parts = [str(x) for x in (s.get("model") or (strategies and "no model"), s.get("mode"), strategies) if x]
    return " / ".join(parts) or fallback


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


def write_report(s: dict, out_dir: Path) -> None:
    """report.md, fix_rate.png and fix_cost.png of one run, into `out_dir`."""
    (out_dir / REPORT_FILE).write_text(render_report(s), encoding="utf-8")
    plot_fix_rate([(run_label(s, out_dir.name), s)], out_dir / PLOT_FILE,
                  title=f"Fix rate by round, plausible and correct: {s.get('dataset') or out_dir.name}")
    plot_fix_cost([(run_label(s, out_dir.name), s)], out_dir / COST_PLOT_FILE)


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


def print_comparison(rows: list[dict], console=None) -> None:
    """The rows of several runs (summary.compare) as one rich table."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

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


def plot_comparison(runs: list[tuple[str, dict]], out: Path) -> Path:
    """Both plots of several runs, a line per run: to `out` (a .png path or a folder). Returns the
    fix-rate plot's path; the cost plot is beside it (`*_cost.png`)."""
    png = out if out.suffix == ".png" else out / COMPARE_PLOT_FILE
    png.parent.mkdir(parents=True, exist_ok=True)
    plot_fix_rate(runs, png, title="Fix rate by round: plausible and correct")
    plot_fix_cost(runs, png.with_name(png.stem + "_cost.png"))
    return png
