"""Differential testing of a patched program against the reference. Runs inside the sandbox.

    python differential.py record  --reference REF --entry NAME -- PYTEST ARGS
    python differential.py compare --reference REF --program PROG --entry NAME --inputs FILE
                                   [--timeout S] [--budget S]

`record` runs the benchmark's own tests with the entry point replaced, in the test modules, by
the reference, and prints each call's arguments as `@@INPUT {json}`. `compare` calls the
reference and the patched program on every input of FILE (`{"seen": [...], "generated": [...]}`)
and prints one `@@RESULT {json}`: how many inputs were compared and skipped, and the first
difference. The reference sets the expectations: a generated input on which it raises is outside
the program's domain, one on which it times out tells nothing; both are skipped.

Values travel as JSON with tags: `{"$tuple": [...]}`, `{"$set": [...]}`, `{"$dict": [[k, v]]}`,
`{"$obj": i}` (object i of the input's `objects` table: `{"type", "attrs"}`, e.g. QuixBugs'
`Node`), `{"$repr": "..."}` (anything else: compared, never rebuilt). Generators become lists.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import re
import signal
import sys
import time
import types

INPUT, RESULT = "@@INPUT ", "@@RESULT "
MAX_ITEMS = 10_000  # items of a list or generator kept (an endless generator must end)
MAX_INPUTS, MAX_INPUT_CHARS, MAX_RECORD_CHARS = 500, 20_000, 48_000  # the output is capped
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class CallTimeout(BaseException):  # BaseException: the program's `except Exception` must not eat it
    pass


# -- values <-> JSON ---------------------------------------------------------------------------
def encode(value, objects: list, memo: dict, depth: int = 0):
    if depth > 200:
        raise RecursionError("value nested too deeply")
    enc = lambda v: encode(v, objects, memo, depth + 1)  # noqa: E731
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [enc(v) for v in value[:MAX_ITEMS]]
    if isinstance(value, tuple):
        return {"$tuple": [enc(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"$set": sorted((enc(v) for v in value), key=_key)}
    if isinstance(value, dict):
        return {"$dict": [[enc(k), enc(v)] for k, v in value.items()]}
    if isinstance(value, types.GeneratorType) or type(value).__name__.endswith("iterator"):
        items = []
        for v in value:
            if len(items) == MAX_ITEMS:
                break
            items.append(enc(v))
        return items
    if hasattr(value, "__dict__") and type(value).__module__ != "builtins" and not callable(value):
        if id(value) not in memo:  # objects by discovery order: same shape, same table
            memo[id(value)] = len(objects)
            entry = {"type": type(value).__name__, "attrs": {}}
            objects.append(entry)
            entry["attrs"] = {k: enc(v) for k, v in sorted(vars(value).items())}
        return {"$obj": memo[id(value)]}
    return {"$repr": _ADDRESS.sub("", repr(value))[:500]}


def _key(x) -> str:
    return json.dumps(x, sort_keys=True)


def encode_call(args, kwargs) -> dict:
    objects, memo = [], {}
    return {"args": [encode(a, objects, memo) for a in args],
            "kwargs": {k: encode(v, objects, memo) for k, v in kwargs.items()}, "objects": objects}


def decode_call(inp: dict):
    """Fresh arguments for one call (the program may mutate them)."""
    classes: dict[str, type] = {}
    objects = [object.__new__(classes.setdefault(o["type"], type(o["type"], (), {})))
               for o in inp.get("objects", [])]

    def dec(v):
        if isinstance(v, list):
            return [dec(x) for x in v]
        if not isinstance(v, dict):
            return v
        if "$tuple" in v:
            return tuple(dec(x) for x in v["$tuple"])
        if "$set" in v:
            return {dec(x) for x in v["$set"]}
        if "$dict" in v:
            return {dec(k): dec(x) for k, x in v["$dict"]}
        if "$obj" in v:
            return objects[v["$obj"]]
        raise ValueError(f"cannot rebuild {v}")

    for obj, o in zip(objects, inp.get("objects", [])):
        for k, v in o["attrs"].items():
            setattr(obj, k, dec(v))
    return [dec(a) for a in inp["args"]], {k: dec(v) for k, v in inp.get("kwargs", {}).items()}


def same(a, b) -> bool:
    """Equal as Python's == would say, floats within a tolerance, dicts in any order."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) or isinstance(b, float):
            return a == b or (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        if "$dict" in a and "$dict" in b:
            a, b = (sorted(d["$dict"], key=lambda kv: _key(kv[0])) for d in (a, b))
            return same(a, b)
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# -- calling with a time limit ------------------------------------------------------------------
def _alarm(signum, frame):
    raise CallTimeout()


def run_call(fn, inp: dict, timeout: float) -> dict:
    """`{"kind": "ok", "value", "objects"}`, `{"kind": "raise", "type"}` or `{"kind": "timeout"}`."""
    args, kwargs = decode_call(inp)
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
            objects: list = []
            value = encode(fn(*args, **kwargs), objects, {})  # inside the limit: generators run here
        out = {"kind": "ok", "value": value, "objects": objects}
    except CallTimeout:
        out = {"kind": "timeout"}
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from the program count too
        out = {"kind": "raise", "type": type(exc).__name__}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    out["seconds"] = time.monotonic() - start
    return out


def load(path: str, name: str, entry: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return getattr(module, entry)


# -- the two commands ---------------------------------------------------------------------------
def record(ns) -> int:
    import functools

    import pytest

    reference = load(ns.reference, "_ra_reference", ns.entry)
    calls: list[str] = []

    @functools.wraps(reference)
    def recorder(*args, **kwargs):
        if len(calls) < MAX_INPUTS:
            try:
                text = json.dumps(encode_call(args, kwargs))  # before the call: it may mutate them
            except (RecursionError, ValueError):
                text = ""
            replayable = text and '"$repr"' not in text and len(text) <= MAX_INPUT_CHARS
            if replayable and text not in calls:
                calls.append(text)
        return reference(*args, **kwargs)

    class Swap:  # the test modules call the reference under the entry point's name
        @pytest.hookimpl(trylast=True)
        def pytest_collection_modifyitems(self, items):
            for item in items:
                module = getattr(item, "module", None)
                if module is not None and getattr(module, ns.entry, None) is not None:
                    setattr(module, ns.entry, recorder)

    rc = pytest.main(["-q", "-p", "no:cacheprovider", "-o", "timeout=60", *ns.pytest_args], plugins=[Swap()])
    total = 0
    for text in calls:
        total += len(text)
        if total > MAX_RECORD_CHARS:
            break
        print(INPUT + text)
    return 0 if calls else int(rc) or 1


def compare(ns) -> int:
    with open(ns.inputs, encoding="utf-8") as f:
        inputs = json.load(f)
    reference = load(ns.reference, "_ra_reference", ns.entry)
    patched = load(ns.program, "_ra_patched", ns.entry)
    signal.signal(signal.SIGALRM, _alarm)
    counts = {"seen": 0, "generated": 0, "skipped": 0}
    result = {"first_difference": None, "budget_exhausted": False}
    deadline = time.monotonic() + ns.budget
    for source in ("seen", "generated"):
        for inp in inputs.get(source, []):
            if time.monotonic() > deadline or result["first_difference"]:
                result["budget_exhausted"] = not result["first_difference"]
                break
            ref = run_call(reference, inp, ns.timeout)
            # a generated input the reference rejects is outside the domain; a slow one tells nothing
            if ref["kind"] == "timeout" or (ref["kind"] == "raise" and source == "generated"):
                counts["skipped"] += 1
                continue
            # a correct patch may be somewhat slower than the reference; an endless loop is not
            got = run_call(patched, inp, ns.timeout + 10 * ref["seconds"])
            counts[source] += 1
            if not same(_bare(got), _bare(ref)):
                result["first_difference"] = {"source": source, "input": inp, "reference": _shown(ref),
                                              "patched": _shown(got)}
    print(RESULT + json.dumps({**result, **counts}))
    return 0


def _bare(out: dict) -> dict:
    return {k: v for k, v in out.items() if k != "seconds"}


def _shown(out: dict) -> dict:
    shown = _bare(out)
    text = json.dumps(shown)
    return shown if len(text) <= 4000 else {"kind": out["kind"], "truncated": text[:4000]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--reference", required=True)
    rec.add_argument("--entry", required=True)
    rec.add_argument("pytest_args", nargs="*")
    cmp_ = sub.add_parser("compare")
    cmp_.add_argument("--reference", required=True)
    cmp_.add_argument("--program", required=True)
    cmp_.add_argument("--entry", required=True)
    cmp_.add_argument("--inputs", required=True)
    cmp_.add_argument("--timeout", type=float, default=1.0)
    cmp_.add_argument("--budget", type=float, default=60.0)
    ns = p.parse_args(argv)
    return record(ns) if ns.command == "record" else compare(ns)


if __name__ == "__main__":
    sys.exit(main())
