"""The calibration table of the guard's `high` (repair_agent/judge/calibration.py and
benchmarks/calibration.py), built from a few labelled records shaped as the benchmark writes them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from repair_agent.judge.calibration import LITTLE_COULD, evidence, patch_key, shape, table

ROOT = Path(__file__).resolve().parents[1]
KEPT = "one plausible patch; it keeps the outcome of the {} call(s) made by tests that passed before"


def diff(path: str, old: str, new: str, blob: str = "1111111..2222222") -> str:
    """A one-hunk unified diff replacing the line `old` by the lines of `new` (as git writes it)."""
    added = "".join(f"+{ln}\n" for ln in new.splitlines())
    return (f"diff --git a/{path} b/{path}\nindex {blob} 100644\n--- a/{path}\n+++ b/{path}\n"
            f"@@ -1,3 +1,{2 + len(new.splitlines())} @@ def f():\n     x = 1\n-{old}\n{added}     return x\n")


def record(task_id: str, dataset: str, patch: str, correct, confidence: str | None, reason: str = "",
           found: list[dict] | None = None, first_found_correct=None) -> dict:
    search = {"plausible": found if found is not None else [{"patch": patch, "found": 0, "suspect": [],
                                                             "guard": {"examples_failed": 0, "passing_changed": 0,
                                                                       "outvoted": 0}}]}
    return {"task_id": task_id, "dataset": dataset, "status": "fixed", "verified": True, "plausible": True,
            "patch": patch, "correct": correct, "confidence": confidence, "confidence_reason": reason,
            "search": search, "first_found_correct": first_found_correct}


def alt(patch: str, found: int, suspect=(), outvoted: int = 0) -> dict:
    return {"patch": patch, "found": found, "suspect": list(suspect),
            "guard": {"examples_failed": 0, "passing_changed": 0, "outvoted": outvoted}}


P = "python_programs/{}.py"
DFS_RIGHT = diff(P.format("depth_first_search"), "        else:", "        else:\n            nodesvisited.add(node)")
DFS_DELETION = diff(P.format("depth_first_search"), "        return any(search_from(n) for n in node.s)",
                    "        return any(n for n in node.s)")
BIT = [diff(P.format("bitcount"), "        n ^= n - 1", "        n &= n - 1"),
       diff(P.format("bitcount"), "        n ^= n - 1", "        n = n & (n - 1)"),
       diff(P.format("bitcount"), "        n ^= n - 1", "        n -= 1")]
LABELS = {patch_key("depth_first_search", DFS_DELETION): False, patch_key("bitcount", BIT[1]): True,
          patch_key("bitcount", BIT[2]): False}

RUNS = {
    "quixbugs-a": [
        record("gcd", "quixbugs", diff(P.format("gcd"), "        return gcd(a % b, b)", "        return gcd(b, a % b)"),
               True, "high", KEPT.format(1) + "; 1 docstring example(s) pass"),
        record("sqrt", "quixbugs", diff(P.format("sqrt"), "    while abs(x - approx) > epsilon:",
                                        "    while abs(approx - x / approx) > epsilon:"),
               False, "high", KEPT.format(1) + "; 1 docstring example(s) pass"),
        record("depth_first_search", "quixbugs", DFS_RIGHT, True, "low",
               "the 2 plausible patches disagree on 11 of 205 inputs; first: ...",
               [alt(DFS_RIGHT, 1), alt(DFS_DELETION, 0, ["it removes the last recursive call of `search_from`"])],
               first_found_correct=False),
        record("bitcount", "quixbugs", BIT[0], True, "high",
               "the 3 plausible patches agree on 150 inputs (4 from the tests, 146 generated)",
               [alt(BIT[0], 0), alt(BIT[1], 1), alt(BIT[2], 2, outvoted=3)], first_found_correct=True),
        record("wrap", "quixbugs",
               diff(P.format("wrap"), "    return lines", "    lines.append(text)\n    return lines"), True, "high",
               f"one plausible patch, and {LITTLE_COULD}: no test that passed before calls wrap"),
        {"task_id": "kth", "dataset": "quixbugs", "status": "not_fixed", "verified": False, "plausible": False,
         "patch": ""},
    ],
    "quixbugs-old": [record("hanoi", "quixbugs", diff(P.format("hanoi"), "    a", "    b"), True, None)],
    "bugsinpy-dev-a": [
        record("youtube-dl-6", "bugsinpy", diff("youtube_dl/utils.py", "    return None",
                                                "    else:\n        raise ValueError('Invalid time expression')"),
               False, "high", f"one plausible patch, and {LITTLE_COULD}", found=[]),
        record("tqdm-5", "bugsinpy", diff("tqdm/_tqdm.py", "        self.n = 0", "        self.n = initial"),
               "unknown", "high", KEPT.format(42)),
        record("thefuck-9", "bugsinpy", diff("thefuck/rules/git_push.py", "    return cmd.split()[1]",
                                             "    try:\n        return cmd.split()[1]\n    except IndexError:\n"
                                             "        return ''"), False, "high", KEPT.format(3)),
    ],
}


def test_the_reason_and_the_patch_give_the_signals():
    assert evidence(KEPT.format(42) + "; 2 docstring example(s) pass") == {
        "passing_calls": 42, "agreed_inputs": 0, "agreed_generated": 0, "docstring_examples": 2, "nothing_run": False}
    assert evidence("the 3 plausible patches agree on 150 inputs (4 from the tests, 146 generated); none changes the "
                    "outcome of the 2 call(s) made")["agreed_generated"] == 146
    s = shape(RUNS["bugsinpy-dev-a"][0]["patch"])
    assert s["adds_raise"] and not s["adds_try"] and not s["drops_check"] and s["changed_lines"] == 3
    dropped = diff("m.py", "    if x is None:", "    pass")
    assert shape(dropped)["drops_check"] and not shape(diff("m.py", "    if x is None:", "    if x:"))["drops_check"]
    same = patch_key("gcd", diff("m.py", "a", "b", blob="aaaaaaa..bbbbbbb"))
    assert same == patch_key("gcd", diff("m.py", "a", "b")) != patch_key("sqrt", diff("m.py", "a", "b"))


def test_the_table_counts_precision_recall_the_random_pick_and_what_each_rule_rejects():
    t = table(RUNS, LABELS)
    assert t["runs"]["quixbugs-a"] == {"plausible": 5, "graded": 5, "high": 4, "high_correct": 3, "high_wrong": 1,
                                       "high_unknown": 0, "wrong_high": ["sqrt"], "precision": 0.75, "recall": 0.75}
    assert t["runs"]["quixbugs-old"]["graded"] == 0 and t["runs"]["quixbugs-old"]["precision"] is None
    assert t["runs"]["bugsinpy-dev-a"]["wrong_high"] == ["thefuck-9", "youtube-dl-6"]
    guard, evidence_, proposed = (t["rules"][k] for k in ("guard", "some_evidence", "proposed"))
    # graded: gcd, sqrt, dfs, bitcount, wrap (correct: gcd, dfs, bitcount, wrap), youtube-dl-6, tqdm-5, thefuck-9
    assert (guard["high"], guard["high_correct"], guard["high_wrong"], guard["high_unknown"]) == (7, 3, 3, 1)
    assert (guard["precision"], guard["recall"], guard["correct_rejected"], guard["wrong_rejected"]) == \
        (0.5, 0.75, 1, 0)
    assert (evidence_["high_correct"], evidence_["high_wrong"], evidence_["correct_rejected"]) == (2, 2, 2)
    assert (proposed["precision"], proposed["recall"], proposed["wrong_rejected"]) == (0.667, 0.5, 2)
    assert proposed["wrong_high"] == ["sqrt"]
    # dfs: the pick right, the first found (the deletion) wrong, a random pick right half the time;
    # bitcount: the pick and the first found right, a random pick 2 times in 3
    assert t["choice"]["all"] == {"tasks": 2, "pick_correct": 2, "first_found_correct": 1,
                                  "random_expected": 1.167, "unlabelled": []}
    assert t["choice"]["without depth_first_search and detect_cycle"]["random_expected"] == 0.667
    s = t["signals"]
    assert (s["patches"], s["correct"]) == (11, 6)  # hanoi too: labelled, though not graded
    assert s["suspect (anti-pattern)"] == {"correct": 0, "wrong": 1} and s["outvoted"] == {"correct": 0, "wrong": 1}
    assert s["adds a raise"] == {"correct": 0, "wrong": 1} and s["adds try/except"] == {"correct": 0, "wrong": 1}


def test_a_task_with_an_unlabelled_plausible_patch_is_left_out_of_the_choice():
    t = table(RUNS, {k: v for k, v in LABELS.items() if v is not False or "bitcount" not in k})
    assert t["choice"]["all"]["tasks"] == 1 and t["choice"]["all"]["unlabelled"] == ["quixbugs-a/bitcount"]


def test_the_script_writes_the_table_from_the_runs_it_finds(tmp_path):
    for run, records in RUNS.items():
        (tmp_path / run).mkdir()
        (tmp_path / run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "humanevalfix-a").mkdir()  # not a design set's run: never read
    (tmp_path / "humanevalfix-a" / "records.jsonl").write_text(json.dumps(RUNS["quixbugs-a"][0]) + "\n")
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"key": k, "correct": v}) + "\n" for k, v in LABELS.items()))
    out = tmp_path / "calibration.json"
    proc = subprocess.run([sys.executable, "benchmarks/calibration.py", "--results", str(tmp_path), "--labels",
                           str(labels), "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    written = json.loads(out.read_text())
    assert sorted(written["runs"]) == ["bugsinpy-dev-a", "quixbugs-a", "quixbugs-old"]
    assert written["rules"] == table(RUNS, LABELS)["rules"] and "not evidence of generality" in written["note"]
    assert "| quixbugs-a | 5 | 5 | 4 | 3 | 1 (sqrt) | 0 | 0.75 | 0.75 |" in proc.stdout
