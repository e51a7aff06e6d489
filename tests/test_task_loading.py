"""A task that cannot be loaded is that task's record, never the run's traceback: a BugsInPy bug
whose files cannot be read, a `repos` line that is not a task. The others load and run. No model:
the mutation search alone fixes the task that loads."""

from __future__ import annotations

import codecs
import json

from repair_agent.bench.bugsinpy import load_bugsinpy
from repair_agent.bench.datasets import load_repos
from repair_agent.bench.runner import run_benchmark
from repair_agent.config import Settings


def bug(data, n: int, files: dict[str, bytes]) -> None:
    d = data / "projects" / "tqdm" / "bugs" / str(n)
    d.mkdir(parents=True)
    for name, content in files.items():
        (d / name).write_bytes(content)


def test_a_bug_that_cannot_be_read_is_a_task_that_says_why_and_a_utf16_one_loads(tmp_path):
    data = tmp_path / "BugsInPy"
    info = b'python_version="3.6.9"\nbuggy_commit_id="abc"\nfixed_commit_id="def"\ntest_file="tqdm/tests/t.py"\n'
    bug(data, 1, {"bug.info": info, "run_test.sh": b"pytest tqdm/tests/t.py::test_a\n",
                  "requirements.txt": codecs.BOM_UTF16_LE + "six==1.15.0\npytest==3.0\n".encode("utf-16-le")})
    bug(data, 2, {"run_test.sh": b"pytest tqdm/tests/t.py::test_b\n"})
    (data / "projects/tqdm/bugs/2/bug.info").mkdir()  # a folder where a file should be: unreadable
    one, two = load_bugsinpy(data, tmp_path / "repos", projects=["tqdm"])
    assert one.meta.get("load_error") is None and one.failing_tests == ["tqdm/tests/t.py::test_a"]
    assert one.meta["deps"] == ["six==1.15.0"]  # read through its byte-order mark
    assert two.task_id == "tqdm-2" and two.meta["load_error"].startswith(
        f"tqdm-2 could not be loaded from {data / 'projects/tqdm/bugs/2'}: IsADirectoryError")


def test_a_repos_line_that_is_not_a_task_is_that_tasks_error_and_the_next_one_runs(tmp_path, docker_ready):
    src = tmp_path / "plain"
    src.mkdir()
    (src / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (src / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    data = tmp_path / "repos.jsonl"
    data.write_text('{"task_id": "cut", "repo": \n'  # cut short
                    + json.dumps({"task_id": "no-repo", "test_command": "test_calc.py"}) + "\n"
                    + json.dumps({"task_id": "plain", "repo": "plain", "test_command": "test_calc.py"}) + "\n")
    tasks = load_repos(data)
    assert [t.task_id for t in tasks] == ["line-1", "no-repo", "plain"]
    lines: list[str] = []
    summary = run_benchmark(tasks, Settings(sandbox="docker", test_timeout_s=60, strategies="mutate"),
                            tmp_path / "out", log=lines.append)
    cut, no_repo, plain = [json.loads(x) for x in (tmp_path / "out/records.jsonl").read_text().splitlines()]
    assert cut["status"] == "error" and f"{data}:1: not JSON" in cut["error"] and "\n" not in cut["error"]
    assert no_repo["status"] == "error" and "KeyError: 'repo'" in no_repo["error"]
    assert any(ln.startswith("[") and "no-repo: error: LoadError" in ln for ln in lines)
    assert plain["verified"] is True and "a + b" in plain["patch"]
    assert summary["tasks"] == 3 and summary["fixed"] == 1
