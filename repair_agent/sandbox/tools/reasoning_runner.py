"""Execution reasoning, scored by running (repair_agent/eval/reasoning.py). Runs inside the sandbox.

    python reasoning_runner.py --plan FILE [--skip N] [--count K]

The plan: `{"targets": [{"module", "qualname", "root"}], "timeout": s, "items": [...]}`, where
call_runner.py's `calls` named each target's module and root. Each item, from the N-th on (K of
them), prints one `@@RUN {json}` line with its index `i`:

- `{"target", "call"}`: a call the tests made (call_runner's JSON), run twice on fresh arguments:
  the outcome (`kind`, `value`), and `plain` when both runs returned the same value and that value
  is a Python literal (`literal_eval(repr(v)) == v`: no generator, no object), with `args` (the
  call's arguments as Python source) and `text` (the value's repr);
- `{"target", "args": [source], "kwargs": {name: source}, "expect"}`: a model's input: each
  argument is `ast.literal_eval`ed (never evaluated), the function runs on them, and `same` says
  whether it returned the expected value (call_runner's JSON);
- `{"literal": source, "expect"}`: a model's output: `same` says whether the literal is the value.

Values are compared as call_runner.py's `same` compares them (floats within a tolerance, a tuple
is not a list). A model's text is only ever read with `ast.literal_eval`, here in the sandbox.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import call_runner as cr  # noqa: E402  (the encoding, the timed call and the comparison)

RUN = "@@RUN "
MAX_VALUE_CHARS = 600  # a longer value or argument list is never shown to a model: left out of the line


def plain(value) -> bool:
    """Only literals, all the way down: what `repr` writes and `ast.literal_eval` reads back."""
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) in (list, tuple, set, frozenset):
        return type(value) is not frozenset and all(plain(v) for v in value)
    if type(value) is dict:
        return all(plain(k) and plain(v) for k, v in value.items())
    return False


def literal(text: str):
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ValueError(f"not a Python literal: {type(exc).__name__}") from None


def checked(fn):
    """`fn`, raising where it returns anything but a literal (call_runner's encoding would turn a
    generator into a list, which `==` does not)."""
    def call(*args, **kwargs):
        value = fn(*args, **kwargs)
        if not plain(value):
            raise NotPlain(type(value).__name__)
        return value

    return call


class NotPlain(Exception):
    pass


def encoded(value):
    return cr.encode(value, [], {})


def recorded(fn, item: dict, timeout: float) -> dict:
    first = cr.run_call(checked(fn), item["call"], timeout)
    out = cr._bare(first)
    if first["kind"] != "ok":
        return out
    again = cr.run_call(fn, item["call"], timeout)
    args, kwargs = cr.decode_call(item["call"])
    shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    value = cr.decode_call({"args": [first["value"]]})[0][0]
    text = repr(value)
    try:
        reads_back = literal(text) == value  # not so for nan, inf
    except ValueError:
        reads_back = False
    out.update(plain=again["kind"] == "ok" and cr.same(first["value"], again["value"]) and reads_back
               and all(plain(a) for a in (*args, *kwargs.values())), args=", ".join(shown), text=text)
    return out


def predicted_input(fn, item: dict, timeout: float) -> dict:
    try:
        args = [literal(a) for a in item["args"]]
        kwargs = {k: literal(v) for k, v in item.get("kwargs", {}).items()}
        call = cr.encode_call(args, kwargs)
    except (ValueError, RecursionError) as exc:
        return {"kind": "invalid", "why": str(exc)}
    out = cr._bare(cr.run_call(checked(fn), call, timeout))
    out["same"] = out["kind"] == "ok" and cr.same(out["value"], item["expect"])
    return out


def predicted_output(item: dict) -> dict:
    try:
        value = literal(item["literal"])
        return {"kind": "ok", "value": encoded(value), "same": plain(value) and cr.same(encoded(value), item["expect"])}
    except (ValueError, RecursionError) as exc:
        return {"kind": "invalid", "why": str(exc), "same": False}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plan", required=True)
    p.add_argument("--skip", type=int, default=0)
    p.add_argument("--count", type=int, default=None)
    ns = p.parse_args(argv)
    with open(ns.plan, encoding="utf-8") as f:
        plan = json.load(f)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
    signal.signal(signal.SIGALRM, cr._alarm)
    functions: dict[int, object] = {}
    end = len(plan["items"]) if ns.count is None else ns.skip + ns.count
    for i, item in enumerate(plan["items"][ns.skip:end], ns.skip):
        t = item.get("target")
        if t is not None and t not in functions:
            target = plan["targets"][t]
            root = os.path.abspath(target.get("root") or ".")
            if root not in sys.path:
                sys.path.insert(0, root)
            try:
                functions[t] = cr._resolve(importlib.import_module(target["module"]), target["qualname"])[2]
            except BaseException as exc:
                functions[t] = f"{type(exc).__name__}: {exc}"[:300]
        fn = functions.get(t)
        if isinstance(fn, str):
            out = {"kind": "invalid", "why": f"cannot import the function: {fn}"}
        elif "literal" in item:
            out = predicted_output(item)
        elif "call" in item:
            out = recorded(fn, item, plan["timeout"])
        else:
            out = predicted_input(fn, item, plan["timeout"])
        if max(len(json.dumps(out.get("value"))), len(out.get("args", ""))) > MAX_VALUE_CHARS:
            out = {k: v for k, v in out.items() if k not in ("value", "text", "args")} | {"plain": False}
        print(RUN + json.dumps({"i": i, **out}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
