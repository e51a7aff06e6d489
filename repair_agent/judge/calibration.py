"""How far the guard's `high` can be trusted: measured on the labelled plausible patches of
benchmark runs (the harness's `correct`: QuixBugs against the reference program, BugsInPy against
the human fix), never on held-out projects.

A run's records give, for each plausible fix, the guard's grade (`confidence`, its `confidence_reason`),
the harness's label (`correct`), and the other plausible patches the search found
(`search.plausible`: each with the guard's counts and the anti-pattern rules' `suspect`). Those other
patches are labelled in a separate file (`benchmarks/calibration.py --label` runs the harness's check
on each), so that the guard's pick can be set against a random pick among the plausible patches.

A *rule* says, from what the guard saw, whether a fix is graded `high` (what `ci --min-confidence high`
would open a pull request for). `guard` is the rule as recorded; the others are read from the same
records.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

from .guard import size

# the functions the anti-pattern rules were written after: the guard's gain measured without them too
RULES_SEEN_ON = ("depth_first_search", "detect_cycle")
LITTLE_COULD = "nothing speaks against it, though little could"


def patch_key(task_id: str, patch: str) -> str:
    """One key per task and change: the diff's `index` lines (blob ids) left out."""
    body = "\n".join(ln for ln in patch.splitlines() if not ln.startswith("index "))
    return f"{task_id}:{hashlib.sha256(body.encode()).hexdigest()[:16]}"


# -- what the guard saw ----------------------------------------------------------------------------
def evidence(reason: str) -> dict:
    """The counts a `confidence_reason` states: calls of tests that passed before whose outcome the
    patch keeps, inputs on which several patches agree (generated ones among them), docstring examples."""
    def num(pattern: str) -> int:
        m = re.search(pattern, reason or "")
        return int(m.group(1)) if m else 0

    return {"passing_calls": num(r"(?:keeps|none changes) the outcome of the (\d+) call"),
            "agreed_inputs": num(r"agree on (\d+) inputs"),
            "agreed_generated": num(r"agree on \d+ inputs \(\d+ from the tests, (\d+) generated"),
            "docstring_examples": num(r"(\d+) docstring example"),
            "nothing_run": LITTLE_COULD in (reason or "")}


