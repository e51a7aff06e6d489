"""Plausible is not correct: the differential check against the reference program, in the real
Docker sandbox, and the counts it adds to the benchmark summary."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

from rich.console import Console

from repair_agent.bench.correctness import check, generate, patch_size
from repair_agent.bench.datasets import load_humanevalfix, load_quixbugs, reference_for
from repair_agent.bench.runner import rescore
from repair_agent.bench.summary import compare, summarize, write_summary
from repair_agent.patching import current_diff, replace_definitions

# Passes QuixBugs' gcd tests by knowing their answers: plausible, not correct.
OVERFIT_GCD = """def gcd(a, b):
    known = {(17, 0): 17, (13, 13): 13, (37, 600): 1, (20, 100): 20, (624129, 2061517): 18913, (3, 12): 3}
    return known.get((a, b), 1)
"""


def patch_for(task_id: str, code: str, tmp_path) -> str:
    """The diff that replaces the functions of the task's buggy program by those of `code`."""
    task = load_quixbugs(ids=[task_id])[0]
    repo = task.materialize(Path(tempfile.mkdtemp(dir=tmp_path)) / "repo")
    program = repo / task.meta["program_path"]
    program.write_text(replace_definitions(program.read_text(), code))
    return current_diff(repo)


def test_differential_check_finds_an_overfitting_patch_and_passes_the_reference(tmp_path, docker_ready):
    task = load_quixbugs(ids=["gcd"])[0]
    bad = check(task, patch_for("gcd", OVERFIT_GCD, tmp_path), tmp_path / "bad")
    assert bad["correct"] is False and "generated input" in bad["correct_reason"]
    diff = bad["first_difference"]
    a, b = diff["input"]["args"]
    assert (a, b) not in [(17, 0), (13, 13), (37, 600), (20, 100), (624129, 2061517), (3, 12)]
    assert diff["patched"] == {"kind": "ok", "value": 1, "objects": []} != diff["reference"]
    assert diff["text"].startswith(f"gcd({a}, {b}): the reference returns ")
    assert diff["text"].endswith("the patch returns 1")

    _, fixed, _ = reference_for(task)
    good = check(task, patch_for("gcd", fixed, tmp_path), tmp_path / "good")
    assert good["correct"] is True and good["first_difference"] is None
    assert good["correct_inputs"]["seen"] == 6 and good["correct_inputs"]["generated"] > 200


def test_programs_whose_inputs_cannot_be_generated_are_unknown(tmp_path, docker_ready):
    task = load_quixbugs(ids=["topological_ordering"])[0]
    _, fixed, _ = reference_for(task)
    res = check(task, patch_for("topological_ordering", fixed, tmp_path), tmp_path / "w")
    assert res["correct"] == "unknown"
    assert "incoming_nodes, outgoing_nodes" in res["correct_reason"]
    assert res["correct_inputs"]["seen"] == 3  # the tests' own inputs were still compared


def test_humanevalfix_reference_is_read_from_the_data_file(tmp_path, docker_ready):
    body = ("    for i, a in enumerate(numbers):\n        for j, b in enumerate(numbers):\n"
            "            if i != j and {} < threshold:\n                return True\n    return False\n")
    rec = {"task_id": "Python/0", "entry_point": "has_close_elements",
           "declaration": "def has_close_elements(numbers, threshold):\n",
           "canonical_solution": body.format("abs(a - b)"), "buggy_solution": body.format("a - b"),
           "test": "def check(candidate):\n    assert candidate([1.0, 2.8, 3.0], 0.3) == True\n"
                   "    assert candidate([1.0, 2.0, 3.9], 0.5) == False\n\ncheck(has_close_elements)\n"}
    data = tmp_path / "humanevalpack.jsonl"
    data.write_text(json.dumps(rec) + "\n")
    task = load_humanevalfix(data)[0]
    assert "abs(" not in json.dumps(task.to_dict())  # the agent's task still holds no solution
    repo = task.materialize(tmp_path / "repo")
    (repo / task.meta["program_path"]).write_text(rec["declaration"] + body.format("abs(b - a)"))
    res = check(task, current_diff(repo), tmp_path / "w", data=data)
    assert res["correct"] is True and res["correct_inputs"]["seen"] == 2
    assert check(task, current_diff(repo), tmp_path / "w")["correct"] == "unknown"  # no data: no reference


