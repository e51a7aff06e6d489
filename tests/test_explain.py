"""`repair-agent explain`: ranked locations, a real trace, and the model's simulation checked
against it. The monologue comes from a SCRIPTED server so that its claims are known."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import tree_hash
from scripted_server import ScriptedServer, answer

CODE = "def second(items):\n    return items[1]\n"


@pytest.mark.parametrize("claimed, contradicted", [("6", 0), ("4", 1)])
def test_explain_checks_the_simulation_against_the_trace(claimed, contradicted, make_repo, tmp_path,
                                                         docker_ready):
    repo = make_repo("wrong_index")
    before = tree_hash(repo)
    out = tmp_path / "diag.json"
    reply = answer(CODE, "It reads index 2.", simulation=f"`second([4, 5, 6])` returns {claimed}.")
    with ScriptedServer([[reply]]) as srv:
        proc = subprocess.run([sys.executable, "-m", "repair_agent", "explain", str(repo), "--base-url",
                               srv.base_url, "--sandbox", "docker", "--json", str(out), "--run-dir",
                               str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    diag = json.loads(out.read_text())
    assert diag["locations"][0]["file"] == "mylist/core.py" and diag["locations"][0]["function"] == "second"
    returns = [s for s in diag["trace"] if s["event"] == "return" and s["file"] == "mylist/core.py"]
    assert returns, diag["trace"]
    assert diag["root_cause"] == "It reads index 2."
    assert diag["faithfulness"]["checked"] >= 1 and diag["faithfulness"]["contradicted"] == contradicted
    assert tree_hash(repo) == before
    assert "faithfulness" in proc.stdout


def test_explain_shows_the_real_trace_of_a_package_function(make_repo, tmp_path, docker_ready):
    """Issue 20: the panel and the JSON once lost the function's name, its return value and the
    test's outcome (`call None(...)`, `return None`, `test None`)."""
    repo = make_repo("clock")
    out = tmp_path / "diag.json"
    reply = answer("def to_minutes(text):\n    return 0\n", "It subtracts the minutes.",
                   simulation="`hours = 1` and `minutes = 30`, so `to_minutes('1:30')` returns 30.")
    with ScriptedServer([[reply]]) as srv:
        proc = subprocess.run([sys.executable, "-m", "repair_agent", "explain", str(repo), "--base-url",
                               srv.base_url, "--sandbox", "docker", "--json", str(out), "--run-dir",
                               str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    trace = json.loads(out.read_text())["trace"]
    call, ret, test = trace[0], [s for s in trace if s["event"] == "return"][-1], trace[-1]
    assert (call["function"], call["locals"]) == ("to_minutes", {"text": "'1:30'"})
    assert (ret["function"], ret["value"], ret["line"]) == ("to_minutes", "30", 9)
    assert (test["event"], test["outcome"]) == ("test", "failed") and "assert 30 == 90" in test["message"]
    assert "call to_minutes(text='1:30')" in proc.stdout and "L9: return 30" in proc.stdout
    assert "None" not in proc.stdout.split("execution trace")[1].split("root cause")[0]
    assert "(score 1.0)" in proc.stdout  # hours, minutes and the return: all checked, none contradicted
    assert "round 0" not in proc.stdout + proc.stderr  # that line belongs to `fix`
