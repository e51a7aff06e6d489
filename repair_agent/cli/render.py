"""A result on stdout, as a user reads it: `fix`'s panel, patch and test counts; `explain`'s diagnosis."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from .console import PipeConsole


def show(result: dict) -> None:
    out = PipeConsole()
    colour = {"fixed": "green", "no_failures": "green", "not_fixed": "yellow"}.get(result["status"], "red")
    out.print(Panel(f"[bold {colour}]{result['status']}[/]  run {result['run_id']}  "
                    f"{result['duration_s']}s  tokens {result['tokens']['prompt']}+{result['tokens']['completion']}"
                    f"  {result.get('stop_reason', '')}", title="repair-agent"))
    search = result.get("search") or {}
    if search.get("sources"):
        found = f"found by [bold]{result['source']}[/]" if result.get("source") else "no fix"
        spent = ", ".join(f"{name} {stats['tried']}" for name, stats in search.get("by_source", {}).items())
        out.print(f"search: {found} after {search.get('tried', 0)} candidates ({spent}); "
                  f"{len(search.get('plausible', []))} plausible", highlight=False)
    if result.get("confidence"):
        colour = {"high": "green", "low": "red"}.get(result["confidence"], "yellow")
        out.print(f"confidence: [bold {colour}]{result['confidence']}[/]  "
                  f"{escape(result.get('confidence_reason') or '')}", highlight=False)
    if test := result.get("deciding_test"):
        out.print(f"deciding test: {test['file']} (the input on which the patches disagree, with patch #1's "
                  "result: check it; --apply or --branch NAME with --add-tests adds it as "
                  f"{test['path']})", markup=False, highlight=False, soft_wrap=True)
    explained = result.get("explanation") or {}
    if result["root_cause"]:
        title = ("root cause (from the traces: the model's words were set aside)" if explained.get("replaced") else
                 "root cause (the model's words)" if result.get("model") else "what changed (no model asked)")
        out.print(Panel(escape(result["root_cause"]), title=title))
    if result.get("evidence"):
        out.print(Panel(escape(result["evidence"]["text"]), title="evidence (read from the traces)"))
    if check := explained.get("check"):
        out.print(f"explanation checked: {check['checked']} claims, {check['contradicted']} false (score "
                  f"{check['score']}); names the changed expression: {'yes' if explained['names_change'] else 'no'}"
                  f"; {explained['attempts']} answer(s)", highlight=False, markup=False)
    if result["patch"]:
        out.print(Syntax(result["patch"], "diff", theme="ansi_dark", background_color="default"))
    if result.get("best_attempt"):
        show_attempt(out, result["best_attempt"])
    table = Table("", "passed", "failed", "errors", "skipped", title="tests")
    for name in ("tests_before", "tests_after"):
        t = result[name]
        table.add_row(name.replace("tests_", ""), *(str(t[k]) for k in ("passed", "failed", "errors", "skipped")))
    out.print(table)
    if result.get("baseline"):
        out.print(f"baseline: {len(result['baseline'])} test(s) failed before and were not asked about "
                  f"(--known-failures), so they may still fail: {', '.join(result['baseline'][:5])}", highlight=False)
    for r in result["rounds"]:
        for c in r["candidates"]:
            out.print(f"  round {r['round']} candidate {c['index']}: {c['status']} {c['reason']}", highlight=False)


def show_attempt(out: Console, attempt: dict) -> None:
    """No fix: the candidate that came closest, its test counts and its diff."""
    where = (f"{attempt['source']} {attempt['file']}:{attempt['line']} {attempt['note']}" if attempt.get("file")
             else f"{attempt['source']} round {attempt['round']} candidate {attempt['index']}")
    failing, suite = attempt["tests"]["failing"], attempt["tests"].get("suite")
    counted = f"{failing['passed']} of {attempt['failing_total']} failing tests pass" + (
        f"; the full suite: {suite['passed']} passed, {suite['failed'] + suite['errors']} failed" if suite else "")
    out.print(f"closest attempt, not a fix ({where}): {counted}; {attempt['reason']}", markup=False, highlight=False)
    out.print(Syntax(attempt["patch"], "diff", theme="ansi_dark", background_color="default"))


def show_diagnosis(result: dict) -> None:
    """`explain`: the ranked locations, the trace, the root cause and how faithful the model was to it."""
    from ..tracing import trace_text

    out = PipeConsole()
    table = Table("file", "function", "line", "score", title="suspicious locations")
    for loc in result["locations"][:10]:
        table.add_row(loc["file"], loc["function"], str(loc["line"]), f"{loc['score']:.3f}")
    out.print(table)
    if result["trace"]:
        out.print(Panel(escape(trace_text(result["trace"], budget_tokens=400)), title="execution trace"))
    out.print(Panel(escape(result["root_cause"] or "(the model gave no root cause)"), title="root cause"))
    f = result["faithfulness"]
    score = f"score {f['score']}" if f["score"] is not None else \
        "not scored: no claim that the trace could settle" if result["trace"] else "not scored: no trace"
    out.print(f"faithfulness: {f['claims']} claims, {f['checked']} checked, {f['contradicted']} contradicted"
              f" ({score})", highlight=False)
    for c in f.get("contradictions") or []:
        out.print(f"  - {c}", highlight=False, markup=False)
