"""The warm test worker's zygote imports the tree's modules that the selected tests import
(warm_worker.Preloaded), in a real Docker sandbox: a candidate that changes a function's body sees
its change through every module that imported the function; anything else changed imports the tree
anew; module state stays in its candidate; the answers are the exec path's. Each test module here
records, in the environment, which process imported `pkg.util` (IMPORTED_BY): the zygote's pid
where the candidate kept the preloaded module, the candidate's own where it imported it anew."""

from __future__ import annotations

import textwrap
from pathlib import Path

from helpers import git, outcomes, write_repo
from test_worker import boxes, worker_run  # noqa: F401 (boxes: the fixture)

from repair_agent.sandbox import LocalSandbox

UTIL = """\
    import os

    os.environ["IMPORTED_BY"] = str(os.getpid())
    LIMIT = 1
    SEEN = []


    def helper(x):
        return x + 1


    def f(x):
        SEEN.append(x)
        return helper(x) + 1


    class Box:
        def value(self):
            return 1

        def fail(self):
            raise ValueError("from Box.fail")


    def make():
        return 10


    MADE = make()
    """

TEST = """\
    import os

    import pkg
    from pkg.user import g, limit, made
    from pkg.util import Box

    import pkg.util


    def preloaded():
        return os.environ["IMPORTED_BY"] != str(os.getpid())


    def test_f():
        assert (pkg.f(1), g(1), pkg.util.f(1)) == (EXPECTED,) * 3  # three importers of one function
        assert pkg.util.SEEN == [1, 1, 1]  # every candidate starts from the module as imported


    def test_box():
        assert Box().value() == 2


    def test_limit_and_made():
        assert (limit(), made()) == (1, 10)


    def test_fail():
        Box().fail()


    def test_preloaded():
        assert preloaded()
    """


def preload_repo(tmp_path: Path, expected: int = 4) -> Path:
    repo = write_repo(tmp_path / "repo", {
        "pkg/__init__.py": "from .util import f\n",
        "pkg/util.py": UTIL,
        "pkg/user.py": "from pkg.util import LIMIT, MADE, f\n\n\ndef g(x):\n    return f(x)\n\n\n"
                       "def limit():\n    return LIMIT\n\n\ndef made():\n    return MADE\n",
        "tests/test_pkg.py": TEST.replace("EXPECTED", str(expected)),
    })
    git(repo, "init", "-q")
    return repo


def changed(old: str, new: str) -> dict[str, str]:
    """pkg/util.py (as written: dedented) with `old` replaced by `new`."""
    text = textwrap.dedent(UTIL)
    assert old in text
    return {"pkg/util.py": text.replace(old, new)}


def details(run, test: str) -> str:
    return next(c["details"] for c in run["cases"] if c["id"].endswith("::" + test))


def test_a_changed_function_body_reaches_every_importer(tmp_path, boxes):
    """`f` is imported three ways (pkg's `from .util import f`, pkg.user's `from pkg.util import f`,
    the module itself); a candidate that changes its body, or a method's, gets its code in the
    imported function objects, with the line numbers of its own text (two lines more before Box)."""
    repo = preload_repo(tmp_path)
    worker, exec_ = boxes(repo), boxes(repo, use_worker=False)
    base = {"test_f": "failed", "test_box": "failed", "test_limit_and_made": "passed", "test_fail": "failed",
            "test_preloaded": "passed"}
    for _ in range(2):  # the first makes the zygote
        assert outcomes(worker_run(worker, [])) == base
    assert worker.last["zygote"]
    body = changed("    return helper(x) + 1\n", "    y = helper(x)\n    y += 2\n    return y\n")
    method = changed("    def value(self):\n        return 1\n", "    def value(self):\n        return 2\n")
    for overlay, expect in ((body, {"test_f": "passed"}), (method, {"test_box": "passed"}), ({}, {})):
        run = worker_run(worker, [], overlay=overlay)
        assert outcomes(run) == {**base, **expect}, run["output_tail"][-1500:]
        assert outcomes(exec_.run_tests([], overlay=overlay)) == {**base, **expect, "test_preloaded": "failed"}
    # Box.fail's raise is on line 22 of the file as the worker imported it, 24 in the candidate's text
    run = worker_run(worker, [], overlay=body)
    assert "pkg/util.py:24: ValueError" in details(run, "test_fail"), details(run, "test_fail")
    assert 'raise ValueError("from Box.fail")' in details(run, "test_fail")


def test_the_local_worker_preloads_the_tree_too(tmp_path):
    """The local sandbox's worker (`--local`, no Docker) keeps the preloaded modules for a changed
    function body, and imports anew for a changed constant."""
    sb = LocalSandbox(preload_repo(tmp_path), use_worker=True)
    try:
        for _ in range(2):
            assert outcomes(worker_run(sb, []))["test_f"] == "failed"
        run = worker_run(sb, [], overlay=changed("    return helper(x) + 1\n", "    return helper(x) + 2\n"))
        assert outcomes(run)["test_f"] == "passed" and outcomes(run)["test_preloaded"] == "passed", \
            run["output_tail"][-1500:]
        run = worker_run(sb, [], overlay=changed("LIMIT = 1\n", "LIMIT = 2\n"))
        assert outcomes(run)["test_limit_and_made"] == "failed" and outcomes(run)["test_preloaded"] == "failed"
    finally:
        sb.close()


