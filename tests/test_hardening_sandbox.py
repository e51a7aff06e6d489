"""Hardening, part 1: hostile code under test in the Docker sandbox.

Each test copies one hostile test module (tests/fixtures/hostile/cases/, never collected on the
host) into a small repository beside a normal passing test, runs it in a `DockerSandbox`, and
checks that the run ends with a defined result, that the tree on the host is byte-identical, and
that no container this sandbox made is left. Nothing here sends traffic off this machine: the
network test listens on the host's 127.0.0.1 and shows the sandbox cannot reach it.
"""

from __future__ import annotations

import resource
import socket
import threading
import time
from pathlib import Path

import pytest
from helpers import FIXTURES, containers_for, hostile_repo, outcomes, tree_hash

from repair_agent.sandbox import OUTPUT_LIMIT, DockerSandbox, LocalSandbox, crash_note

pytestmark = pytest.mark.docker
CASES = FIXTURES / "hostile" / "cases"


@pytest.fixture
def box(docker_ready):
    """Open sandboxes on a repo; at the end: closed, no container left, the host tree unchanged."""
    opened: list[tuple[DockerSandbox, Path, str]] = []

    def open_box(repo: Path, **kw) -> DockerSandbox:
        sb = DockerSandbox(repo, log=lambda m: None, **kw)
        opened.append((sb, repo, tree_hash(repo)))
        return sb

    yield open_box
    for sb, repo, before in opened:
        sb.close()
        assert containers_for(repo) == [], "a container outlived its sandbox"
        assert tree_hash(repo) == before, "the code under test changed the host's tree"


def still_works(sb: DockerSandbox) -> None:
    """The same sandbox runs a normal test afterwards (a fresh container where it had to)."""
    run = sb.run_tests(["tests/test_ok.py"], timeout=60, per_test_timeout=10)
    assert outcomes(run) == {"test_add": "passed"}, run["output_tail"][-500:]


def test_infinite_loop_is_stopped_by_the_per_test_timeout(tmp_path, box):
    sb = box(hostile_repo(tmp_path, "infinite_loop"))
    start = time.monotonic()
    run = sb.run_tests([], timeout=60, per_test_timeout=2)
    assert time.monotonic() - start < 30
    assert outcomes(run) == {"test_spins_forever": "failed", "test_add": "passed"}
    assert "Timeout" in next(c["message"] for c in run["cases"] if c["outcome"] == "failed")
    assert not run["timed_out"]


def test_infinite_loop_past_the_run_timeout_is_killed(tmp_path, box):
    sb = box(hostile_repo(tmp_path, "infinite_loop"))
    start = time.monotonic()
    run = sb.run_tests([], timeout=4, per_test_timeout=600)
    assert time.monotonic() - start < 40
    assert run["timed_out"] and run["returncode"] == 124 and run["cases"] == []
    assert sb.container is None  # the container and whatever ran in it went
    still_works(sb)


def test_unbounded_recursion_is_a_failed_test(tmp_path, box):
    sb = box(hostile_repo(tmp_path, "recursion"))
    run = sb.run_tests([], timeout=60, per_test_timeout=20)
    assert outcomes(run) == {"test_unbounded_recursion": "failed", "test_add": "passed"}
    assert "RecursionError" in run["cases"][1]["message"] + run["cases"][0]["message"]


def test_recursion_past_the_c_stack_is_a_reported_crash(tmp_path, box):
    sb = box(hostile_repo(tmp_path, "stack_overflow"))
    run = sb.run_tests([], timeout=60, per_test_timeout=20)
    assert run["cases"] == [] and not run["timed_out"]
    assert "SIGSEGV" in crash_note(run) or "out-of-memory" in crash_note(run), run["output_tail"][-300:]
    still_works(sb)


def test_fork_bomb_hits_the_pids_limit_and_is_cleaned_up(tmp_path, box):
    sb = box(hostile_repo(tmp_path, "fork_bomb"), pids=64, cpus=1.0)
    start = time.monotonic()
    run = sb.run_tests([], timeout=15, per_test_timeout=3)
    assert time.monotonic() - start < 45
    # pytest-timeout ends the parent, which reports; the bomb's children are killed with their
    # process group. On a starved CPU the parent may not get to report: then the run timeout ends it.
    if not run["timed_out"]:
        assert outcomes(run) == {"test_fork_bomb": "failed", "test_add": "passed"}, run["output_tail"][-500:]
    else:
        assert sb.container is None
    still_works(sb)


def test_memory_bomb_is_killed_at_the_memory_limit(tmp_path, box):
    sb = box(hostile_repo(tmp_path, "memory_bomb"), memory="384m")
    start = time.monotonic()
    run = sb.run_tests([], timeout=60, per_test_timeout=30)
    assert time.monotonic() - start < 45
    assert run["cases"] == [] and not run["timed_out"]
    assert "out-of-memory killer (memory limit 384m)" in crash_note(run), run["output_tail"][-300:]
    still_works(sb)


