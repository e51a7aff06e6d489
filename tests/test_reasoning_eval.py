"""Execution reasoning, measured (repair_agent/eval/reasoning.py): the answers' parser, the choice of
items, and the scoring by running, on a small repository of the test's own, in the Docker sandbox,
with crafted answers (one right, one wrong, per item and task; answers that are right only if
evaluated) and with a real model's answers (the embedded Qwen2.5-Coder-0.5B)."""

from __future__ import annotations

import ast
import json
import random

import pytest
from model_server import llama_server, requires_llama_cpp, running_server, smollm_gguf  # noqa: F401  (fixtures)

from repair_agent.errors import BadInput
from repair_agent.eval import reasoning
from repair_agent.eval.reasoning import Repository, parse_answer, select, shuffled

CALC = '''import os


def add(a, b):
    return a + b


def initials(name):
    return "".join(word[0].upper() for word in name.split())


def evens(n):
    return [i for i in range(n) if i % 2 == 0]


def pair(x):
    return (x, -x)


def countdown(n):
    while n > 0:
        yield n
        n -= 1


"""A module's trailing description: never shown to the model."""
'''
TEST_CALC = '''from calc import add, countdown, evens, initials, pair


def test_add():
    assert add(2, 3) == 5
    assert add("ab", "c") == "abc"


def test_initials():
    assert initials("ada lovelace") == "AL"


def test_evens():
    assert evens(7) == [0, 2, 4, 6]


def test_pair():
    assert pair(4) == (4, -4)


def test_countdown():
    assert list(countdown(3)) == [3, 2, 1]
'''
HALT = '''import os


def halt(n):
    if n < 0:
        os._exit(3)  # the process ends at once, as a crash in C code would end it
    return n
'''
TEST_HALT = '''from halt import halt


def test_halt():
    assert halt(2) == 2
'''


def calc_repo(with_halt: bool = False) -> Repository:
    files = {"calc.py": CALC, "test_calc.py": TEST_CALC}
    if with_halt:
        files.update({"halt.py": HALT, "test_halt.py": TEST_HALT})
    return Repository("calc", files, list(f for f in files if f.startswith("test_")),
                      ["calc.py", "halt.py"] if with_halt else ["calc.py"], "the test's own")


# -- the parser ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("[ANSWER]\n2\n[/ANSWER]", {"literal": "2"}),
    ("[ANSWER]\nassert gcd(4, 6) == 2\n", {"literal": "2"}),  # CRUXEval's form
    ("```python\nassert gcd(4, 6) == (2, [1, 'a'])\n```", {"literal": "(2, [1, 'a'])"}),
    ("Let me think.\n[ANSWER] {'a': 1} [/ANSWER] 3", {"literal": "{'a': 1}"}),
    ("The value is:\n-3", {"literal": "-3"}),
    ("[ANSWER]\nVALUE\n", {"literal": "VALUE"}),  # read; the sandbox rejects it
    ("It returns two.", {"error": "no value in the answer"}),
    ("assert gcd(4, 6) != 2", {"error": "no value in the answer"}),
])
def test_output_answers_are_read_into_the_value_source(text, expected):
    assert parse_answer(text, "gcd", "output") == expected


@pytest.mark.parametrize("text,expected", [
    ("[ANSWER]\ngcd(4, 6)\n[/ANSWER]", {"args": ["4", "6"], "kwargs": {}}),
    ("[ANSWER]\nassert gcd(4, 6) == 2\n[/ANSWER]", {"args": ["4", "6"], "kwargs": {}}),
    ("```\nassert gcd([1, 2], b='x y') == 2\n```", {"args": ["[1, 2]"], "kwargs": {"b": "'x y'"}}),
    ("gcd(12, 18)", {"args": ["12", "18"], "kwargs": {}}),
    ("[ANSWER]\n[4, 6]\n[/ANSWER]", {"error": "no call of gcd in the answer"}),
    ("assert lcm(4, 6) == 12", {"error": "the assertion does not call gcd"}),
    ("assert gcd(*[4, 6]) == 2", {"error": "starred arguments"}),
    ("gcd(4, 6) [/ANSWER] gcd(1, 1)", {"args": ["4", "6"], "kwargs": {}}),
    ("no idea", {"error": "no call of gcd in the answer"}),
])
def test_input_answers_are_read_into_argument_sources(text, expected):
    assert parse_answer(text, "gcd", "input") == expected


