"""Differential testing, shared by the benchmark's correctness check (bench/correctness.py,
against the reference program) and the agent's overfitting guard (judge/guard.py, the plausible
patches against each other and against the buggy program): generating inputs like the ones the
tests passed, reading what `sandbox/tools/call_runner.py` prints, and writing inputs and outcomes for
people.

Inputs are generated on the host, as plain JSON: hypothesis strategies built from the arguments
the tests passed. A generated value keeps what every seen value at its place had in common (sign,
length bounds, alphabet, sortedness, distinct items, acyclic links): a program is judged on the
domain the tests show, not on inputs it was never meant to take. The programs themselves only
ever run inside the sandbox.

Values travel as JSON with tags: `{"$tuple": [...]}`, `{"$set": [...]}`, `{"$dict": [[k, v]]}`,
`{"$bytes": "latin-1 text"}`, `{"$obj": i}` (object i of the call's `objects` table: `{"type",
"attrs"}`), `{"$ref": "module:qualname"}` (a function or class, rebuilt by importing it), `{"$repr":
"..."}` (rebuilt as a stand-in that any use makes `unreplayable`). Neither of the last two is
generated: a call keeps them as recorded, and only calls without them are the basis of generation.
"""

from __future__ import annotations

import json
import threading
from collections import Counter

INPUT, RESULT = "@@INPUT ", "@@RESULT "  # as sandbox/tools/call_runner.py prints them
EXAMPLES = 300
_GENERATING = threading.Lock()  # hypothesis is not made for threads; bench workers are threads


class Unsupported(Exception):
    """The seen inputs hold something no strategy can generate sensibly."""


# -- input generation ----------------------------------------------------------------------------
def _kind(v) -> str:
    if v is None or isinstance(v, (bool, int, float, str, list)):
        return "none" if v is None else type(v).__name__
    tag = next(iter(v)) if isinstance(v, dict) and len(v) == 1 else ""
    if tag in ("$tuple", "$set", "$dict", "$bytes"):
        return tag[1:]
    if tag == "$obj":
        raise Unsupported("objects inside other values (lists, dict keys): no strategy for them")
    raise Unsupported(f"an argument holds {json.dumps(v)[:80]}: no strategy for it")


