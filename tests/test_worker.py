"""The warm test worker (sandbox/tools/warm_worker.py) in a real Docker sandbox: the same answers as the
docker exec path, nothing carried from one candidate to the next, the hostile fixtures ending as
the README's fault table says, and the fallback to exec said out loud."""

from __future__ import annotations

import json
import re
import textwrap
import time
from pathlib import Path

import pytest
from helpers import (assert_each_candidate_starts_clean, containers_for, git, hostile_repo, outcomes, stateful_repo,
                     tree_hash)

from repair_agent.bench.datasets import quixbugs_dir
from repair_agent.errors import BadInput
from repair_agent.sandbox import DockerSandbox, LocalSandbox, crash_note

pytestmark = pytest.mark.docker
QUIXBUGS = quixbugs_dir()  # the data the package ships (a clone has no ../shared)


@pytest.fixture
def boxes(docker_ready):
    """Open sandboxes; at the end: closed, no container left, the host tree unchanged."""
    opened: list[tuple[DockerSandbox, str]] = []

    def open_box(repo: Path, **kw) -> DockerSandbox:
        sb = DockerSandbox(repo, log=lambda m: None, **kw)
        opened.append((sb, tree_hash(repo)))
        return sb

    yield open_box
    for sb, _ in opened:
        sb.close()
    for sb, before in opened:
        assert containers_for(sb.workdir) == [], "a container outlived its sandbox"
        assert tree_hash(sb.workdir) == before, "the tree on the host changed"


def quixbugs_tree(dest: Path) -> list[dict]:
    """All 40 buggy QuixBugs programs in one folder, as the benchmark's README rebuilds them."""
    records = [json.loads(line) for line in (QUIXBUGS / "quixbugs_python.jsonl").open()]
    support = json.loads((QUIXBUGS / "support_files.json").read_text())
    files = {k: v for k, v in support.items() if not k.startswith("correct_python_programs")}
    for rec in records:
        files[rec["buggy_path"]] = rec["buggy_source"]
        files[rec["test_path"]] = rec["test_source"]
        if rec["json_testcases_path"]:
            files[rec["json_testcases_path"]] = rec["json_testcases"]
    for rel, text in files.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    git(dest, "init", "-q")
    return records


@pytest.mark.slow  # about 3 minutes: 160 runs, 34 of them ending at per-test timeouts
def test_worker_and_exec_agree_on_all_of_quixbugs(tmp_path, boxes):
    """Buggy and fixed (the fixed source as an overlay) versions of the 40 programs: the same
    outcome for every test either way. Hanging tests end at a 2 s per-test timeout both ways (as
    does levenshtein's slow test, about 4 s, in its fixed version); `--runslow` tests are skipped."""
    repo = tmp_path / "quixbugs"
    repo.mkdir()
    records = quixbugs_tree(repo)
    worker, exec_ = boxes(repo), boxes(repo, use_worker=False)
    differ, fixed_fails = [], []
    for rec in records:
        for overlay in (None, {rec["buggy_path"]: rec["fixed_source"]}):
            runs = [sb.run_tests([rec["test_path"]], timeout=120, per_test_timeout=2, overlay=overlay)
                    for sb in (worker, exec_)]
            assert [r["runner"] for r in runs] == ["worker", "exec"], runs[0].get("fallback")
            # a test near the 2 s limit (levenshtein's slow one) may end in time on the faster path
            # and not on the other: a timeout on either side says nothing about parity
            slow = {c["id"].split("::", 1)[1] for r in runs for c in r["cases"] if "Timeout" in c["message"]}
            got = [{k: v for k, v in outcomes(r).items() if k not in slow} for r in runs]
            assert got[0] or slow, f"{rec['id']}: no results: {runs[0]['output_tail'][-500:]}"
            if got[0] != got[1]:
                differ.append((rec["id"], bool(overlay), got))
            if overlay and any(c["outcome"] in ("failed", "error") and "Timeout" not in c["message"]
                               for c in runs[0]["cases"]):
                fixed_fails.append(rec["id"])  # the harness is wrong: the fixed programs pass
    assert differ == []
    assert fixed_fails == []


def test_a_candidate_leaves_nothing_to_the_next(tmp_path, boxes):
    """What one candidate leaves behind (see stateful_repo), the next does not see."""
    assert_each_candidate_starts_clean(boxes(stateful_repo(tmp_path)))


