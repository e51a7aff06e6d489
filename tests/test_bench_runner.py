"""The benchmark harness runs the same graph as `fix` and counts only fixes its own tests prove.

The model is a SCRIPTED server on loopback: these tests check the harness's bookkeeping, which
needs answers known in advance (one wrong, one right)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from helpers import git
from scripted_server import ScriptedServer, answer

from repair_agent.bench.datasets import load_quixbugs, load_repos, quixbugs_dir
from repair_agent.bench.runner import code_version, run_benchmark
from repair_agent.config import Settings
from repair_agent.errors import ModelError

QUIXBUGS = quixbugs_dir() / "quixbugs_python.jsonl"  # the data the package ships (a clone has no ../shared)
WRONG_GCD = "def gcd(a, b):\n    if b == 0:\n        return b\n    return gcd(a % b, b)\n"
RIGHT_GCD = "def gcd(a, b):\n    if b == 0:\n        return a\n    else:\n        return gcd(b, a % b)\n"


def settings(url: str, **kw) -> Settings:
    return Settings(base_url=url, sandbox="docker", test_timeout_s=60, strategies="refine", **kw)


def test_failing_candidates_are_never_counted_and_prompts_hold_no_fixed_code(tmp_path, docker_ready):
    tasks = load_quixbugs(ids=["gcd"])
    with ScriptedServer([[answer(WRONG_GCD)], [answer(WRONG_GCD)] * 2]) as srv:
        summary = run_benchmark(tasks, settings(srv.base_url, rounds=2, samples=2), tmp_path, log=lambda m: None)
    rec = json.loads((tmp_path / "records.jsonl").read_text().splitlines()[0])
    assert rec["status"] == "not_fixed" and rec["verified"] is False
    assert summary["fixed"] == 0 and summary["fixed_by_round"] == [0, 0]
    fixed = json.loads(next(line for line in QUIXBUGS.open() if '"id": "gcd"' in line))
    fixed_line = next(ln[1:].strip() for ln in fixed["diff"].splitlines()
                      if ln.startswith("+") and not ln.startswith("+++") and ln[1:].strip())
    prompts = "\n".join(m["content"] for r in srv.requests for m in r["body"]["messages"])
    assert "def gcd" in prompts  # the buggy code did reach the model
    assert fixed_line not in prompts and fixed["fixed_source"] not in prompts
    runs = list((tmp_path / "runs").glob("*/records.jsonl"))
    assert runs and all(fixed_line not in json.dumps(r) for r in
                        [json.loads(x) for x in runs[0].read_text().splitlines()] if r["event"] == "propose")


def test_verified_fix_counts_in_its_round_and_rerun_skips_it(tmp_path, docker_ready):
    tasks = load_quixbugs(ids=["gcd"])
    with ScriptedServer([[answer(WRONG_GCD)], [answer(RIGHT_GCD), answer(WRONG_GCD)]]) as srv:
        summary = run_benchmark(tasks, settings(srv.base_url, rounds=3, samples=2), tmp_path, log=lambda m: None)
    assert summary["fixed"] == 1 and summary["fixed_by_round"][:2] == [0, 1]
    assert summary["self_refinement_rate"] == 1.0
    # which code ran: this checkout's commit, in the record and the summary
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                          text=True, check=True).stdout.strip()
    rec = json.loads((tmp_path / "records.jsonl").read_text())
    assert code_version().startswith(head[:12]) and rec["code"] == code_version()
    assert summary["code_versions"] == [code_version()]
    with ScriptedServer([]) as srv:  # resumable: nothing left to do, the model is never asked
        again = run_benchmark(tasks, settings(srv.base_url), tmp_path, log=lambda m: None)
        assert srv.requests == []
    assert again["fixed"] == 1 and (tmp_path / "fix_rate.png").stat().st_size > 0
    assert summary["wall_clock_s"] > 0 and again["wall_clock_s"] is None  # its clock missed the fixed task


def test_real_repo_task_end_to_end(make_repo, tmp_path, docker_ready):
    repo = make_repo("two_module")
    commit = git(repo, "rev-parse", "HEAD").strip()
    data = tmp_path / "repos.jsonl"
    data.write_text(json.dumps({"task_id": "shop-discount", "repo": str(repo), "commit": commit,
                                "test_command": "tests/test_cart.py",
                                "failing_tests": ["tests/test_cart.py::test_total_with_discount"]}) + "\n")
    fixed = "def apply_discount(price, percent):\n    return price - price * percent / 100\n"
    out = tmp_path / "out"
    with ScriptedServer([[answer(fixed)]]) as srv:
        summary = run_benchmark(load_repos(data), settings(srv.base_url), out, log=lambda m: None)
    assert summary["fixed"] == 1
    rec = json.loads((out / "records.jsonl").read_text())
    assert rec["verified"] is True and "percent / 100" in rec["patch"]


def test_repos_bench_survives_a_broken_task_a_dangling_symlink_and_a_quoted_k(tmp_path, docker_ready):
    """No model (mutate finds the fix): a task that cannot be prepared is recorded and the next one
    runs; that one is a plain folder with a dangling symlink, and its `-k "not slow"` stays one
    argument (split on spaces, pytest would look for a file `slow`)."""
    src = tmp_path / "plain"
    (src / "docs").mkdir(parents=True)
    (src / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (src / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
                                      "def test_slow():\n    assert False, 'deselected by -k'\n")
    (src / "docs" / "guide.md").symlink_to("../_build/generated/guide.md")
    data = tmp_path / "repos.jsonl"
    data.write_text(json.dumps({"task_id": "broken", "repo": str(tmp_path / "nowhere"),
                                "test_command": "test_calc.py"}) + "\n" +
                    json.dumps({"task_id": "plain", "repo": "plain",
                                "test_command": 'python -m pytest test_calc.py -k "not slow"'}) + "\n")
    out, lines = tmp_path / "out", []
    summary = run_benchmark(load_repos(data), Settings(sandbox="docker", test_timeout_s=60, strategies="mutate"),
                            out, log=lines.append)
    broken, plain = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert broken["task_id"] == "broken" and broken["status"] == "error"
    assert "nowhere" in broken["error"] and any("broken: error: FileNotFoundError" in ln for ln in lines)
    assert plain["task_id"] == "plain" and plain["verified"] is True, plain.get("error")
    assert "a + b" in plain["patch"] and plain["tests_before"]["failing"] == ["test_calc.py::test_add"]
    assert summary["tasks"] == 2 and summary["fixed"] == 1


def test_model_outage_stops_the_benchmark_and_a_rerun_retries(tmp_path, docker_ready):
    tasks = load_quixbugs(ids=["gcd", "flatten"])
    with ScriptedServer([], status=500) as srv:  # every request fails: retries, then ModelError
        with pytest.raises(ModelError):
            run_benchmark(tasks, settings(srv.base_url, rounds=1), tmp_path, log=lambda m: None)
    assert not (tmp_path / "records.jsonl").exists() or all(
        json.loads(line)["status"] != "error" for line in (tmp_path / "records.jsonl").read_text().splitlines())
    with ScriptedServer([[answer(RIGHT_GCD)], ["no idea"]]) as srv:
        summary = run_benchmark(tasks, settings(srv.base_url, rounds=1), tmp_path, log=lambda m: None)
    assert summary["tasks"] == 2 and summary["fixed"] == 1


def test_a_task_that_ends_in_an_error_records_the_time_it_took(tmp_path, docker_ready):
    """run_task itself (what a Ray node runs, with no thread around it to time it): a bug that does not
    show on the buggy code ends at reproduce, after its sandbox ran the tests (a second at least)."""
    from repair_agent.bench.solve import run_task

    src = tmp_path / "passes"
    src.mkdir()
    (src / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (src / "test_calc.py").write_text("import time\nfrom calc import add\n\n\ndef test_add():\n"
                                      "    time.sleep(1)\n    assert add(2, 3) == 5\n")
    data = tmp_path / "repos.jsonl"
    data.write_text(json.dumps({"task_id": "passes", "repo": "passes", "test_command": "test_calc.py"}) + "\n")
    [task] = load_repos(data)
    started = time.monotonic()
    rec = run_task(task, Settings(sandbox="docker", test_timeout_s=60, strategies="mutate"), tmp_path / "out",
                   "agent", None, code_version())
    took = time.monotonic() - started
    assert rec["status"] == "not_reproduced", rec.get("error")
    assert 1.0 <= rec["duration_s"] <= took + 0.01, (rec["duration_s"], took)


def test_verification_counts_a_test_that_broke_only_if_it_fails_again_and_passes_unpatched(tmp_path, docker_ready):
    """The harness's own check of a fix (bench/solve.verify): a test that fails once by noise (as
    tqdm's overhead tests under load; here it fails beside the other module and passes alone, each
    sandbox run being fresh), or fails on the unpatched code too, does not unmake a fix; one that the
    patch breaks does."""
    from repair_agent.bench.solve import verify

    patch = ("--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n"
             "+    return a + b\n")
    timing_tests = {"flaky": "    assert 'test_calc' not in sys.modules\n",
                    "failing everywhere": "    assert False, 'slower than the simple bar'\n",
                    "broken by the patch": "    from calc import add\n    assert add(1, 1) == 0\n"}
    for kind, verified in (("flaky", True), ("failing everywhere", True), ("broken by the patch", False)):
        name = kind.replace(" ", "-")
        src = tmp_path / f"plain-{name}"
        src.mkdir()
        (src / "calc.py").write_text("def add(a, b):\n    return a - b\n")
        (src / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
        (src / "test_timing.py").write_text("import sys\n\n\ndef test_overhead():\n" + timing_tests[kind])
        data = tmp_path / f"repos-{name}.jsonl"
        data.write_text(json.dumps({"task_id": "plain", "repo": src.name, "test_command": "test_calc.py test_timing.py",
                                    "failing_tests": ["test_calc.py::test_add"]}) + "\n")
        (task,) = load_repos(data)
        work = tmp_path / f"work-{name}"
        assert verify(task, patch, work, Settings(sandbox="docker", test_timeout_s=60)) is verified, kind