def _widen(lo, hi, least, step):
    """[lo, hi] widened by half its span (at least `least`), keeping the signs seen: a bound
    never crosses zero, and reaches zero only if zero was seen (`step` is the smallest step)."""
    w = max(least, (hi - lo) // 2 if isinstance(lo, int) else (hi - lo) / 2)
    lo2 = lo - w if lo < 0 else max(lo - w, 0 if lo == 0 else step)
    hi2 = hi + w if hi > 0 else min(hi + w, 0 if hi == 0 else -step)
    return lo2, hi2


def _ordered(items: list) -> bool:
    try:
        return all(a <= b for a, b in zip(items, items[1:]))
    except TypeError:
        return False


def strategy_for(values: list):
    """A strategy for one argument place, from the values seen there (tagged JSON)."""
    from hypothesis import strategies as st

    groups: dict[str, list] = {}
    for v in values:
        groups.setdefault(_kind(v), []).append(v)
    parts = []
    for kind, vs in sorted(groups.items()):
        if kind == "none":
            parts.append(st.none())
        elif kind == "bool":
            parts.append(st.booleans())
        elif kind == "int":
            parts.append(st.integers(*_widen(min(vs), max(vs), 4, 1)))
        elif kind == "float":
            finite = [v for v in vs if abs(v) != float("inf") and v == v]
            if finite:
                parts.append(st.floats(*_widen(min(finite), max(finite), 1.0, 1e-3), allow_nan=False))
            parts += [st.just(v) for v in sorted(set(vs) - set(finite))]
        elif kind == "str":
            parts.append(_strings(vs))
        elif kind == "bytes":  # latin-1 text, one character per byte
            parts.append(_strings([v["$bytes"] for v in vs]).map(lambda text: {"$bytes": text}))
        elif kind in ("list", "set"):
            parts.append(_collections(vs, kind))
        elif kind == "tuple":
            for n in sorted({len(v["$tuple"]) for v in vs}):
                same_len = [v["$tuple"] for v in vs if len(v["$tuple"]) == n]
                items = [strategy_for([t[i] for t in same_len]) for i in range(n)]
                parts.append(st.tuples(*items).map(lambda t: {"$tuple": list(t)}))
        else:  # dict
            pairs = [kv for v in vs for kv in v["$dict"]]
            sizes = [len(v["$dict"]) for v in vs]
            if not pairs:
                parts.append(st.just({"$dict": []}))
                continue
            item = st.tuples(strategy_for([k for k, _ in pairs]), strategy_for([x for _, x in pairs]))
            parts.append(st.lists(item, min_size=min(sizes), max_size=max(sizes) + 2,
                                  unique_by=lambda kv: json.dumps(kv[0], sort_keys=True))
                         .map(lambda kvs: {"$dict": [list(kv) for kv in kvs]}))
    return st.one_of(parts) if parts else st.nothing()


def _strings(vs: list[str]):
    from hypothesis import strategies as st

    distinct = sorted(set(vs))
    if len(distinct) <= 10 and len(vs) >= 2 * len(distinct):  # a few tokens, repeated: a vocabulary
        return st.sampled_from(distinct)
    alphabet = sorted(set("".join(vs))) or ["a"]
    text = st.text(alphabet=alphabet, min_size=min(map(len, vs)), max_size=min(max(map(len, vs)) + 2, 2000))
    return st.one_of(text, _edited(distinct, alphabet))


def _edited(distinct: list[str], alphabet: list[str]):
    """A seen string with one to three characters inserted, replaced or deleted (from the seen
    alphabet). Random text over that alphabet almost never has the shape that a function's parsing
    looks for (thefuck-1: none of 300 generated outputs reached its regular expression's group),
    while a real input most often differs from a test's by little: `"un+install"` for `"uninstall"`."""
    from hypothesis import strategies as st

    def apply(drawn) -> str:
        text, edits = drawn
        for at, how, char in edits:
            at %= len(text) + 1
            text = (text[:at] + char + text[at:] if how == "insert" or at == len(text)
                    else text[:at] + (char if how == "replace" else "") + text[at + 1:])
        return text

    edit = st.tuples(st.integers(0, 1 << 20), st.sampled_from(("insert", "replace", "delete")), st.sampled_from(alphabet))
    return st.tuples(st.sampled_from(distinct), st.lists(edit, min_size=1, max_size=3)).map(apply)


def _collections(vs: list, kind: str):
    from hypothesis import strategies as st

    seqs = [v if kind == "list" else v["$set"] for v in vs]
    items = [x for s in seqs for x in s]
    if not items:
        return st.just([] if kind == "list" else {"$set": []})
    keys = lambda s: [json.dumps(x, sort_keys=True) for x in s]  # noqa: E731
    unique = kind == "set" or all(len(set(keys(s))) == len(s) for s in seqs)
    ordered = kind == "list" and any(len(s) > 1 for s in seqs) and all(_ordered(s) for s in seqs)
    lo, hi = min(map(len, seqs)), max(map(len, seqs))
    if lo < hi or len(seqs) < 3:  # one length seen again and again is a shape (a pair, a row), not chance
        hi = min(hi + 2, 40)
    lists = st.lists(strategy_for(items), min_size=lo, max_size=hi,
                     unique_by=(lambda x: json.dumps(x, sort_keys=True)) if unique else None)
    if ordered:
        return lists.map(_sorted)
    return lists if kind == "list" else lists.map(lambda s: {"$set": s})


def _sorted(items: list) -> list:
    try:
        return sorted(items)
    except TypeError:  # kinds that do not compare: left as drawn
        return items


def input_strategy(seen: list[dict]):
    """A strategy for whole calls `{"args", "kwargs", "objects"}`, shaped like the commonest
    call the tests made."""
    from hypothesis import strategies as st

    shape = lambda c: (len(c["args"]), tuple(sorted(c.get("kwargs", {}))))  # noqa: E731
    (nargs, keys), _ = Counter(map(shape, seen)).most_common(1)[0]
    calls = [c for c in seen if shape(c) == (nargs, keys)]
    places = [[c["args"][i] for c in calls] for i in range(nargs)] + [[c["kwargs"][k] for c in calls] for k in keys]
    if any(c.get("objects") for c in calls):
        return _object_calls(calls, places, nargs, keys)
    arg_strategies = [strategy_for(p) for p in places]
    return st.tuples(*arg_strategies).map(lambda xs: {"args": list(xs[:nargs]),
                                                       "kwargs": dict(zip(keys, xs[nargs:])), "objects": []})


def _is_ref(v) -> bool:
    return isinstance(v, dict) and "$obj" in v


def _object_calls(calls: list[dict], places: list[list], nargs: int, keys: tuple):
    """Calls on object graphs (QuixBugs' Node): objects linked through ONE attribute (a successor,
    or a list of successors), passed directly as arguments. Graphs whose links must agree with
    each other (incoming and outgoing nodes, edge lengths keyed by node pairs) are Unsupported."""
    from hypothesis import strategies as st

    objects = [o for c in calls for o in c["objects"]]
    types = {o["type"] for o in objects}
    attrs: dict[str, list] = {}
    for o in objects:
        for k, v in o["attrs"].items():
            attrs.setdefault(k, []).append(v)
    links = {k for k, vs in attrs.items()
             if any(_is_ref(v) or (isinstance(v, list) and any(map(_is_ref, v))) for v in vs)}
    if len(types) > 1 or len(links) > 1:
        raise Unsupported(f"objects of {', '.join(sorted(types))} linked through {', '.join(sorted(links))}: "
                          "graphs whose links must agree cannot be generated sensibly")
    link = next(iter(links), None)
    single = link is not None and all(v is None or _is_ref(v) for v in attrs[link])
    data = {k: strategy_for(vs) for k, vs in attrs.items() if k != link}
    ref_places = [all(v is None or _is_ref(v) for v in p) and any(map(_is_ref, p)) for p in places]
    others = [None if is_ref else strategy_for(p) for p, is_ref in zip(places, ref_places)]
    acyclic = not any(_has_cycle(c["objects"], link) for c in calls) if link else True
    most = max(len(c["objects"]) for c in calls) + 2
    widest = max([len(v) for v in attrs.get(link, []) if isinstance(v, list)] or [1])
    tname = next(iter(types))
    module = {"module": objects[0]["module"]} if objects[0].get("module") else {}

    @st.composite
    def call(draw):
        n = draw(st.integers(1, min(most, 10)))
        objs = []
        for i in range(n):
            targets = list(range(i + 1, n)) if acyclic else list(range(n))  # acyclic: links go forward
            o = {"type": tname, **module, "attrs": {k: draw(s) for k, s in data.items()}}
            if link and single:
                o["attrs"][link] = draw(st.none() | st.sampled_from(targets).map(_ref)) if targets else None
            elif link:
                o["attrs"][link] = draw(st.lists(st.sampled_from(targets).map(_ref), unique_by=str,
                                                 max_size=widest + 1)) if targets else []
            objs.append(o)
        values = []
        for p, is_ref, s in zip(places, ref_places, others):
            ref = st.sampled_from(range(n)).map(_ref)
            values.append(draw((ref | st.none()) if is_ref and None in p else ref if is_ref else s))
        return {"args": values[:nargs], "kwargs": dict(zip(keys, values[nargs:])), "objects": objs}

    return call()


def _ref(i: int) -> dict:
    return {"$obj": i}


def _has_cycle(objects: list[dict], link: str) -> bool:
    def succ(i):
        v = objects[i]["attrs"].get(link)
        return [x["$obj"] for x in (v if isinstance(v, list) else [v]) if _is_ref(x)]

    state: dict[int, int] = {}  # 1 on the path, 2 done

    def visit(i) -> bool:
        state[i] = 1
        for j in succ(i):
            if state.get(j) == 1 or (j not in state and visit(j)):
                return True
        state[i] = 2
        return False

    return any(i not in state and visit(i) for i in range(len(objects)))


def varied_calls(seen: list[dict]):
    """Calls that keep one recorded call's objects, and the arguments that refer to them, and draw
    its other arguments anew from the values seen at their places: for calls on objects whose graphs
    cannot be generated (a method's `self`, an open file)."""
    from hypothesis import strategies as st

    shape = lambda c: (len(c["args"]), tuple(sorted(c.get("kwargs", {}))))  # noqa: E731
    (nargs, keys), _ = Counter(map(shape, seen)).most_common(1)[0]
    calls = [c for c in seen if shape(c) == (nargs, keys)]
    places = [[c["args"][i] for c in calls] for i in range(nargs)] + [[c["kwargs"][k] for c in calls] for k in keys]
    drawn: list = []
    for values in places:
        try:
            drawn.append(None if '"$obj"' in json.dumps(values) else strategy_for(values))
        except Unsupported:
            drawn.append(None)  # kept as the recorded call had it
    if all(s is None for s in drawn):
        raise Unsupported("every argument refers to objects or holds values no strategy can generate")

    @st.composite
    def call(draw):
        base = draw(st.sampled_from(calls))
        own = list(base["args"]) + [base["kwargs"][k] for k in keys]
        values = [v if s is None else draw(s) for v, s in zip(own, drawn)]
        return {"args": values[:nargs], "kwargs": dict(zip(keys, values[nargs:])), "objects": base["objects"]}

    return call()


def generate(seen: list[dict], examples: int = EXAMPLES, keep_objects: bool = False) -> tuple[list[dict], str]:
    """Up to `examples` new inputs like the seen ones (deterministic), or ([], why not). With
    `keep_objects`, calls on objects that cannot be generated keep a recorded call's objects and
    vary its other arguments (`varied_calls`)."""
    try:
        from hypothesis import HealthCheck, Phase, given, settings
    except ImportError:  # the dev extra has it; without it only the tests' own inputs are compared
        return [], "hypothesis is not installed (pip install hypothesis)"
    # the calls whose every value has a strategy are the basis when there are any: a call that holds
    # a described value (`$repr`: a Mock, a lambda) or a named one (`$ref`) replays, but generates nothing
    basis = [c for c in seen if '"$repr"' not in json.dumps(c) and '"$ref"' not in json.dumps(c)] or seen
    try:
        strategy = input_strategy(basis)
    except Unsupported as exc:
        if not keep_objects:
            return [], str(exc)
        try:
            strategy = varied_calls(basis)
        except Unsupported as again:
            return [], f"{exc}; {again}"
    keys = {json.dumps(s, sort_keys=True) for s in seen}
    out: list[dict] = []

    @settings(max_examples=examples, derandomize=True, database=None, phases=[Phase.generate],
              deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(inp):
        key = json.dumps(inp, sort_keys=True)
        if key not in keys:
            keys.add(key)
            out.append(inp)

    with _GENERATING:
        collect()
    return out, ""


# -- reading the sandbox's output ---------------------------------------------------------------
def lines(out: str, prefix: str) -> list[dict]:
    found = []
    for line in out.splitlines():
        if line.startswith(prefix):
            try:
                found.append(json.loads(line[len(prefix):]))
            except json.JSONDecodeError:
                pass  # a line cut by the output limit
    return found


def tail(out: str) -> str:
    return " ".join(out.strip().splitlines()[-3:])[-300:]


# -- values and outcomes for people ------------------------------------------------------------
def show(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(map(show, v)) + "]"
    if not isinstance(v, dict):
        return repr(v)
    tag, x = next(iter(v.items()))
    if tag == "$tuple":
        return "(" + ", ".join(map(show, x)) + ("," if len(x) == 1 else "") + ")"
    if tag == "$set":
        return "{" + ", ".join(map(show, x)) + "}" if x else "set()"
    if tag == "$dict":
        return "{" + ", ".join(f"{show(k)}: {show(y)}" for k, y in x) + "}"
    if tag == "$bytes":
        return repr(x.encode("latin-1"))
    return f"#{x}" if tag == "$obj" else str(x)  # $ref, $repr


def where(objects: list | None) -> str:
    shown = [f"#{i} = {o['type']}(" + ", ".join(f"{k}={show(v)}" for k, v in o["attrs"].items() if v not in (None, []))
             + ")" for i, o in enumerate(objects or [])]
    return f" where {'; '.join(shown)}" if shown else ""


def outcome_text(out: dict, plural: bool = False) -> str:
    """`returns 2`, `raises ValueError`, ... (`return 2` with `plural`, for several programs)."""
    s = "" if plural else "s"
    if "truncated" in out:
        return f"return{s} a value too large to show"
    if out["kind"] == "ok":
        left = ", ".join(f"{k} unset" if v == {"$unset": True} else f"{k} = {show(v)}"
                         for k, v in (out.get("leaves") or {}).items())
        return f"return{s} {show(out['value'])}{where(out.get('objects'))}" + \
            (f" and leave{s} {left}" if left else "")
    if out["kind"] == "raise":
        return f"raise{s} {out['type']}"
    if out["kind"] == "crash":
        return f"end{s} the process (a crash, or a hang the time limit could not stop)"
    if out["kind"] == "unreplayable":
        return f"use{s} a value the recording could only describe"
    return f"do{'' if plural else 'es'} not finish in time"


def call_text(inp: dict, name: str, limit: int = 300) -> str:
    """`gcd(4, 6)`, objects written out after `where`, clipped (an object graph can fill pages)."""
    args = [show(a) for a in inp["args"]] + [f"{k}={show(v)}" for k, v in inp.get("kwargs", {}).items()]
    return clip(f"{name}({', '.join(args)}){where(inp.get('objects'))}", limit)


def clip(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