@pytest.fixture
def host_listener():
    """A TCP listener on the host's loopback that records every connection it accepts."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    accepted: list = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, addr = srv.accept()
            except OSError:
                continue
            accepted.append(addr)
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    t.join(2)
    srv.close()


def test_network_is_off_host_loopback_unreachable(tmp_path, box, host_listener):
    port, accepted = host_listener
    case = (CASES / "network.py").read_text().replace("PORT = 0", f"PORT = {port}")
    repo = hostile_repo(tmp_path, "network", {"tests/test_network.py": case})
    run = box(repo).run_tests([], timeout=60, per_test_timeout=20)
    assert outcomes(run) == {"test_host_loopback_is_not_reachable": "passed", "test_add": "passed"}, \
        run["output_tail"][-800:]
    assert accepted == []
    # the control: the same test as a plain subprocess does reach the listener, so the check bites
    local = LocalSandbox(repo)
    try:
        run = local.run_tests(["tests/test_network.py"], timeout=60, per_test_timeout=20)
    finally:
        local.close()
    assert outcomes(run) == {"test_host_loopback_is_not_reachable": "failed"}
    assert len(accepted) == 1


def test_writing_outside_the_workspace_fails(tmp_path, box):
    sb = box(hostile_repo(tmp_path, "write_outside"))
    run = sb.run_tests([], timeout=60, per_test_timeout=20)
    assert run["cases"] and all(c["outcome"] == "passed" for c in run["cases"]), run["output_tail"][-800:]
    assert len(run["cases"]) == 8
    # the workspace scribble stayed in the container's copy
    assert not (sb.workdir / "scribble").exists()


def test_deleting_the_workspace_harms_only_the_sandbox_copy(tmp_path, box):
    repo = hostile_repo(tmp_path, "delete_workspace")
    sb = box(repo)
    run = sb.run_tests(["tests/test_delete_workspace.py"], timeout=60, per_test_timeout=20)
    assert outcomes(run) == {"test_deletes_the_workspace": "passed"}
    assert (repo / ".git").is_dir() and (repo / "calc.py").is_file()
    still_works(sb)  # the next run gets the whole tree again


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_gigabytes_of_output_are_truncated_and_the_run_goes_on(tmp_path, box):
    sb = box(hostile_repo(tmp_path, "output_flood"))
    rss = _maxrss_mb()
    run = sb.run_tests(["-s"], timeout=120, per_test_timeout=100)  # -s: 2 GiB straight to the console
    assert outcomes(run) == {"test_prints_gigabytes": "passed", "test_add": "passed"}, run["output_tail"][-300:]
    assert len(run["output_tail"].encode()) <= OUTPUT_LIMIT + 1024
    assert "2 passed" in run["output_tail"]  # the tail is what was kept
    assert _maxrss_mb() - rss < 100  # the host never held the flood


def test_gigabytes_of_captured_output_end_in_a_defined_result(tmp_path, box):
    sb = box(hostile_repo(tmp_path, "output_flood"))
    run = sb.run_tests([], timeout=120, per_test_timeout=100)  # pytest captures the flood itself
    assert outcomes(run).get("test_add") == "passed" or crash_note(run), run["output_tail"][-300:]
    assert len(run["output_tail"].encode()) <= OUTPUT_LIMIT + 1024
    still_works(sb)


def test_gigabytes_printed_at_collection(tmp_path, box):
    sb = box(hostile_repo(tmp_path, "collection_flood"))
    run = sb.run_tests(["-s"], timeout=120, per_test_timeout=60)
    assert outcomes(run) == {"test_after_the_flood": "passed", "test_add": "passed"}, run["output_tail"][-300:]
    assert len(run["output_tail"].encode()) <= OUTPUT_LIMIT + 1024


def test_gigabytes_captured_at_collection_are_a_collection_error(tmp_path, box):
    """pytest's capture file fills the sandbox's /tmp (512 MiB): the module fails to import, an error."""
    sb = box(hostile_repo(tmp_path, "collection_flood"))
    run = sb.run_tests([], timeout=120, per_test_timeout=60)
    (case,) = run["cases"]
    assert case["outcome"] == "error" and "No space left on device" in case["details"]
    assert len(run["output_tail"].encode()) <= OUTPUT_LIMIT + 1024
    still_works(sb)


def test_a_test_that_kills_its_own_process(tmp_path, box):
    sb = box(hostile_repo(tmp_path, "self_kill"))
    start = time.monotonic()
    run = sb.run_tests([], timeout=60, per_test_timeout=20)
    assert time.monotonic() - start < 30  # not mistaken for a timeout
    assert run["cases"] == [] and not run["timed_out"] and run["returncode"] == 137
    assert crash_note(run) == "pytest was killed by SIGKILL before it reported any result"
    still_works(sb)


def test_non_utf8_source_and_output(tmp_path, box):
    repo = hostile_repo(tmp_path, "non_utf8", {"latin.py": (CASES / "latin.py").read_bytes()})
    run = box(repo).run_tests(["-rA"], timeout=60, per_test_timeout=20)
    assert outcomes(run) == {"test_prints_bytes_that_are_not_utf8": "passed",
                             "test_fails_with_a_latin1_message": "failed", "test_add": "passed"}
    failed = next(c for c in run["cases"] if c["outcome"] == "failed")
    assert "café" in failed["message"]
    assert isinstance(run["output_tail"], str) and "\ufffd" in run["output_tail"]  # bad bytes replaced