def test_candidates_run_in_forks_of_a_zygote(tmp_path, boxes):
    """After the first run of a selection, candidates fork from a zygote that has read pytest's
    configuration; their answers are the same as the plain way's (`--no-zygotes`)."""
    repo = stateful_repo(tmp_path)
    plain = boxes(repo)
    plain.worker_flags = ["--no-zygotes"]
    zygote = boxes(repo)
    for i in range(2):
        for sb in (zygote, plain):
            run = sb.run_tests([], overlay={"state.py": f"SEEN = []  # {i}\n"})
            assert outcomes(run) == {"test_starts_clean": "passed"}, run["output_tail"][-800:]
        assert zygote.last["zygote"] and not plain.last["zygote"]


def test_a_zygote_serves_only_the_tree_it_read(tmp_path, boxes):
    """The scratch tree itself changes between requests (the model loop applies a patch there, then
    resets it): a pytest.ini or conftest.py that appears is read, as on the plain way."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "test_it.py").write_text("def test_one():\n    pass\n\n\ndef test_two():\n    pass\n")
    git(repo, "init", "-q")
    sb = boxes(repo)
    both = {"test_one": "passed", "test_two": "passed"}
    for _ in range(2):
        assert outcomes(worker_run(sb, [])) == both
    assert sb.last["zygote"]
    (repo / "pytest.ini").write_text('[pytest]\naddopts = -k "not two"\n')
    assert outcomes(worker_run(sb, [])) == {"test_one": "passed"}
    (repo / "pytest.ini").unlink()
    (repo / "conftest.py").write_text("import pytest\n\n\n@pytest.fixture(autouse=True)\ndef broken():\n"
                                      "    raise RuntimeError('conftest was read')\n")
    run = worker_run(sb, [])
    assert "passed" not in outcomes(run).values() and "conftest was read" in run["output_tail"]
    (repo / "conftest.py").unlink()
    assert outcomes(worker_run(sb, [])) == both and sb.last["zygote"]
    for _ in range(2):  # pytest's own answer to a test id that names nothing, from a zygote too
        run = worker_run(sb, ["tests/test_it.py::test_three"])
        assert run["returncode"] == 4 and "not found" in run["output_tail"], run["output_tail"][-500:]
    assert sb.last["zygote"]


def test_a_candidate_killed_mid_test_leaves_no_output_to_the_next(tmp_path, boxes):
    """Candidates forked from one zygote share what it opened, pytest's capture files among them:
    each candidate captures into its own, so one killed mid-test leaves its output to no one."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "calc.py").write_text("def value():\n    return 1\n")
    (repo / "tests" / "test_calc.py").write_text(textwrap.dedent("""\
        import os
        import signal

        from calc import value

        def test_value():
            print("captured from value", value())
            if value() == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            assert value() == 3
        """))
    git(repo, "init", "-q")
    sb = boxes(repo)
    assert outcomes(worker_run(sb, [])) == {"test_value": "failed"}
    killed = worker_run(sb, [], overlay={"calc.py": "def value():\n    return 2\n"})
    assert killed["returncode"] == 137 and sb.last["zygote"]
    # the next one's collection fails: the report shows what was captured since that began
    run = worker_run(sb, [], overlay={"calc.py": "print('importing calc')\nraise RuntimeError('no calc')\n"})
    assert sb.last["zygote"] and "importing calc" in run["output_tail"], run["output_tail"][-800:]
    assert run["returncode"] == 2  # pytest's own code for a collection error, as on the plain way
    assert "captured from value 2" not in run["output_tail"]


def test_a_recursion_error_reads_as_on_the_exec_path(tmp_path, boxes):
    """The worker keeps a RecursionError's first and last 30 frames (pytest's report walks all
    thousand to show the first and last ten): the report is the same but for the numbers in it."""
    repo = hostile_repo(tmp_path, "recursion")
    worker, exec_ = (boxes(repo).run_tests([]), boxes(repo, use_worker=False).run_tests([]))
    assert worker["runner"] == "worker" and exec_["runner"] == "exec"
    (short,), (full,) = ([c for c in run["cases"] if c["outcome"] == "failed"] for run in (worker, exec_))
    assert short["message"] == full["message"] and "RecursionError" in short["message"]
    count = re.compile(r"stack frames out of (\d+)")
    assert int(count.search(short["details"])[1]) < 100 < int(count.search(full["details"])[1])
    # the same report, but for numbers: the worker's stack starts deeper, so its recursion ends sooner
    digits = re.compile(r"\d+")
    assert digits.sub("N", short["details"]) == digits.sub("N", full["details"])


