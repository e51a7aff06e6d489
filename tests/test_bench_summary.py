"""Benchmark summary: the numbers on hand-written records, the files, and compare."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from repair_agent.bench.report import print_summary
from repair_agent.bench.summary import (
    compare,
    fix_round,
    load_records,
    summarize,
    write_summary,
)


def cand(index, status, reason=""):
    return {"index": index, "status": status, "reason": reason,
            "tests": {"cases": [], "returncode": 0 if status == "fixed" else 1,
                      "timed_out": False, "duration_s": 0.1, "output_tail": ""}}


def run(n_fail):
    return {"cases": [{"id": f"t.py::t{i}", "outcome": "failed", "message": "", "details": ""}
                      for i in range(n_fail)] +
            [{"id": "t.py::ok", "outcome": "passed", "message": "", "details": ""}],
            "returncode": 1 if n_fail else 0, "timed_out": False, "duration_s": 0.2,
            "output_tail": ""}


def rec(task_id, status, verified, fixed_round, rounds, prompt, completion, dur,
        faith=None, **kw):
    r = {"task_id": task_id, "dataset": "quixbugs", "model": "tiny", "mode": "agent",
         "status": status, "verified": verified, "fixed_round": fixed_round,
         "rounds": [{"round": i, "candidates": c} for i, c in enumerate(rounds)],
         "patch": "", "root_cause": f"root cause of {task_id}",
         "tests_before": run(2), "tests_after": run(0 if status == "fixed" else 2),
         "tokens": {"prompt": prompt, "completion": completion}, "duration_s": dur,
         "run_id": f"run-{task_id}"}
    if faith is not None:
        r["faithfulness"] = faith
    r.update(kw)
    return r


def records():
    return [
        # fixed and verified in round 0
        rec("gcd", "fixed", True, 0, [[cand(0, "fixed")]], 100, 50, 10.0, faith=0.8),
        # fixed and verified in round 2
        rec("flatten", "fixed", True, 2,
            [[cand(0, "failed")], [cand(0, "failed"), cand(1, "no_code")], [cand(0, "fixed")]],
            300, 100, 30.0, faith=None),
        # the agent says fixed but the benchmark's own tests disagree: never counted
        rec("sqrt", "fixed", False, 1, [[cand(0, "failed")], [cand(0, "fixed")]],
            200, 50, 20.0, faith=0.4),
        # not fixed; a stray "fixed" candidate must not count; 4 rounds (R = 3)
        rec("bitcount", "not_fixed", False, None,
            [[cand(0, "failed")], [cand(0, "failed")], [cand(0, "test_edit")], [cand(0, "fixed")]],
            400, 100, 40.0),
        # error before any round; fixed_round set by mistake: still not counted
        rec("kth", "error", False, 0, [], 0, 0, 5.0),
        # fixed and verified, fixed_round missing: taken from the first round with a fix (1)
        rec("hanoi", "fixed", True, None, [[cand(0, "failed")], [cand(0, "fixed")]], 100, 0, 5.0),
    ]


def test_summary_numbers():
    s = summarize(records(), settings={"rounds": 4, "samples": 2})
    assert (s["dataset"], s["model"], s["mode"]) == ("quixbugs", "tiny", "agent")
    assert s["tasks"] == 6
    assert s["fixed"] == 3
    assert s["fixed_by_round"] == [1, 2, 3, 3]
    assert s["fix_rate_by_round"] == pytest.approx([1 / 6, 2 / 6, 3 / 6, 3 / 6])
    assert s["pass_at_1"] == pytest.approx(1 / 6)
    assert s["self_refinement_rate"] == pytest.approx(2 / 5)
    assert s["claimed_not_verified"] == 1
    assert s["tokens_total"] == 1400
    assert (s["tokens_prompt"], s["tokens_completion"]) == (1100, 300)
    assert s["wall_s"] == pytest.approx(110.0)
    assert s["tokens_per_task"] == pytest.approx(1400 / 6)
    assert s["wall_s_per_task"] == pytest.approx(110 / 6)
    assert s["tokens_per_fix"] == pytest.approx(1400 / 3)
    assert s["wall_s_per_fix"] == pytest.approx(110 / 3)
    assert s["mean_faithfulness"] == pytest.approx(0.6)
    assert s["faithfulness_n"] == 2
    assert s["settings"] == {"rounds": 4, "samples": 2}
    assert s["status_counts"] == {"fixed": 4, "not_fixed": 1, "error": 1}  # raw agent statuses
    by_id = {t["task_id"]: t for t in s["per_task"]}
    assert [k for k, t in by_id.items() if t["fixed"]] == ["gcd", "flatten", "hanoi"]
    assert by_id["hanoi"]["fixed_round"] == 1
    assert by_id["sqrt"]["fixed_round"] is None and by_id["bitcount"]["fixed_round"] is None
    assert by_id["gcd"]["failing_before"] == 2 and by_id["gcd"]["failing_after"] == 0
    # the counts view that `repair-agent fix --json` prints
    r = dict(records()[0], tests_before={"passed": 1, "failed": 2, "errors": 1, "skipped": 0,
                                         "failing": ["t::a", "t::b", "t::c"]},
             tests_after={"passed": 4, "failed": 0, "errors": 0, "skipped": 0, "failing": []})
    t = summarize([r])["per_task"][0]
    assert (t["failing_before"], t["failing_after"]) == (3, 0)
    json.dumps(s)  # plain JSON


def test_never_counts_unverified_or_failed():
    for r in records():
        if r["status"] != "fixed" or r["verified"] is not True:
            assert fix_round(r) is None
    only_bad = [r for r in records() if r["task_id"] in ("sqrt", "bitcount", "kth")]
    s = summarize(only_bad)
    assert s["fixed"] == 0 and s["fixed_by_round"] == [0, 0, 0, 0]
    assert s["pass_at_1"] == 0 and s["self_refinement_rate"] == 0
    assert s["tokens_per_fix"] is None and s["wall_s_per_fix"] is None
    # "verified" must be exactly True, not merely truthy.
    r = records()[0]
    r["verified"] = "yes"
    assert summarize([r])["fixed"] == 0


def test_summary_edge_cases():
    s = summarize([])
    assert s["tasks"] == 0 and s["fixed"] == 0 and s["pass_at_1"] is None
    assert s["fixed_by_round"] == [0] and s["mean_faithfulness"] is None
    # everything fixed in round 0: nothing left to refine
    s = summarize([records()[0]])
    assert s["pass_at_1"] == 1 and s["self_refinement_rate"] is None
    # labels override mixed record values
    rs = records()
    rs[1]["model"] = "other"
    assert summarize(rs)["model"] == "other,tiny"
    assert summarize(rs, model="m")["model"] == "m"


def write_records(d, recs):
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "records.jsonl", "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")


def test_files_written(tmp_path):
    d = tmp_path / "run-a"
    write_records(d, records())
    s = write_summary(d, settings={"rounds": 4})
    assert json.loads((d / "summary.json").read_text()) == json.loads(json.dumps(s))
    for key in ("dataset", "model", "mode", "tasks", "fixed", "fixed_by_round",
                "self_refinement_rate", "pass_at_1", "tokens_total", "wall_s",
                "tokens_per_task", "wall_s_per_task", "tokens_per_fix", "mean_faithfulness",
                "settings"):
        assert key in s
    report = (d / "report.md").read_text()
    assert "| metric | value |" in report and "| fixed (verified) | 3 (50.0%) |" in report
    assert "- `gcd`: **fixed in round 0**" in report
    assert "- `sqrt`: **agent claimed a fix, NOT verified**" in report
    assert "- `bitcount`: **not_fixed**" in report
    assert (d / "fix_rate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = io.StringIO()
    print_summary(s, Console(file=out, width=120))
    text = out.getvalue()
    assert "pass@1 (round 0)" in text and "16.7%" in text and "1 / 2 / 3 / 3" in text


def test_code_versions_name_every_commit_and_records_that_predate_them():
    assert summarize(records())["code_versions"] == ["unknown"]  # records written before `code`
    mixed = records()
    for r in mixed[:3]:
        r["code"] = "17fe40ec1c48"
    mixed[3]["code"] = "2b5dab95032d+dirty"
    assert summarize(mixed)["code_versions"] == ["17fe40ec1c48", "2b5dab95032d+dirty", "unknown"]
    assert summarize([])["code_versions"] == []


def test_load_records_last_wins(tmp_path):
    rs = records()
    later = dict(rs[3], status="fixed", verified=True, fixed_round=3)
    write_records(tmp_path, rs + [later])
    loaded = load_records(tmp_path)
    assert len(loaded) == 6
    assert summarize(loaded)["fixed_by_round"] == [1, 2, 3, 4]


def test_compare_two_dirs(tmp_path):
    a, b = tmp_path / "agent", tmp_path / "single"
    write_records(a, records())
    write_summary(a)
    single = [dict(r, mode="single-shot", rounds=r["rounds"][:1],
                   fixed_round=0 if r["task_id"] == "gcd" else None,
                   status="fixed" if r["task_id"] == "gcd" else "not_fixed")
              for r in records()]
    write_records(b, single)  # no summary.json: compare computes it from the records
    out = io.StringIO()
    rows, png = compare([a, b], console=Console(file=out, width=250))
    assert [r["run"] for r in rows] == ["agent", "single"]
    assert [r["fixed"] for r in rows] == [3, 1]
    assert rows[0]["fixed_by_round"] == [1, 2, 3, 3] and rows[1]["fixed_by_round"] == [1]
    assert rows[1]["mode"] == "single-shot"
    assert png == tmp_path / "compare_fix_rate.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    text = out.getvalue()
    assert "agent" in text and "single" in text and "50.0%" in text
    rows2, png2 = compare([a, b], out=tmp_path / "x" / "cmp.png", console=Console(file=io.StringIO()))
    assert png2 == tmp_path / "x" / "cmp.png" and png2.is_file()


def test_search_numbers_sources_costs_and_wall_clock(tmp_path):
    recs = [rec("a", "fixed", True, 0, [[cand(0, "fixed")]], 0, 0, 2.0, source="mutate", candidates_tried=40),
            rec("b", "fixed", True, 0, [[cand(0, "fixed")]], 900, 100, 30.0, source="infill", candidates_tried=90),
            rec("c", "fixed", True, 1, [[cand(0, "failed")], [cand(0, "fixed")]], 3000, 1000, 90.0),
            rec("d", "not_fixed", False, None, [[cand(0, "failed")]], 5000, 500, 60.0, candidates_tried=300)]
    s = write_summary(tmp_path, recs, settings={"strategies": "mutate,infill"}, wall_clock_s=100.0)
    assert s["fixed_by_source"] == {"mutate": 1, "infill": 1, "refine": 1}  # no source: the model's loop
    assert s["candidates_tried"] == 40 + 90 + 2 + 300  # an old record counts its answers
    assert s["median_tokens_per_fixed_task"] == 1000
    assert s["median_wall_s_per_task"] == 45.0
    assert s["wall_clock_s"] == 100.0 and s["wall_s"] == 182.0
    assert (tmp_path / "fix_cost.png").stat().st_size > 0
    report = (tmp_path / "report.md").read_text()
    assert "fixed in round 0 by mutate" in report and "wall clock of the run (s) | 100.0" in report


def test_env_errors_are_counted_apart_and_left_out_of_the_rates(tmp_path):
    env = rec("tqdm-8", "env_error", False, None, [], 0, 0, 0.0,
              error="the tests cannot run in this environment (not a bug in the code): the sandbox lacks the "
                    "module `nose` (tests/tests_tqdm.py): ... pass --deps nose, ...")
    write_records(tmp_path, records() + [env])
    s = write_summary(tmp_path)
    assert s["tasks"] == 7 and s["env_errors"] == 1 and s["status_counts"]["env_error"] == 1
    assert s["fix_rate"] == pytest.approx(3 / 6) and s["pass_at_1"] == pytest.approx(1 / 6)  # as without it
    assert s["plausible_rate"] == pytest.approx(3 / 6)
    assert json.loads((tmp_path / "summary.json").read_text())["env_errors"] == 1
    report = (tmp_path / "report.md").read_text()
    assert "| environment errors (the tests could not run; left out of every rate) | 1 |" in report
    assert "| fixed (verified) | 3 (50.0%) |" in report
    assert "- `tqdm-8`: **environment error, not scored**" in report and "--deps nose" in report
    rows, _ = compare([tmp_path], console=Console(file=io.StringIO()))
    assert rows[0]["env_errors"] == 1
