"""Correctness against the human fix on real code: the changed functions of the patched program and
of the human-fixed one run, in the real Docker sandbox, on the arguments the project's tests passed
them and on inputs generated from those (bench/correctness.against_human_fix)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from helpers import fixture_repo, tree_hash
from repair_agent.bench.correctness import against_human_fix, compared
from repair_agent.sandbox import open_sandbox

PRICING = "shop/pricing.py"


def sandbox_tool():
    """call_runner.py, imported here: it runs inside the sandbox, but its values need no Docker."""
    tools = Path(__file__).resolve().parents[1] / "repair_agent" / "sandbox" / "tools"
    sys.path.insert(0, str(tools))
    try:
        import call_runner
    finally:
        sys.path.pop(0)
    return call_runner
BUGGY = "    return price - price * percent / 10\n"
HUMAN = "    return price - price * percent / 100\n"
WRONG = "    return price - price * percent // 100\n"  # passes every test of the project: whole prices there
REWRITE = "    return price * (100 - percent) / 100\n"  # the same function, written otherwise


@pytest.fixture
def shop(tmp_path):
    """The two_module fixture (shop/cart.py calls shop/pricing.py's buggy apply_discount), and a
    sandbox on it; the tree is as it was afterwards."""
    repo = fixture_repo("two_module", tmp_path / "repo")
    before = tree_hash(repo)
    box = open_sandbox("docker", repo, log=lambda m: None)
    yield repo, box
    box.close()
    assert tree_hash(repo) == before


def judged(repo, box, line: str) -> dict:
    text = (repo / PRICING).read_text()
    assert BUGGY in text
    return against_human_fix(box, repo, {PRICING: text.replace(BUGGY, HUMAN)}, {PRICING: text.replace(BUGGY, line)},
                             ["tests"])


def test_a_wrong_patch_is_wrong_with_its_input_and_a_rewrite_is_correct(shop, docker_ready):
    repo, box = shop
    wrong = judged(repo, box, WRONG)
    assert wrong["correct"] is False, wrong["correct_reason"]
    diff = wrong["first_difference"]
    price, percent = diff["input"]["args"]
    assert diff["patched"]["value"] == price - price * percent // 100  # what the patch computes there ...
    assert not math.isclose(diff["reference"]["value"], price - price * percent // 100)  # ... is not the fix's
    assert math.isclose(diff["reference"]["value"], price - price * percent / 100)
    assert diff["text"].startswith(f"apply_discount({price}, {percent}): the human fix returns ")
    assert wrong["correct_reason"].startswith("differs from the human fix on ")

    right = judged(repo, box, REWRITE)
    assert right["correct"] is True, right["correct_reason"]
    counts = right["correct_inputs"]
    assert counts["seen"] >= 3 and counts["generated"] > 50  # the tests' calls through cart.total, and more
    assert f"{counts['seen']} of the tests' inputs and {counts['generated']} generated ones" \
        in right["correct_reason"]


def test_the_same_function_on_both_sides_needs_a_changed_function(shop, docker_ready):
    repo, box = shop
    text = (repo / PRICING).read_text()
    res = against_human_fix(box, repo, {PRICING: text + "\nRATE = 100\n"}, {PRICING: text + "\nRATE = 10\n"},
                            ["tests"])
    assert res["correct"] == "unknown" and "changes a function" in res["correct_reason"]


def test_compared_skips_what_the_human_fix_rejects_and_stops_at_the_first_difference():
    inputs = [{"source": "seen", "call": {"args": [1]}}, {"source": "generated", "call": {"args": [2]}},
              {"source": "generated", "call": {"args": [3]}}, {"source": "generated", "call": {"args": [4]}},
              {"source": "generated", "call": {"args": [5]}}]
    vote = {"labels": ["00", "01", "0-", "01", "01"], "kinds": ["oo", "ro", "o-", "oo", "oo"], "slow": [],
            "details": [{"i": 1, "outcomes": [{"kind": "raise", "type": "ValueError"}, {"kind": "ok", "value": 0}]},
                        ], "cut": [False, True]}
    res, first = compared(vote, inputs)
    assert first == 3 and res["first_difference"]["input"] == {"args": [4]}
    assert (res["seen"], res["generated"], res["skipped"], res["budget_exhausted"]) == (1, 1, 1, True)
    assert res["first_difference"]["patched"]["kind"] == "ok"  # not kept by vote: its kind still is


def test_calls_on_objects_that_cannot_be_generated_keep_them_and_vary_the_rest():
    """A method's `self` and a file (objects of two classes: no graph to generate) are kept from a
    recorded call; the plain arguments are drawn anew, in the domain the tests showed."""
    from repair_agent.judge.differential import generate

    def call(total, unit):
        objects = [{"type": "tqdm", "attrs": {"fp": {"$obj": 1}}}, {"type": "StringIO", "attrs": {}}]
        return {"args": [{"$obj": 0}, total], "kwargs": {"unit": unit}, "objects": objects}

    seen = [call(10, "it"), call(100, "B"), call(3, "it"), call(50, "B")]
    assert generate(seen, 50)[0] == []  # as before, unless asked
    assert "StringIO, tqdm" in generate(seen, 50)[1]
    made, why = generate(seen, 50, keep_objects=True)
    assert why == "" and len(made) > 20
    assert all(m["objects"] == seen[0]["objects"] and m["args"][0] == {"$obj": 0} for m in made)
    assert all(isinstance(m["args"][1], int) and m["args"][1] > 0 and m["kwargs"]["unit"] in ("it", "B")
               for m in made)
    assert len({m["args"][1] for m in made}) > 10
    only_objects = [{"args": [{"$obj": 0}], "kwargs": {}, "objects": c["objects"]} for c in seen]
    assert "every argument refers to objects" in generate(only_objects, 50, keep_objects=True)[1]


BAR = "meter/bar.py"
BAR_BUGGY = "        return min(k, self.total - self.n - 1)\n"
BAR_HUMAN = "        return min(k, self.total - self.n)\n"
BAR_WRONG = "        return k if k < 5 else self.total - self.n\n"  # passes both asserts: 2 and 20 steps
BAR_REWRITE = "        return k if k <= self.total - self.n else self.total - self.n\n"


def bar_project(root):
    """A method whose `self` holds a callback: the recording can only describe the function."""
    (root / "meter").mkdir(parents=True)
    (root / "meter" / "__init__.py").write_text("")
    (root / BAR).write_text(
        "class Bar:\n"
        "    def __init__(self, total, printer=print):\n"
        "        self.total, self.printer, self.n = total, printer, 0\n\n"
        "    def ahead(self, k):\n"
        '        """How many of `k` more steps fit before the end."""\n'
        + BAR_BUGGY +
        "\n    def show(self):\n"
        "        self.printer(f'{self.n}/{self.total}')\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_bar.py").write_text(
        "from meter.bar import Bar\n\n\n"
        "def test_ahead():\n"
        "    bar = Bar(10, printer=lambda text: None)\n"
        "    bar.n = 3\n"
        "    assert bar.ahead(2) == 2\n"
        "    assert bar.ahead(20) == 7\n")
    return root


def test_a_method_whose_self_holds_a_function_is_replayed_and_judged(tmp_path, docker_ready):
    """`self.printer` travels as text; `ahead` never touches it, so the tests' calls replay (they
    were dropped before, and every such patch was `unknown`) and the inputs varied from them judge."""
    repo = bar_project(tmp_path / "repo")
    text = (repo / BAR).read_text()
    box = open_sandbox("docker", repo, log=lambda m: None)
    try:
        def judged(line):
            return against_human_fix(box, repo, {BAR: text.replace(BAR_BUGGY, BAR_HUMAN)},
                                     {BAR: text.replace(BAR_BUGGY, line)}, ["tests"])

        wrong = judged(BAR_WRONG)
        assert wrong["correct"] is False, wrong["correct_reason"]
        k = wrong["first_difference"]["input"]["args"][1]
        assert 5 <= k < 7 and wrong["first_difference"]["patched"]["value"] == 7
        right = judged(BAR_REWRITE)
        assert right["correct"] is True, right["correct_reason"]
        assert right["correct_inputs"]["seen"] == 2 and right["correct_inputs"]["generated"] > 20
    finally:
        box.close()


def test_a_call_that_touches_what_the_recording_only_described_is_unreplayable():
    """A lambda travels as text and comes back as a stand-in that raises on any use, past `hasattr`
    and `except Exception`: the call's outcome is `unreplayable`, and `compared` skips that input. A
    function or class the module gives back by name travels as that name and comes back itself."""
    call_runner = sandbox_tool()

    class Bar:
        def __init__(self):
            self.total, self.printer, self.sink, self.kind = 10, lambda text: None, print, math.floor

    inp = json.loads(json.dumps(call_runner.encode_call([Bar()], {})))
    attrs = inp["objects"][0]["attrs"]
    assert attrs["printer"]["$repr"].startswith("<function ")
    assert (attrs["sink"], attrs["kind"]) == ({"$ref": "builtins:print"}, {"$ref": "math:floor"})

    def guarded(bar):
        try:
            return hasattr(bar.printer, "write")
        except Exception:
            return "caught"

    run = lambda fn: call_runner.run_call(fn, inp, 1.0, resolve=lambda name: Bar, after=True)  # noqa: E731
    assert run(lambda bar: bar.total * 2)["value"] == 20
    assert run(lambda bar: bar.kind(2.5))["value"] == 2  # math.floor itself
    assert run(lambda bar: bar.printer is None)["value"] is False  # identity is the real value's
    for touch in (lambda bar: bar.printer("x"), lambda bar: bool(bar.printer), guarded,
                  lambda bar: str(bar.printer), lambda bar: {bar.printer}):
        assert run(touch)["kind"] == "unreplayable"
    after = run(lambda bar: bar.total)["after"]
    assert after["objects"][0]["attrs"] == attrs

    vote = {"labels": ["00", "00", "01"], "kinds": ["ou", "uo", "oo"], "slow": [], "details": [], "cut": [False]}
    inputs = [{"source": "seen", "call": {"args": [i]}} for i in range(3)]
    res, first = compared(vote, inputs)
    assert (res["seen"], res["skipped"], first) == (1, 2, 2)


class Registered:
    """Instances register themselves in __new__, as tqdm's do; __init__ may take itself out."""
    live: set = set()

    def __new__(cls, *args, **kwargs):
        instance = object.__new__(cls)
        cls.live.add(instance)
        return instance

    def __init__(self, items, quiet=False):
        if quiet:
            self.live.remove(self)
            self.total = len(items)