def kill_between_candidates(tmp_path, boxes, kill: str, zygote_after: bool) -> None:
    """Two candidates, then `kill` run in the container with $@ = the worker's processes, oldest
    first (the worker, its zygote, the spare); the next two candidates still get their answers."""
    sb = boxes(stateful_repo(tmp_path))
    for _ in range(2):
        assert outcomes(worker_run(sb, [])) == {"test_starts_clean": "passed"}
    assert sb.last["zygote"]
    sb.container.exec_run(["sh", "-c", "set -- $(for p in /proc/[0-9]*; do grep -q warm_worke[r] $p/cmdline "
                                       f"2>/dev/null && echo ${{p#/proc/}}; done | sort -n); {kill}"])
    for _ in range(2):
        run = worker_run(sb, [])
        assert outcomes(run) == {"test_starts_clean": "passed"}, run["output_tail"][-800:]
        assert sb.last["zygote"] == zygote_after


def test_a_dead_zygote_costs_one_plain_run(tmp_path, boxes):
    """A zygote killed between candidates (by a candidate's leftover, say): the next candidate runs
    the plain way and gets its answer; its selection stays on the plain way."""
    kill_between_candidates(tmp_path, boxes, "shift; kill -KILL $@", zygote_after=False)


def test_a_dead_spare_is_replaced(tmp_path, boxes):
    """Each candidate's process is forked one request ahead, as a spare that copies the zygote's
    memory while it waits. A spare killed while it waits (a running candidate can kill its sibling):
    the next candidate is forked from the zygote at once, and gets its answer."""
    kill_between_candidates(tmp_path, boxes, "eval kill -KILL \\${$#}", zygote_after=True)


