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


# -- `fix`: a search fix's explanation, built on the evidence and checked --------------------------
ECHO = ("[MONOLOGUE]\n### Execution Simulation\nUnder Execution Simulation, write the values of the variables at "
        "the changed line before the fix.\n\n### Root Cause Analysis\nUnder Root Cause Analysis, say in your own "
        "words why `items[2]` was wrong and what the fix computes instead.\n")
TRUE = ("[MONOLOGUE]\n### Execution Simulation\n`second([4, 5, 6])` returns 6.\n\n### Root Cause Analysis\n"
        "`items[2]` reads the third element; `items[1]` is the second.\n")


@pytest.mark.parametrize("second_answer", [ECHO, TRUE])
def test_an_echo_of_the_prompt_is_asked_again_then_set_aside_scripted_server(second_answer, make_repo, tmp_path,
                                                                             docker_ready):
    """SCRIPTED server (a real model cannot be made to echo the prompt on demand): the first answer
    repeats the template's instruction; the model is asked once more with that stated; a second echo
    is set aside for the evidence, with a note, a true second answer is kept."""
    repo = make_repo("wrong_index")
    out = tmp_path / "result.json"
    with ScriptedServer([[ECHO], [second_answer]]) as srv:
        proc = subprocess.run([sys.executable, "-m", "repair_agent", "fix", str(repo), "--strategies",
                               "mutate,refine", "--base-url", srv.base_url, "--sandbox", "docker", "--json", str(out),
                               "--run-dir", str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
        asked = [r["body"]["messages"] for r in srv.requests]
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert len(asked) == 2 and "you repeated the prompt's words" in asked[1][-1]["content"]
    assert asked[1][-2] == {"role": "assistant", "content": ECHO}
    ev = result["evidence"]
    assert (ev["input"], ev["computed_before"], ev["computed_after"]) == (
        "second(items=[4, 5, 6])", "returned 6", "returned 5")
    assert "input: second(items=[4, 5, 6])" in proc.stdout and "evidence (read from the traces)" in proc.stdout
    explained = result["explanation"]
    assert explained["attempts"] == 2 and explained["names_change"]
    assert explained["problems"][0] == ["you repeated the prompt's words \"Under Execution Simulation, write the "
                                        "values of the variables at the changed line before the fix.\" instead of "
                                        "answering"]
    if second_answer is ECHO:
        assert explained["replaced"] and result["faithfulness"] < 1
        assert result["root_cause"].startswith("`items[2]` at mylist/core.py:10 was wrong: for second(items=[4, 5, "
                                               "6]), the line returned 6; with `items[1]`, the line returned 5")
        assert "the model's explanation was set aside: it repeated the prompt's words" in result["root_cause"]
    else:
        assert not explained["replaced"] and result["faithfulness"] == 1.0 and explained["problems"][1] == []
        assert result["root_cause"] == "`items[2]` reads the third element; `items[1]` is the second."
        assert explained["check"]["checked"] >= 3 and explained["check"]["contradicted"] == 0


@pytest.mark.model
def test_a_search_fix_has_its_evidence_and_a_faithfulness_result_real_model(make_repo, tmp_path, docker_ready):
    """A REAL model (SmolLM2 on llama.cpp) explains a fix the mutation search found: whatever it
    says, fix --json carries the evidence and the check of its words (it was `null` for search fixes)."""
    from model_server import running_server

    repo = make_repo("wrong_index")
    out = tmp_path / "result.json"
    with running_server(n_ctx=8192) as server:
        proc = subprocess.run([sys.executable, "-m", "repair_agent", "fix", str(repo), "--strategies",
                               "mutate,refine", "--base-url", server.base_url, "--sandbox", "docker", "--json",
                               str(out), "--run-dir", str(tmp_path / "runs")], capture_output=True, text=True,
                              timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["source"] == "mutate" and result["tokens"]["completion"] > 0
    assert isinstance(result["faithfulness"], float) and 0 <= result["faithfulness"] <= 1
    check = result["explanation"]["check"]
    assert check["checked"] >= 1 and result["faithfulness"] == check["score"]
    assert result["evidence"]["changed_before"] == "items[2]" and result["evidence"]["expected"] == "5"
    # kept only when nothing in it was found false; otherwise, after a second answer, written from the evidence
    if result["explanation"]["replaced"]:
        assert result["explanation"]["attempts"] == 2 and result["explanation"]["problems"]
        assert result["root_cause"].startswith("`items[2]` at mylist/core.py:10 was wrong")
    else:
        assert check["contradicted"] == 0 and check["alien"] == [] and not check["echo"]