def test_a_recorded_self_is_rebuilt_by_its_class_own_new():
    """A replayed `__init__` gets a `self` made as the class makes one (registered), so it runs the
    code under test instead of failing on the rebuilt object (every tqdm-5 input raised KeyError)."""
    call_runner = sandbox_tool()
    inp = json.loads(json.dumps(call_runner.encode_call([object.__new__(Registered), [1, 2, 3]], {"quiet": True})))
    out = call_runner.run_call(Registered.__init__, inp, 1.0, resolve=lambda name: Registered, after=True)
    assert out["kind"] == "ok", out
    assert out["after"]["objects"][0] == {"type": "Registered", "module": __name__, "attrs": {"total": 3}}


def test_recording_a_call_leaves_its_generators_to_the_program():
    """The arguments are written down before the call runs. A generator passed in is split: the
    record holds its items and the program still reads them all. One held by `self` is described,
    not read (reading it used up thefuck's commands before `_realise` could sort them)."""
    call_runner = sandbox_tool()

    class Sequence:
        def __init__(self):
            self.commands = (c for c in "abc")

    seq = Sequence()
    text, args, kwargs = call_runner.recorded((seq, (n for n in range(3))), {"rest": iter([7])})
    assert '"args": [{"$obj": 0}, [0, 1, 2]]' in text and '"rest": [7]' in text
    assert '"commands": {"$repr": "<generator object ' in text
    assert list(args[1]) == [0, 1, 2] and list(kwargs["rest"]) == [7] and args[0] is seq
    assert list(seq.commands) == ["a", "b", "c"]