def test_rescore_rewrites_records_and_summary(tmp_path, docker_ready):
    out = tmp_path / "run"
    out.mkdir()
    base = {"dataset": "quixbugs", "model": "m", "mode": "agent", "rounds": [{"round": 0, "candidates": []}],
            "tokens": {"prompt": 1, "completion": 1}, "duration_s": 1.0}
    overfit = patch_for("gcd", OVERFIT_GCD, tmp_path)
    _, fixed, _ = reference_for(load_quixbugs(ids=["sieve"])[0])
    sieve_overfit, sieve_fixed = patch_for("sieve", "def sieve(max):\n    return [2, 3, 5, 7]\n", tmp_path), \
        patch_for("sieve", fixed, tmp_path)
    # sieve: the guard picked the reference's code (ranked first), the search had found the overfit first
    found = [{"patch": sieve_fixed, "found": 1}, {"patch": sieve_overfit, "found": 0}]
    records = [{**base, "task_id": "gcd", "status": "fixed", "verified": True, "fixed_round": 0, "patch": overfit},
               {**base, "task_id": "bitcount", "status": "not_fixed", "verified": False, "patch": ""},
               {**base, "task_id": "sieve", "status": "fixed", "verified": True, "fixed_round": 0,
                "patch": sieve_fixed, "search": {"plausible": found}}]
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (out / "summary.json").write_text(json.dumps({"interrupted": True}))  # a run stopped early stays so marked
    s = rescore(out, log=lambda m: None)
    rewritten = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert rewritten[0]["plausible"] is True and rewritten[0]["correct"] is False
    assert rewritten[0]["first_difference"]["input"]["args"]
    assert (rewritten[0]["patch_lines"], rewritten[0]["patch_noise_lines"]) == (6, 0)  # 4 removed, 2 added
    assert rewritten[1]["plausible"] is False and rewritten[1]["correct"] is None
    assert rewritten[2]["correct"] is True and rewritten[2]["first_found_correct"] is False
    assert rewritten[2]["plausible_patches"] == 2 and rewritten[0]["first_found_correct"] is None
    assert (s["plausible"], s["correct"], s["overfitting"]) == (2, 1, 1)
    assert s["choice"] == {"tasks": 1, "pick_correct": 1, "first_found_correct": 0}
    assert "NOT CORRECT" in (out / "report.md").read_text() and s["interrupted"] is True


def test_summary_counts_plausible_and_correct(tmp_path):
    def rec(task_id, verified, correct=None, **kw):
        r = {"task_id": task_id, "dataset": "quixbugs", "model": "m", "mode": "agent", "fixed_round": 0,
             "status": "fixed" if verified else "not_fixed", "verified": verified, "plausible": verified,
             "rounds": [{"round": 0, "candidates": []}], "patch_lines": 4 if verified else None,
             "patch_noise_lines": 1 if verified else None, **kw}
        return {**r, "correct": correct} if verified else r

    recs = [rec("gcd", True, True, confidence="high"),
            rec("sieve", True, False, correct_reason="differs", first_difference={"input": {"args": [7]}},
                confidence="low"),
            rec("wrap", True, "unknown", confidence="high"), rec("kth", False)]
    s = summarize(recs)
    assert (s["plausible"], s["correct"], s["overfitting"], s["correct_unknown"]) == (3, 1, 1, 1)
    assert s["correct_rate"] == 0.25 and s["correct_of_plausible"] == 1 / 3
    assert s["correct_by_round"] == [1] and s["patch_lines_per_fix"] == 4
    assert s["by_confidence"] == {"high": {"plausible": 2, "correct": 1}, "low": {"plausible": 1, "correct": 0}}
    old = summarize([{k: v for k, v in r.items() if k not in ("correct", "plausible")} for r in recs])
    assert old["plausible"] == 3 and old["correct"] is None  # records scored before: not measured

    d = tmp_path / "run"
    d.mkdir()
    (d / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    write_summary(d)
    report = (d / "report.md").read_text()
    assert "| correct (agrees with the reference) | 1 (25.0%); 33.3% of the plausible" in report
    assert "; confidence high: 1 of 2 correct; confidence low: 0 of 1 correct" in report
    assert "- `sieve`: **fixed in round 0**, **NOT CORRECT** (differs: `" in report
    rows, _ = compare([d], console=Console(file=io.StringIO(), width=250))
    assert rows[0]["fixed"] == 3 and rows[0]["correct"] == 1


def test_patch_size_and_generation():
    patch = "--- a/f.py\n+++ b/f.py\n@@ -1,2 +1,3 @@\n-x = 1\n+x = 2\n+# why\n+\n y = 3\n"
    assert patch_size(patch) == (4, 2)
    seen = [{"args": [[3, 1, 2], 2], "kwargs": {}, "objects": []},
            {"args": [[5, 4], 1], "kwargs": {}, "objects": []}]
    inputs, why = generate(seen, 50)
    assert not why and len(inputs) >= 40
    assert all(isinstance(i["args"][0], list) and i["args"][1] >= 1 for i in inputs)  # positive stays positive
    assert generate(seen, 50) == (inputs, "")  # deterministic


def test_generated_strings_include_small_edits_of_the_seen_ones():
    """thefuck-1: the patch widens one of two regular expressions the human fix widened. Random text
    over the seen alphabet never matched either (300 generated, all skipped: the human fix raised),
    so the verdict was `unknown`; a seen output with a character inserted tells the two apart."""
    import re

    outputs = ['ERROR: unknown command "un+install" - maybe you meant "uninstall"',
               'ERROR: unknown command "instatl" - maybe you meant "install"']
    seen = [{"args": [o], "kwargs": {}, "objects": []} for o in outputs]
    inputs, why = generate(seen, 300)
    assert not why

    def suggestion(pattern: str, output: str):
        found = re.findall(r'maybe you meant \"(' + pattern + r')\"', output)
        return found[0] if found else None

    human, patched = "[^\"]+", "[a-z]+"
    apart = [i["args"][0] for i in inputs
             if suggestion(human, i["args"][0]) and suggestion(human, i["args"][0]) != suggestion(patched, i["args"][0])]
    assert apart, "no generated output on which the two expressions differ"
    assert generate(seen, 300) == (inputs, "")  # still deterministic
