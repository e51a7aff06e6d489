"""Localization: SBFL (Ochiai over per-test coverage), traceback frames, the prompt context."""

from __future__ import annotations

import re
import sys

import pytest

from repair_agent.localize.frames import context_for, frames, function_at, is_test_file, rank_frames
from repair_agent.localize.sbfl import ochiai, parse_spectrum, rank_functions, rank_lines, sbfl, spectrum
from repair_agent.sandbox import LocalSandbox
from helpers import write_repo

# A package where a helper in one module has the bug and a function in another module calls it.
# clamp() is wrong only for prices above the ceiling, so only the over-ceiling tests reach line 6.
TWO_MODULE = {
    "shop/__init__.py": "",
    "shop/pricing.py": """\
        def clamp(price, floor, ceiling):
            if price < floor:
                return floor
            if price > ceiling:
                # bug: should return ceiling
                return floor
            return price
        """,
    "shop/cart.py": """\
        from shop.pricing import clamp


        def total(prices, floor=0, ceiling=100):
            result = 0
            for p in prices:
                result += clamp(p, floor, ceiling)
            return result


        def count(prices):
            return len(prices)
        """,
    "tests/test_cart.py": """\
        from shop.cart import count, total


        def test_total_plain():
            assert total([10, 20]) == 30


        def test_total_floor():
            assert total([-5, 20]) == 20


        def test_total_ceiling():
            assert total([150, 20]) == 120


        def test_total_ceiling_alone():
            assert total([500]) == 100


        def test_count():
            assert count([1, 2, 3]) == 3
        """,
    "tests/test_pricing.py": """\
        from shop.pricing import clamp


        def test_clamp_inside():
            assert clamp(5, 0, 10) == 5
        """,
}

FAILING = ["tests/test_cart.py::test_total_ceiling", "tests/test_cart.py::test_total_ceiling_alone"]


@pytest.fixture(scope="module")
def two_module(tmp_path_factory):
    return write_repo(tmp_path_factory.mktemp("two_module"), TWO_MODULE)


@pytest.fixture(scope="module")
def local(two_module):
    sb = LocalSandbox(two_module, python=sys.executable)
    yield sb
    sb.close()


@pytest.fixture(scope="module")
def spec(local):
    return spectrum(local, [], FAILING)


def test_ochiai():
    assert ochiai(0, 5, 2) == 0.0
    assert ochiai(2, 0, 2) == 1.0
    assert ochiai(1, 1, 2) == pytest.approx(0.5)


def test_spectrum_counts_each_test(spec):
    assert spec["n_failed"] == 2 and spec["n_passed"] == 4
    assert sorted(spec["failing"]) == FAILING
    rows = {(r[0], r[1]): (r[2], r[3]) for r in spec["lines"]}
    assert rows[("shop/pricing.py", 6)] == (2, 0)  # the buggy return: failing tests only
    assert rows[("shop/cart.py", 7)] == (2, 2)  # the call site: every total() test


def test_buggy_helper_ranks_above_its_caller(spec, two_module):
    lines = rank_lines(spec)
    assert (lines[0]["file"], lines[0]["line"]) == ("shop/pricing.py", 6)
    assert lines[0]["score"] == pytest.approx(1.0)
    assert not any(is_test_file(loc["file"]) for loc in lines)
    funcs = rank_functions(lines, two_module)
    names = [(f["file"], f["function"]) for f in funcs]
    assert names.index(("shop/pricing.py", "clamp")) < names.index(("shop/cart.py", "total"))
    assert funcs[0] == {"file": "shop/pricing.py", "function": "clamp", "line": 6, "score": 1.0}
    assert ("shop/cart.py", "count") not in names  # no failing test ran it


def test_sbfl_end_to_end_uses_own_outcomes_without_failing_ids(local, two_module):
    funcs = sbfl(local, ["tests/test_cart.py"])
    assert funcs[0]["function"] == "clamp" and funcs[0]["file"] == "shop/pricing.py"
    assert not list(two_module.rglob("*.coverage*")) and not (two_module / ".coverage").exists()


def test_parse_spectrum_reports_missing_output():
    from repair_agent.errors import SandboxError

    with pytest.raises(SandboxError):
        parse_spectrum("ImportError: no module named coverage\n")