def test_a_difference_in_what_the_call_left_behind_is_said():
    """Two `__init__`s that both return None differ in the object they leave: the first difference
    says where (`#0.pos`), and a long input does not push the outcomes out of the text."""
    from repair_agent.bench.correctness import describe

    call_runner = sandbox_tool()
    def after(attrs):
        return {"args": [{"$obj": 0}], "kwargs": {}, "objects": [{"type": "Bar", "attrs": attrs}]}

    human = {"kind": "ok", "value": None, "objects": [], "after": after({"n": 0, "pos": 0, "total": 3})}
    patch = {"kind": "ok", "value": None, "objects": [], "after": after({"n": 0, "total": None})}
    left = call_runner._left([human, patch, None])
    assert left == [{"#0.pos": 0, "#0.total": 3}, {"#0.pos": call_runner.UNSET, "#0.total": None}, None]
    shown = [call_runner._small(o, x) for o, x in zip([human, patch], left)]
    big = {"args": [{"$obj": 0}, list(range(500))], "kwargs": {}, "objects": [{"type": "Bar", "attrs": {}}]}
    text = describe({"input": big, "reference": shown[0], "patched": shown[1]}, "Bar.__init__", "the human fix")
    assert text.startswith("Bar.__init__(#0, [0, 1, 2, ")
    assert text.endswith("the human fix returns None and leaves #0.pos = 0, #0.total = 3, "
                         "the patch returns None and leaves #0.pos unset, #0.total = None")
    assert call_runner._left([human, dict(human)]) == [None, None]  # nothing to say where they agree
    from repair_agent.deciding_test import assertion
    assert assertion("Bar(3)", shown[1]) is None  # no `assert ... == None` that both patches would pass
    assert assertion("Bar(3)", {"kind": "ok", "value": None, "objects": []}) == ["    assert Bar(3) == None"]