def shape(patch: str) -> dict:
    """The patch's size and whether it deletes or weakens a check: a removed `if`/`elif`/`assert`/`raise`
    line that no added line restores, or an added `raise` (a new way to fail) or `try`/`except`."""
    added = [ln[1:].strip() for ln in patch.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    removed = [ln[1:].strip() for ln in patch.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    checks = ("if ", "elif ", "assert ", "raise ")
    dropped = [ln for ln in removed if ln.startswith(checks) and not any(a.startswith(ln.split()[0]) for a in added)]
    lines, chars = size(patch)
    return {"changed_lines": lines, "changed_chars": chars, "drops_check": bool(dropped),
            "adds_raise": any(a.startswith("raise ") or a == "raise" for a in added),
            "adds_try": any(a.startswith(("try:", "except")) for a in added)}


# -- the rules -------------------------------------------------------------------------------------
def _guard(fix: dict) -> bool:
    return fix["confidence"] == "high"


def _some_evidence(fix: dict) -> bool:
    return _guard(fix) and not fix["evidence"]["nothing_run"]


def _proposed(fix: dict) -> bool:
    """`high` with something run against the patch, and no new way to fail or check dropped."""
    s = fix["shape"]
    return _some_evidence(fix) and not (s["drops_check"] or s["adds_raise"] or s["adds_try"])


RULES = {
    "guard": (_guard, "the guard's grade as recorded (judge/guard.py)"),
    "some_evidence": (_some_evidence, "guard, less a single patch against which nothing ran "
                                      "(no passing test calls the function, no docstring example)"),
    "proposed": (_proposed, "some_evidence, less a patch that adds a raise or try/except or drops a check"),
}


# -- the records -----------------------------------------------------------------------------------
def fixes(records: list[dict], run: str) -> list[dict]:
    """One row per plausible fix of a run: its grade, label, what the guard saw, and the plausible
    patches the search found (the fix's own first when the search ranked it so)."""
    rows = []
    for r in records:
        if not r.get("plausible"):
            continue
        found = (r.get("search") or {}).get("plausible") or []
        rows.append({"run": run, "dataset": r.get("dataset"), "task_id": r["task_id"], "patch": r["patch"],
                     "key": patch_key(r["task_id"], r["patch"]), "correct": r.get("correct"),
                     "confidence": r.get("confidence"), "reason": r.get("confidence_reason") or "",
                     "evidence": evidence(r.get("confidence_reason") or ""), "shape": shape(r["patch"]),
                     "first_found_correct": r.get("first_found_correct"),
                     "found": [{"key": patch_key(r["task_id"], f["patch"]), "patch": f["patch"],
                                "found": f.get("found", n), "guard": f.get("guard"),
                                "suspect": f.get("suspect") or []} for n, f in enumerate(found)]})
    return rows


def known_labels(rows: list[dict]) -> dict[str, object]:
    """The labels the records hold: each fix's own (`correct`: True, False or "unknown")."""
    return {row["key"]: row["correct"] for row in rows if row["correct"] is not None}


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 3) if b else None


def grade_counts(rows: list[dict], rule) -> dict:
    """Precision and recall of `high` under `rule`, over the graded fixes (a recorded confidence);
    an `unknown` label counts in neither."""
    graded = [f for f in rows if f["confidence"] is not None]
    high = [f for f in graded if rule(f)]
    c = Counter(str(f["correct"]) for f in high)
    correct = sum(f["correct"] is True for f in graded)
    return {"graded": len(graded), "high": len(high), "high_correct": c["True"], "high_wrong": c["False"],
            "high_unknown": c["unknown"], "correct": correct,
            "correct_rejected": correct - c["True"],
            "wrong_rejected": sum(f["correct"] is False for f in graded) - c["False"],
            "precision": _ratio(c["True"], c["True"] + c["False"]), "recall": _ratio(c["True"], correct),
            "wrong_high": sorted({f["task_id"] for f in high if f["correct"] is False})}


def choice(rows: list[dict], labels: dict, leave_out: tuple[str, ...] = ()) -> dict:
    """The guard's pick against the first-found patch and a random pick (the expected share of
    correct patches in the plausible set), on the graded tasks (the guard ran) with several plausible
    patches, all labelled True or False."""
    tasks = [f for f in rows if len(f["found"]) > 1 and f["task_id"] not in leave_out and f["confidence"] is not None]
    done, unlabelled = [], []
    for f in tasks:
        marks = [labels.get(p["key"]) for p in f["found"]]
        (done if all(m in (True, False) for m in marks) and f["correct"] in (True, False) else unlabelled).append(
            (f, marks))
    first = [marks[min(range(len(marks)), key=lambda n: f["found"][n]["found"])] for f, marks in done]
    return {"tasks": len(done), "pick_correct": sum(f["correct"] is True for f, _ in done),
            "first_found_correct": sum(m is True for m in first),
            "random_expected": round(sum(sum(m is True for m in marks) / len(marks) for _, marks in done), 3),
            "unlabelled": sorted(f"{f['run']}/{f['task_id']}" for f, _ in unlabelled)}


def signal_counts(rows: list[dict], labels: dict) -> dict:
    """For every distinct labelled plausible patch (the fixes and the others the search found): how
    many correct and wrong patches each per-patch signal flags (what a rule built on it would reject).
    A patch found in several runs is flagged when any run's guard flagged it (older runs kept no counts)."""
    seen: dict[str, list[dict]] = {}
    for f in rows:
        for p in f["found"] or [{"key": f["key"], "patch": f["patch"], "guard": None, "suspect": []}]:
            if labels.get(p["key"]) in (True, False):
                seen.setdefault(p["key"], []).append(p)
    flags = {"suspect (anti-pattern)": lambda p, s: bool(p.get("suspect")),
             "outvoted": lambda p, s: bool((p.get("guard") or {}).get("outvoted")),
             "changes a passing test's call": lambda p, s: bool((p.get("guard") or {}).get("passing_changed")),
             "fails a docstring example": lambda p, s: bool((p.get("guard") or {}).get("examples_failed")),
             "drops a check": lambda p, s: s["drops_check"], "adds a raise": lambda p, s: s["adds_raise"],
             "adds try/except": lambda p, s: s["adds_try"],
             "more than 2 changed lines": lambda p, s: s["changed_lines"] > 2}
    out = {"patches": len(seen), "correct": sum(labels[k] is True for k in seen)}
    for name, flag in flags.items():
        hit = [k for k, ps in seen.items() if any(flag(p, shape(p["patch"])) for p in ps)]
        out[name] = {"correct": sum(labels[k] is True for k in hit), "wrong": sum(labels[k] is False for k in hit)}
    return out


def table(runs: dict[str, list[dict]], extra_labels: dict | None = None) -> dict:
    """The whole calibration: per run (what `ci --min-confidence high` would have opened), per rule over
    every run, the choice against a random pick, and the per-patch signals."""
    rows = {run: fixes(records, run) for run, records in runs.items()}
    every = [f for fs in rows.values() for f in fs]
    labels = {**known_labels(every), **(extra_labels or {})}
    per_run = {}
    for run, fs in rows.items():
        graded = [f for f in fs if f["confidence"] is not None]
        opened = [f for f in graded if f["confidence"] == "high"]
        c = Counter(str(f["correct"]) for f in opened)
        per_run[run] = {"plausible": len(fs), "graded": len(graded), "high": len(opened),
                        "high_correct": c["True"], "high_wrong": c["False"], "high_unknown": c["unknown"],
                        "wrong_high": sorted(f["task_id"] for f in opened if f["correct"] is False),
                        **{k: v for k, v in grade_counts(fs, _guard).items() if k in ("precision", "recall")}}
    return {"runs": per_run,
            "rules": {name: {"description": text, **grade_counts(every, rule)} for name, (rule, text) in RULES.items()},
            "choice": {"all": choice(every, labels),
                       f"without {' and '.join(RULES_SEEN_ON)}": choice(every, labels, RULES_SEEN_ON)},
            "signals": signal_counts(every, labels)}