def test_module_state_stays_in_its_candidate(tmp_path, boxes):
    """Each candidate's test appends to pkg.util.SEEN, a module-level list of a preloaded module, and
    finds it as the import left it: candidates that change f's body, and one that changes nothing."""
    sb = boxes(preload_repo(tmp_path, expected=3))
    for i in range(4):
        overlay = changed("    SEEN.append(x)\n", f"    SEEN.append(x)  # {i}\n    SEEN.sort()\n") if i % 2 else {}
        run = worker_run(sb, ["tests/test_pkg.py::test_f", "tests/test_pkg.py::test_preloaded"], overlay=overlay)
        assert outcomes(run) == {"test_f": "passed", "test_preloaded": "passed"}, run["output_tail"][-1500:]


def test_a_change_outside_function_bodies_imports_the_tree_anew(tmp_path, boxes):
    """A module constant (imported by value into pkg.user), a default value, a function that ran at
    import time (MADE = make()), a new top-level statement: each candidate imports the tree anew and
    gets the exec path's answers; the next candidate that changes only a body is preloaded again."""
    repo = preload_repo(tmp_path)
    worker, exec_ = boxes(repo), boxes(repo, use_worker=False)
    cases = [changed("LIMIT = 1\n", "LIMIT = 2\n"),
             changed("def helper(x):\n", "def helper(x=0):\n"),
             changed("    return 10\n", "    return 11\n"),
             changed("MADE = make()\n", "MADE = make()\nLIMIT += 1\n"),
             changed("    return helper(x) + 1\n", "    return helper(x) + 2\n")]
    worker_run(worker, [])
    for overlay in cases:
        run = worker_run(worker, [], overlay=overlay)
        got, want = outcomes(run), outcomes(exec_.run_tests([], overlay=overlay))
        kept = overlay is cases[-1]  # only a body changed: the zygote's modules serve
        assert got.pop("test_preloaded") == ("passed" if kept else "failed"), run["output_tail"][-1500:]
        assert want.pop("test_preloaded") == "failed"
        assert got == want, run["output_tail"][-1500:]
    assert worker.last["zygote"]


def test_the_workspace_is_the_tree_each_time(tmp_path, boxes):
    """The worker rewrites only what differs in the workspace: what a candidate's test wrote,
    deleted or made there is gone for the next; version control stays out, as on the exec path."""
    repo = write_repo(tmp_path / "repo", {
        "data.txt": "original\n",
        "pkg/__init__.py": "",
        "pkg/mod.py": "VALUE = 1\n",
        "tests/test_ws.py": """\
            import os


            def test_workspace_is_clean():
                assert not os.path.exists(".git")
                assert open("data.txt").read() == "original\\n"
                assert open("pkg/mod.py").read() == "VALUE = 1\\n"
                assert sorted(os.listdir("pkg")) == ["__init__.py", "mod.py"]
                assert not os.path.exists("made")
                open("data.txt", "a").write("more\\n")
                os.chmod("pkg/mod.py", 0o600)
                os.unlink("pkg/__init__.py")
                with open("pkg/new.py", "w") as f:
                    f.write("x = 1\\n")
                os.makedirs("made/deeper")
            """,
    })
    git(repo, "init", "-q")
    worker, exec_ = boxes(repo), boxes(repo, use_worker=False)
    for i in range(3):
        for sb in (worker, exec_):
            run = sb.run_tests([], overlay={"pkg/mod.py": "VALUE = 1\n"} if i == 1 else None)
            assert outcomes(run) == {"test_workspace_is_clean": "passed"}, run["output_tail"][-1500:]
    assert worker.last["zygote"]


def test_a_test_module_that_changes_sys_path_imports_what_it_would(tmp_path, boxes):
    """`helpers` is both the tree's root module and one in tests/fixtures, which the test modules put
    first on sys.path before they import it (one with os.path calls, one through a variable): the
    zygote does not preload the root's for them, and they get the fixtures' one, as on the exec path."""
    repo = write_repo(tmp_path / "repo", {
        "helpers.py": "WHERE = 'root'\n",
        "tests/fixtures/helpers.py": "WHERE = 'fixtures'\n",
        "tests/test_calls.py": """\
            import os
            import sys

            sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
            import helpers


            def test_calls():
                assert helpers.WHERE == "fixtures"
            """,
        "tests/test_variable.py": """\
            import os
            import sys

            FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
            sys.path.insert(0, FIXTURES)
            import helpers


            def test_variable():
                assert helpers.WHERE == "fixtures"
            """,
    })
    git(repo, "init", "-q")
    worker, exec_ = boxes(repo), boxes(repo, use_worker=False)
    for test in ("tests/test_calls.py", "tests/test_variable.py"):
        name = test.split("/")[1][:-3]
        for _ in range(2):
            run = worker_run(worker, [test])
            assert outcomes(run) == {name: "passed"}, run["output_tail"][-1500:]
        assert worker.last["zygote"]
        assert outcomes(exec_.run_tests([test])) == {name: "passed"}