def test_calls_that_hold_described_values_replay_but_do_not_stop_generation():
    """youtube-dl's urljoin is called with str and with bytes, and a test passes a Mock: bytes travel
    and are generated; the Mock's call is kept for replay, and the other calls are the basis of
    generation (one such call used to leave the function with no generated input at all)."""
    from repair_agent.judge.differential import generate, show

    call_runner = sandbox_tool()
    seen = [call_runner.encode_call(args, {}) for args in
            [("http://foo.de/", "/a/b/c.txt"), ("//foo.de/", "/a/b/c.txt"), (b"http://foo.de/", b"/a/b/c.txt"),
             (None, "/a/b/c.txt"), (lambda: 1, "/x")]]
    assert seen[2]["args"] == [{"$bytes": "http://foo.de/"}, {"$bytes": "/a/b/c.txt"}]
    assert call_runner.decode_call(seen[2])[0] == [b"http://foo.de/", b"/a/b/c.txt"]
    made, why = generate(json.loads(json.dumps(seen)), 80)
    assert why == "" and len(made) > 40
    kinds = {type(a).__name__ if not isinstance(a, dict) else next(iter(a)) for m in made for a in m["args"][:1]}
    assert kinds == {"str", "$bytes", "NoneType"}
    assert not any("$repr" in json.dumps(m) for m in made)
    assert show({"$bytes": "caf\xe9"}) == "b'caf\\xe9'"


def test_an_object_of_another_modules_class_is_rebuilt_as_that_class(tmp_path, monkeypatch):
    """thefuck's rules take a `Command` defined in thefuck/types.py, whose `script_parts` is a property:
    rebuilt as a bare class, every replayed call raised AttributeError on both sides alike, and those
    calls counted as agreement. The recorded module gives the class back."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "types.py").write_text(
        "class Command:\n"
        "    def __init__(self, script):\n"
        "        self.script = script\n\n"
        "    @property\n"
        "    def parts(self):\n"
        "        return self.script.split()\n")
    (tmp_path / "shop" / "rule.py").write_text("def match(command):\n    return 'push' in command.parts\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from shop.rule import match
    from shop.types import Command

    call_runner = sandbox_tool()
    inp = json.loads(json.dumps(call_runner.encode_call([Command("git push")], {})))
    assert inp["objects"] == [{"type": "Command", "module": "shop.types", "attrs": {"script": "git push"}}]
    rule = sys.modules["shop.rule"]
    out = call_runner.run_call(match, inp, 1.0, resolve=lambda name: getattr(rule, name, None))
    assert out["kind"] == "ok" and out["value"] is True, out
    gone = {**inp, "objects": [{**inp["objects"][0], "module": "shop.nowhere"}]}  # as before: a bare class
    assert call_runner.run_call(match, gone, 1.0)["type"] == "AttributeError"
