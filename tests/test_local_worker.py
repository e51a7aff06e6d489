"""The local sandbox through the warm test worker (`warm_worker.py --local`): the same answers as
its plain subprocess path, nothing carried from one candidate to the next, and the host's /tmp
left alone (the worker empties only its own private folder)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from helpers import assert_each_candidate_starts_clean, outcomes, stateful_repo

from repair_agent.sandbox import TOOLS_DIR, LocalSandbox

FIXED = {"mylist/core.py": (Path(__file__).parent / "fixtures/wrong_index/mylist/core.py").read_text()
         .replace("items[2]", "items[1]")}


WHERE = {**FIXED, "tests/test_where.py": "def test_where():\n    raise ValueError(__file__)\n"}


def messages(run) -> dict[str, str]:
    return {c["id"].split("::", 1)[1]: c["message"] for c in run["cases"]}


def test_the_local_worker_answers_as_the_plain_path(make_repo):
    repo = make_repo("wrong_index")
    worker, plain = LocalSandbox(repo, use_worker=True), LocalSandbox(repo)
    try:
        for overlay in (None, FIXED, WHERE):  # the buggy tree, the fix, a test that shows its own path
            a, b = worker.run_tests([], overlay=overlay), plain.run_tests([], overlay=overlay)
            assert (a["runner"], b["runner"]) == ("worker", "exec")
            assert outcomes(a) == outcomes(b) and a["returncode"] == b["returncode"]
            assert messages(a) == messages(b)  # the worker's private workspace shows as the tree
            assert len(a["cases"]) == 4 + (overlay is WHERE)
        assert set(outcomes(a).values()) == {"passed", "failed"} and str(repo) in messages(a)["test_where"]
        conftest = worker.run_tests([], overlay={"tests/conftest.py": "X = 1\n"})  # the worker cannot take it
        assert conftest["runner"] == "exec" and conftest["fallback"] == "the candidate changes tests/conftest.py"
    finally:
        worker.close()
        plain.close()
    assert not worker.private.exists()


def test_a_local_candidate_leaves_nothing_to_the_next(tmp_path):
    """As in the container (warm_worker.py): each candidate starts from none of the last one's state."""
    sb = LocalSandbox(stateful_repo(tmp_path), use_worker=True)
    try:
        assert_each_candidate_starts_clean(sb)
    finally:
        sb.close()


def test_the_local_worker_leaves_the_hosts_tmp_alone(make_repo, tmp_path):
    keep = tempfile.NamedTemporaryFile(dir="/tmp", prefix="repair-agent-keep-", delete=False)
    keep.write(b"mine")
    keep.close()
    repo = make_repo("wrong_index")
    sb = LocalSandbox(repo, use_worker=True)
    try:
        for overlay in (None, FIXED):
            assert sb.run_tests([], overlay=overlay)["runner"] == "worker"
        assert Path(keep.name).read_bytes() == b"mine"
        # a folder without the local sandbox's marker: the worker refuses it and empties nothing
        stranger = tmp_path / "stranger"
        (stranger / "tmp").mkdir(parents=True)
        (stranger / "tmp" / "theirs").write_text("x")
        proc = subprocess.run([sys.executable, str(TOOLS_DIR / "warm_worker.py"), "--local", str(repo), str(stranger)],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert proc.returncode != 0 and "not a private folder" in proc.stderr
        assert (stranger / "tmp" / "theirs").exists()
    finally:
        sb.close()
        os.unlink(keep.name)


def test_a_hanging_local_candidate_is_killed_and_the_worker_goes_on(make_repo):
    repo = make_repo("wrong_index")
    hang = {"mylist/core.py": FIXED["mylist/core.py"].replace("return items[0]", "while True:\n        pass")}
    sb = LocalSandbox(repo, use_worker=True)
    try:
        run = sb.run_tests(["tests/test_core.py::test_first"], timeout=3, per_test_timeout=60, overlay=hang)
        assert run["timed_out"] and run["runner"] == "worker"
        assert outcomes(sb.run_tests([], overlay=FIXED)) == dict.fromkeys(
            ["test_first", "test_second", "test_second_of_two", "test_last"], "passed")
    finally:
        sb.close()