def test_a_zygote_compiles_once_and_a_changed_file_anew(tmp_path, boxes):
    """The zygote compiles the tree's modules, and its test modules as pytest's assertion rewriter
    does, for all its candidates; a candidate that changed a file runs that file as it changed it."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "calc.py").write_text("def value():\n    return 1\n")
    test = "from calc import value\n\n\ndef test_value():\n    assert value() == {}\n"
    (repo / "tests" / "test_calc.py").write_text(test.format(2))
    git(repo, "init", "-q")
    sb, plain = boxes(repo), boxes(repo)
    plain.worker_flags = ["--no-zygotes"]
    cases = [({}, "failed", "assert 1 == 2"), ({}, "failed", "assert 1 == 2"),
             ({"calc.py": "def value():\n    return 2\n"}, "passed", ""),
             ({"tests/test_calc.py": test.format(3)}, "failed", "assert 1 == 3"), ({}, "failed", "assert 1 == 2")]
    for overlay, outcome, message in cases:
        for box in (sb, plain):
            run = worker_run(box, [], overlay=overlay)
            (case,) = run["cases"]
            assert case["outcome"] == outcome and message in case["message"], run["output_tail"][-800:]
            if message:  # pytest's rewritten assertion, on either way
                assert "where 1 = value()" in case["details"], case["details"]
    assert sb.last["zygote"] and not plain.last["zygote"]


def test_the_code_under_test_cannot_answer_for_the_worker(tmp_path, boxes):
    """The worker's pipes to the host cannot be reopened through /proc by its child."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "test_forge.py").write_text(textwrap.dedent("""\
        import os

        import pytest

        def test_cannot_reopen_the_workers_pipes():
            fds = f"/proc/{os.getppid()}/fd"
            for fd in range(5):
                with pytest.raises(PermissionError):
                    open(f"{fds}/{fd}", "w")
        """))
    git(repo, "init", "-q")
    run = boxes(repo).run_tests([])
    assert run["runner"] == "worker" and outcomes(run) == {"test_cannot_reopen_the_workers_pipes": "passed"}, \
        run["output_tail"][-800:]


def test_the_overlay_is_what_runs_and_the_tree_is_untouched(tmp_path, boxes):
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "tests" / "test_calc.py").write_text("from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    git(repo, "init", "-q")
    fixed = {"calc.py": "def add(a, b):\n    return a + b\n"}
    for sb in (boxes(repo), boxes(repo, use_worker=False)):
        assert outcomes(sb.run_tests([], overlay=fixed)) == {"test_add": "passed"}
        assert outcomes(sb.run_tests([])) == {"test_add": "failed"}
        (repo / "calc.py").write_text(fixed["calc.py"])  # the scratch tree itself changes between runs
        assert outcomes(sb.run_tests([])) == {"test_add": "passed"}
        (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    local = LocalSandbox(repo)
    try:
        assert outcomes(local.run_tests([], overlay=fixed)) == {"test_add": "passed"}
    finally:
        local.close()
    assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a - b\n"


def test_fallback_to_exec_is_said(tmp_path, boxes):
    repo = hostile_repo(tmp_path, "recursion")
    sb = boxes(repo)
    run = sb.run_tests(["tests/test_ok.py"], overlay={"conftest.py": "X = 1\n"})
    assert run["runner"] == "exec" and run["fallback"] == "the candidate changes conftest.py"
    assert outcomes(run) == {"test_add": "passed"}
    run = sb.run_tests(["tests/test_ok.py"], overlay={"data.txt": "x"})
    assert run["runner"] == "exec" and "not Python source" in run["fallback"]
    run = boxes(repo, use_worker=False).run_tests(["tests/test_ok.py"])
    assert run["runner"] == "exec" and "fallback" not in run
    with pytest.raises(BadInput):
        sb.run_tests([], overlay={"../outside.py": ""})


def _kill_worker(sb: DockerSandbox) -> None:
    sb.container.exec_run(["sh", "-c", "for p in /proc/[0-9]*; do grep -q warm_worke[r] $p/cmdline 2>/dev/null "
                                       "&& kill -KILL ${p#/proc/}; done"])


def test_a_dead_worker_is_restarted_once(tmp_path, boxes):
    sb = boxes(hostile_repo(tmp_path, "recursion"))
    args = ["tests/test_ok.py"]
    assert sb.run_tests(args)["runner"] == "worker"
    for _ in range(2):
        _kill_worker(sb)
        run = sb.run_tests(args)
        assert run["runner"] == "exec" and run["fallback"].startswith("the worker died"), run
        assert outcomes(run) == {"test_add": "passed"}
        if sb.worker_deaths < 2:
            assert sb.run_tests(args)["runner"] == "worker"  # restarted
    run = sb.run_tests(args)
    assert run["runner"] == "exec" and run["fallback"] == "the worker died twice in this task"


# -- the fault table, with the worker on ------------------------------------------------------------

def worker_run(sb: DockerSandbox, *args, **kw):
    run = sb.run_tests(*args, **kw)
    assert run["runner"] == "worker", run.get("fallback")
    return run


def test_worker_infinite_loop(tmp_path, boxes):
    sb = boxes(hostile_repo(tmp_path, "infinite_loop"))
    run = worker_run(sb, [], timeout=60, per_test_timeout=2)
    assert outcomes(run) == {"test_spins_forever": "failed", "test_add": "passed"} and not run["timed_out"]
    start = time.monotonic()
    run = worker_run(sb, [], timeout=4, per_test_timeout=600)
    assert time.monotonic() - start < 30
    assert run["timed_out"] and run["returncode"] == 124 and run["cases"] == []
    assert sb.container is None  # the container and whatever ran in it went, as on the exec path


def test_worker_fork_bomb(tmp_path, boxes):
    sb = boxes(hostile_repo(tmp_path, "fork_bomb"), pids=64, cpus=1.0)
    start = time.monotonic()
    run = worker_run(sb, [], timeout=15, per_test_timeout=3)
    assert time.monotonic() - start < 45
    if not run["timed_out"]:
        assert outcomes(run) == {"test_fork_bomb": "failed", "test_add": "passed"}, run["output_tail"][-500:]
    assert outcomes(worker_run(sb, ["tests/test_ok.py"])) == {"test_add": "passed"}


def test_worker_memory_bomb(tmp_path, boxes):
    sb = boxes(hostile_repo(tmp_path, "memory_bomb"), memory="384m")
    run = worker_run(sb, [], timeout=60, per_test_timeout=30)
    assert run["cases"] == [] and not run["timed_out"]
    assert "out-of-memory killer (memory limit 384m)" in crash_note(run), run["output_tail"][-300:]
    assert outcomes(worker_run(sb, ["tests/test_ok.py"])) == {"test_add": "passed"}  # the worker lived


def test_worker_self_kill(tmp_path, boxes):
    sb = boxes(hostile_repo(tmp_path, "self_kill"))
    run = worker_run(sb, [], timeout=60, per_test_timeout=20)
    assert run["cases"] == [] and not run["timed_out"] and run["returncode"] == 137
    assert crash_note(run) == "pytest was killed by SIGKILL before it reported any result"
    assert outcomes(worker_run(sb, ["tests/test_ok.py"])) == {"test_add": "passed"}


def test_worker_huge_output(tmp_path, boxes):
    sb = boxes(hostile_repo(tmp_path, "output_flood"))
    run = worker_run(sb, ["-s"], timeout=120, per_test_timeout=100)
    assert outcomes(run) == {"test_prints_gigabytes": "passed", "test_add": "passed"}, run["output_tail"][-300:]
    assert len(run["output_tail"].encode()) <= 64 * 1024 + 1024 and "2 passed" in run["output_tail"]