def test_the_first_line_that_parses_is_the_answer():
    text = "assert gcd(4, 6 == 2\nassert gcd(4, 6) == 2\nassert gcd(4, 6) == 3"
    assert parse_answer(text, "gcd", "output") == {"literal": "2"}
    assert parse_answer("gcd(4,\ngcd(2, 6)\ngcd(1, 1)", "gcd", "input") == {"args": ["2", "6"], "kwargs": {}}


# -- the choice of items ---------------------------------------------------------------------------
def test_the_seed_order_does_not_depend_on_the_order_the_calls_came_in():
    keys = [f"call {i}" for i in range(30)]
    mixed = keys[::-1]
    random.Random(5).shuffle(mixed)
    assert shuffled(keys, 0, "f") == shuffled(mixed, 0, "f")
    assert sorted(shuffled(keys, 0, "f")) == sorted(keys)
    assert shuffled(keys, 0, "f") != shuffled(keys, 1, "f")  # another seed, another order
    assert shuffled(keys, 0, "f") != shuffled(keys, 0, "g")  # and each function its own


def test_select_caps_per_function_then_per_repository_by_the_seed():
    usable = {f"f{n}": [f"f{n}:{k}" for k in range(n)] for n in range(1, 7)}  # f1 has 1 call ... f6 has 6
    picked = select(usable, per_function=2, limit=None, seed=0)
    assert picked == [(fn, key) for fn in usable for key in usable[fn][:2]]  # the first two, in seed order
    assert len(picked) == 11
    limited = select(usable, per_function=2, limit=5, seed=0)
    assert len(limited) == 5 and set(limited) <= set(picked)
    assert limited == [p for p in picked if p in limited]  # kept in function order
    assert limited == select(usable, per_function=2, limit=5, seed=0)
    assert any(select(usable, per_function=2, limit=5, seed=s) != limited for s in range(1, 5))


def test_the_model_reads_the_function_and_its_imports_not_the_rest_of_the_module():
    code = reasoning.shown_code(CALC, "evens")
    assert code == "import os\n\ndef evens(n):\n    return [i for i in range(n) if i % 2 == 0]"
    targets = reasoning.targets_of(calc_repo())
    assert [t["qualname"] for t in targets] == ["add", "initials", "evens", "pair", "countdown"]


def test_quixbugs_is_the_correct_programs_and_their_tests():
    from repair_agent.bench.datasets import _quixbugs_raw

    repo = reasoning.repository("quixbugs")
    raw = {r["buggy_path"]: r for r in _quixbugs_raw()}
    assert len(repo.sources) == 40 and set(repo.sources) == set(raw)
    assert all(repo.files[path] == raw[path]["fixed_source"] for path in repo.sources)
    assert not any(r["buggy_source"] in repo.files.values() for r in raw.values() if r["buggy_source"] != r["fixed_source"])
    assert set(repo.test_args) == {r["test_path"] for r in raw.values()}
    with pytest.raises(BadInput, match="unknown repository 'nope'"):
        reasoning.repository("nope")


def test_scores_count_each_task_apart():
    def item(repo, out, inp):
        return {"repository": repo, "output_prediction": {"verdict": {"correct": out}},
                "input_prediction": {"verdict": {"correct": inp}}}

    s = reasoning.scores([item("a", True, False), item("a", True, True), item("b", False, False)])
    assert s["output"] == {"correct": 2, "items": 3, "score": 66.7}
    assert s["input"] == {"correct": 1, "items": 3, "score": 33.3}
    assert s["a"]["input"] == {"correct": 1, "items": 2, "score": 50.0}
    assert s["b"]["output"]["score"] == 0.0


# -- scoring by running, in the sandbox -------------------------------------------------------------
def wrong_value(text: str) -> str:
    value = ast.literal_eval(text)
    return repr([value]) if not isinstance(value, list) else repr(tuple(value))  # close, but not equal


def verdicts(items, task):
    return [it[reasoning.TASKS[task]]["verdict"]["correct"] for it in items]