ERROR_REPO = {
    "calc/__init__.py": "",
    "calc/core.py": """\
        def divide(a, b):
            return a / b


        class Stats:
            def mean(self, xs):
                total = sum(xs)
                return divide(total, len(xs))
        """,
    "calc/api.py": """\
        from calc.core import Stats


        def report(xs):
            s = Stats()
            return f"mean={s.mean(xs)}"
        """,
    "tests/test_api.py": """\
        from calc.api import report


        def test_report_empty():
            assert report([]) == "mean=0"


        def test_report():
            assert report([2, 4]) == "mean=3.0"
        """,
}


@pytest.fixture(scope="module")
def error_repo(tmp_path_factory):
    return write_repo(tmp_path_factory.mktemp("error_repo"), ERROR_REPO)


def test_frames_from_pytest_failure_deepest_first(error_repo):
    sb = LocalSandbox(error_repo, python=sys.executable)
    try:
        run = sb.run_tests(["tests/test_api.py"])
    finally:
        sb.close()
    failed = [c for c in run["cases"] if c["outcome"] == "failed"]
    assert [c["id"] for c in failed] == ["tests/test_api.py::test_report_empty"]
    fr = frames(failed[0]["details"], error_repo)
    assert [f["file"] for f in fr] == ["tests/test_api.py", "calc/api.py", "calc/core.py", "calc/core.py"]
    ranked = rank_frames([c["details"] for c in failed], error_repo)
    assert [(r["file"], r["function"], r["line"]) for r in ranked] == [
        ("calc/core.py", "divide", 2), ("calc/core.py", "Stats.mean", 8), ("calc/api.py", "report", 6)]
    assert ranked[0]["score"] == 1.0 and ranked[0]["score"] > ranked[1]["score"] > ranked[2]["score"]


def test_frames_native_and_container_paths(error_repo):
    text = ('Traceback (most recent call last):\n'
            '  File "/workspace/calc/api.py", line 6, in report\n'
            '  File "/usr/lib/python3.11/statistics.py", line 3, in mean\n'
            '  File "/workspace/calc/core.py", line 2, in divide\n'
            'ZeroDivisionError: division by zero\n')
    fr = frames(text, error_repo)
    assert [(f["file"], f["line"], f["function"]) for f in fr] == [
        ("calc/api.py", 6, "report"), ("calc/core.py", 2, "divide")]
    assert function_at(error_repo, "calc/core.py", 7) == "Stats.mean"
    assert function_at(error_repo, "calc/core.py", 4) == "<module>"


def test_context_for_shows_functions_not_files_within_budget(error_repo):
    locs = [{"file": "calc/core.py", "function": "divide", "line": 2, "score": 1.0},
            {"file": "calc/core.py", "function": "Stats.mean", "line": 8, "score": 0.5},
            {"file": "calc/api.py", "function": "report", "line": 6, "score": 0.3}]
    text = context_for(error_repo, locs, budget_tokens=400)
    assert "# calc/core.py:1-2 (divide)" in text
    assert ">2 | " in text
    assert "def mean(self, xs):" in text and "class Stats" not in text
    assert "def report(xs):" in text and "from calc.core import" not in text
    small = context_for(error_repo, locs, budget_tokens=20)
    assert len(small) <= 80 and "divide" in small
    assert context_for(error_repo, locs, budget_tokens=0) == ""


def test_context_for_shows_a_nested_function_once_inside_its_outer_one(tmp_path):
    (tmp_path / "search.py").write_text(
        "def find(arr, x):\n"
        "    def go(lo, hi):\n"
        "        if lo == hi:\n"
        "            return -1\n"
        "        return go(lo + 1, hi)\n"
        "\n"
        "    return go(0, len(arr))\n")
    locs = [{"file": "search.py", "function": "find.go", "line": 5, "score": 1.0},
            {"file": "search.py", "function": "find", "line": 7, "score": 0.5}]
    text = context_for(tmp_path, locs)
    assert text.count("def go(lo, hi):") == 1
    assert text.startswith("# search.py:1-7 (find)")
    assert ">5 | " in text and ">7 | " in text


@pytest.mark.docker
def test_sbfl_in_docker(two_module, docker_ready):
    from repair_agent.sandbox import DockerSandbox

    sb = DockerSandbox(two_module, log=lambda *a: None)
    try:
        funcs = sbfl(sb, [], FAILING)
    finally:
        sb.close()
    assert funcs[0] == {"file": "shop/pricing.py", "function": "clamp", "line": 6, "score": 1.0}
    names = [f["function"] for f in funcs]
    assert names.index("clamp") < names.index("total")
    assert sorted(p.name for p in two_module.iterdir()) == ["shop", "tests"]