@pytest.mark.slow
def test_right_and_wrong_answers_are_scored_by_running_in_the_sandbox(docker_ready):
    repo = calc_repo(with_halt=True)
    with reasoning.sandboxed(repo) as box:
        items, recorded = reasoning.collect(repo, box, seed=0, per_function=1, limit=None, log=lambda m: None)
        # the recorded calls of passing tests, their values as the test's own functions give them
        # (a generator is not a literal: countdown has no item)
        assert [it["function"] for it in items] == ["add", "initials", "evens", "pair", "halt"]
        assert recorded["functions"] == 6 and recorded["functions_called"] == 6
        shown = {it["function"]: (it["input"], it["output"]) for it in items}
        assert shown["initials"] == ("'ada lovelace'", "'AL'") and shown["evens"] == ("7", "[0, 2, 4, 6]")
        assert shown["pair"] == ("4", "(4, -4)") and shown["add"] in {("2, 3", "5"), ("'ab', 'c'", "'abc'")}
        right = [dict(it) for it in items]
        wrong = [dict(it) for it in items]
        for it in right:
            it["output_prediction"] = {"parsed": {"literal": it["output"]}}
            it["input_prediction"] = {"parsed": parse_answer(f"assert {it['function']}({it['input']}) == 0",
                                                             it["function"], "input")}
        other_input = {"add": "[1], [2]", "initials": "'bo'", "evens": "3", "pair": "-4", "halt": "-1"}
        for it in wrong:
            it["output_prediction"] = {"parsed": {"literal": wrong_value(it["output"])}}
            it["input_prediction"] = {"parsed": parse_answer(f"{it['function']}({other_input[it['function']]})",
                                                             it["function"], "input")}
        wrong[1]["output_prediction"] = {"parsed": {"literal": "__import__('os').getcwd()"}}  # not a literal
        # right only if evaluated: an expression is no literal, whatever its value would be
        evaluated = dict(items[2])
        evaluated["output_prediction"] = {"parsed": parse_answer("[ANSWER]\nlist(range(0, 7, 2))\n[/ANSWER]",
                                                                 "evens", "output")}
        evaluated["input_prediction"] = {"parsed": parse_answer("evens(len('abcdefg'))", "evens", "input")}
        reasoning.score(box, wrong + right + [evaluated])  # halt(-1) ends a run: the checks after it go on
    assert verdicts(right, "output") == [True] * 5 and verdicts(right, "input") == [True] * 5
    assert verdicts(wrong, "output") == [False] * 5 and verdicts(wrong, "input") == [False] * 5
    assert verdicts([evaluated], "output") == verdicts([evaluated], "input") == [False]
    assert evaluated["output_prediction"]["verdict"]["why"] == "not a Python literal: ValueError"
    assert evaluated["input_prediction"]["verdict"]["why"] == "not a Python literal: ValueError"
    why = {it["function"]: (it["output_prediction"]["verdict"]["why"], it["input_prediction"]["verdict"]["why"])
           for it in wrong}
    assert why["initials"][0] == "not a Python literal: ValueError"
    assert why["evens"] == ("(0, 2, 4, 6) is not the value the call returned", "the function returns [0, 2] on that input")
    assert why["pair"][1] == "the function returns (-4, 4) on that input"
    assert why["halt"][1].startswith("the run ended here (exit code 3)")
    assert why["add"][1] == "the function returns [1, 2] on that input"


@pytest.mark.slow
def test_collect_caps_items_per_function_and_per_repository_by_the_seed(docker_ready):
    repo = calc_repo()
    quiet = lambda m: None  # noqa: E731
    with reasoning.sandboxed(repo) as box:
        both = reasoning.collect(repo, box, seed=0, per_function=2, limit=None, log=quiet)[0]
        capped = [reasoning.collect(repo, box, seed=0, per_function=1, limit=2, log=quiet)[0] for _ in range(2)]
        others = [reasoning.collect(repo, box, seed=s, per_function=1, limit=2, log=quiet)[0] for s in (1, 2, 3)]
    # add is the one function its tests call twice: both calls are items with two per function
    assert [it["function"] for it in both] == ["add", "add", "initials", "evens", "pair"]
    assert {it["input"] for it in both if it["function"] == "add"} == {"2, 3", "'ab', 'c'"}
    shown = [[(it["function"], it["input"]) for it in items] for items in capped + others]
    assert len(shown[0]) == 2 and len({f for f, _ in shown[0]}) == 2
    assert shown[0] == shown[1]  # the same seed, the same items
    assert any(s != shown[0] for s in shown[2:])  # another seed, others
    assert all(set(s) <= {(it["function"], it["input"]) for it in both} for s in shown)