# The coverage tool's own process, and its parent: the Docker wrapper (`sh -c WRAPPER ...`). The
# brackets keep this script's own command line from matching itself.
KILL_WRAPPER = r"""
for d in /proc/[0-9]*; do
  if tr '\0' ' ' < $d/cmdline 2>/dev/null | grep -q 'cov[e]rage_contexts' && \
     tr '\0' ' ' < $d/cmdline | grep -q 'oom_kil[l]'; then kill -KILL ${d#/proc/} && echo ${d#/proc/}; fi
done
"""


def kill_wrappers(sb, times: int, stop):
    """Kill the wrapper of each of the next `times` coverage runs in `sb`'s container, mid-run, as the
    kernel's out-of-memory killer or a `docker exec` lost under load would: no exit code comes back."""
    killed = []
    while len(killed) < times and not stop.is_set():
        try:
            container = sb.container
            if container is not None and container.exec_run(["sh", "-c", KILL_WRAPPER]).output.strip():
                killed.append(container.id)
                while sb.container is container and not stop.is_set():  # it goes with the run
                    stop.wait(0.05)
        except Exception:  # no container yet, or it is being removed
            pass
        stop.wait(0.1)
    return killed


@pytest.mark.docker
@pytest.mark.parametrize("kills", [1, 2])
def test_a_killed_coverage_run_is_said_so_and_runs_once_more(tmp_path, docker_ready, kills):
    """The Docker wrapper killed 2 s into a 120 s coverage run: not a timeout. Once: the retry gives the
    spectrum (and the log says so); twice: the error says killed, twice, and when."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from repair_agent.errors import SandboxError
    from repair_agent.sandbox import DockerSandbox

    repo = write_repo(tmp_path / "repo", {**TWO_MODULE, "tests/test_slow.py": """\
        import time


        def test_slow():  # a window for the kill
            time.sleep(3)
        """})
    sb = DockerSandbox(repo, log=lambda *a: None)
    stop, logged = threading.Event(), []
    try:
        with ThreadPoolExecutor(1) as pool:
            killer = pool.submit(kill_wrappers, sb, kills, stop)
            try:
                if kills == 1:
                    spec = spectrum(sb, [], FAILING, timeout=120, log=logged.append)
                else:
                    with pytest.raises(SandboxError) as err:
                        spectrum(sb, [], FAILING, timeout=120, log=logged.append)
            finally:
                stop.set()
            assert len(killer.result()) == kills
    finally:
        sb.close()
    assert len(logged) == 1 and logged[0].startswith("coverage run was killed after "), logged
    assert "of its 120s (not a timeout" in logged[0] and logged[0].endswith("; running it again")
    if kills == 1:
        assert (spec["n_failed"], spec["n_passed"]) == (2, 5)
    else:
        assert "timed out" not in str(err.value)
        assert re.fullmatch(r"coverage run was killed twice, after \d+s and \d+s of its 120s \(not a timeout: "
                            r"killed, e\.g\. under memory or CPU pressure\)", str(err.value)), str(err.value)


def test_a_suite_too_slow_under_coverage_gives_the_spectrum_of_the_failing_tests_modules(tmp_path):
    """The localize node's fallback: coverage slows a tight loop many times over (tqdm's overhead
    tests), and the whole suite outlasts the limit; the failing tests' own modules still rank."""
    from types import SimpleNamespace

    from repair_agent.localize.sbfl import SpectrumTimedOut
    from repair_agent.nodes.localize import spectrum as localize_spectrum

    repo = write_repo(tmp_path / "repo", {**TWO_MODULE, "tests/test_slow.py": """\
        import time


        def test_slow():
            time.sleep(40)
        """})
    sb = LocalSandbox(repo, python=sys.executable)
    logged: list[str] = []
    deps = SimpleNamespace(sandbox=sb, settings=SimpleNamespace(test_timeout_s=15, per_test_timeout_s=60),
                           log=logged.append)
    state = {"test_args": [], "failing": FAILING, "tests_before": {"cases": []}}
    try:
        with pytest.raises(SpectrumTimedOut):
            spectrum(sb, [], FAILING, timeout=15)
        spec = localize_spectrum(state, deps)
    finally:
        sb.close()
    assert (spec["n_failed"], spec["n_passed"]) == (2, 3)  # test_cart.py's five tests; test_pricing's not run
    assert rank_lines(spec)[0] == {"file": "shop/pricing.py", "function": "", "line": 6, "score": 1.0}
    assert len(logged) == 1 and logged[0].startswith("coverage run timed out after ")
    assert logged[0].endswith("the spectrum from the failing tests' modules alone (tests/test_cart.py)")