def recheck(box, items) -> list[bool]:
    """Each input-prediction answer run again in the sandbox, apart from reasoning_runner.py: does
    the function return the expected value (the same type, ==)?"""
    rows = [[it["function"], it["input_prediction"]["parsed"], it["output"]] for it in items]
    (box.workdir / "recheck.json").write_text(json.dumps(rows))
    script = ("import ast, json, calc\n"
              "out = []\n"
              "for name, parsed, expected in json.load(open('recheck.json')):\n"
              "    try:\n"
              "        got = getattr(calc, name)(*map(ast.literal_eval, parsed['args']),\n"
              "                                  **{k: ast.literal_eval(v) for k, v in parsed['kwargs'].items()})\n"
              "        want = ast.literal_eval(expected)\n"
              "        out.append(type(got) is type(want) and got == want)\n"
              "    except Exception:\n"
              "        out.append(False)\n"
              "print('@@RECHECK', json.dumps(out))\n")
    rc, text = box.run([box.python, "-c", script], timeout=60)
    return json.loads(text.split("@@RECHECK", 1)[1])


def same_literal(answer: str, expected: str) -> bool:
    try:
        got, want = ast.literal_eval(answer), ast.literal_eval(expected)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return type(got) is type(want) and got == want


QWEN = "qwen2.5-coder-0.5b"  # the embedded default


@pytest.fixture(scope="module")
def qwen_server():
    """The embedded default model served by llama.cpp on loopback, as `fix` serves it."""
    with running_server(QWEN, n_ctx=4096) as handle:
        yield handle


@requires_llama_cpp
@pytest.mark.model
@pytest.mark.slow
def test_a_real_models_answers_are_scored_by_running(docker_ready, qwen_server):
    from repair_agent.llm.client import OpenAIModel

    model = OpenAIModel(qwen_server.base_url, batch_n=False)
    result = reasoning.evaluate(model, [calc_repo()], seed=0, per_function=1)
    items = result["items"]
    assert [it["function"] for it in items] == ["add", "initials", "evens", "pair"]
    assert result["model"] == QWEN and result["profile"] == "qwen2.5-coder" and result["code"]
    for it in items:
        for key in reasoning.TASKS.values():
            assert it[key]["answer"] and it[key]["prompt"].count(it["code"]) == 1
            assert "trailing description" not in it[key]["prompt"]
    # output prediction: the model's value against the recorded one, read here without running anything
    expected = [("literal" in it["output_prediction"]["parsed"]
                 and same_literal(it["output_prediction"]["parsed"]["literal"], it["output"])) for it in items]
    assert verdicts(items, "output") == expected
    # input prediction: the model's arguments run again in a fresh sandbox, by other code
    parsed = [it for it in items if "args" in it["input_prediction"]["parsed"]]
    with reasoning.sandboxed(calc_repo()) as box:
        again = recheck(box, parsed)
    assert [it["input_prediction"]["verdict"]["correct"] for it in parsed] == again
    assert not any(it["input_prediction"]["verdict"]["correct"] for it in items if it not in parsed)
    assert parsed and any("literal" in it["output_prediction"]["parsed"] for it in items)  # it answered
    s = result["scores"]
    assert s["output"]["correct"] == sum(expected) and s["input"]["correct"] == sum(again)
    assert s["output"]["items"] == s["input"]["items"] == 4


@pytest.mark.model
@pytest.mark.slow
def test_eval_reasoning_on_quixbugs_from_the_command_line(docker_ready, llama_server, tmp_path):
    from typer.testing import CliRunner

    from repair_agent.bench.datasets import _quixbugs_raw
    from repair_agent.cli import app

    out = tmp_path / "reasoning.json"
    run = CliRunner().invoke(app, ["eval", "reasoning", "--base-url", llama_server.base_url, "--repos", "quixbugs",
                                   "--limit", "3", "--json", str(out)])
    assert run.exit_code == 0, run.output
    result = json.loads(out.read_text())
    items = result["items"]
    assert len(items) == 3 and result["repositories"]["quixbugs"]["functions"] == 42
    assert f"output prediction {result['scores']['output']['score']}%" in " ".join(run.output.split())
    fixed = {r["id"]: r for r in _quixbugs_raw()}
    for it in items:
        rec = fixed[it["function"]]
        assert it["code"].split("\n\n")[-1] in rec["fixed_source"]  # the correct program's function, alone
        if rec["json_testcases"]:  # the recorded call is one of the program's own test cases
            cases = [json.loads(line) for line in rec["json_testcases"].splitlines() if line.strip()]
            args, value = ast.literal_eval(f"[{it['input']}]"), ast.literal_eval(it["output"])
            assert args in [a for a, _ in cases]
            if isinstance(value, (int, str)):  # what JSON writes as Python would
                assert [args, value] in cases
