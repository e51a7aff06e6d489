"""Line-by-line trace of chosen functions while one pytest test runs. Runs inside the sandbox.

    python tracer.py --target FILE::FUNC [--target ...] [--max-steps N] [--loop-keep K]
                     [--max-depth D] [--timeout S] [--last-call] -- NODEID [pytest args]

FUNC is a function name or a qualified name (`Class.method`); FILE is relative to the cwd (the
repository). Only frames of the targets are traced; comprehensions and lambdas inside them are not
(their result shows on the line that uses it).

Each step is printed as soon as it is final, one line `@@STEP {json}`, so a run that is killed
still leaves its partial trace in the output; the run ends with `@@END {json}`. A step:
  {"file", "line", "event", "function", "depth", "locals": {name: repr}} and, by event,
  call: locals = the arguments; line: locals = what executing that line changed;
  return: "value"; exception: "exception"; loop: "skipped" (how many more times the line ran
  after the first K, its last run follows); depth_limit / truncated / timeout: markers.
Bounds: the first `loop-keep` runs of a line per call are kept, then only the last; at most
`max-depth` nested traced frames; at most `max-steps` steps and `max-bytes` of output; reprs go
through reprlib and are cut at 80 characters. With `--last-call` only the last outermost traced call
is printed, at the end (its steps are held until the next outermost call replaces them, and the
bounds count per call): the call whose value a failing assertion checked, however many came before. On `--timeout` (checked on every traced event, and
by SIGALRM for code stuck outside traced lines) the held steps are flushed and the process exits.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import reprlib
import signal
import sys
import time
import types

STEP, FINISH = "@@STEP ", "@@END "
REPR_MAX = 80
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # object addresses change every run and say nothing
_SKIP_TYPES = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type, types.MethodType)

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxfrozenset = _repr.maxdeque = 8
_repr.maxdict = 6
_repr.maxlevel = 3
_repr.maxlong = 40


def short_repr(value) -> str:
    try:
        text = _repr.repr(value)
    except Exception as exc:  # a broken __repr__
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    text = _ADDRESS.sub("", text)
    return text if len(text) <= REPR_MAX else text[:REPR_MAX - 3] + "..."


class Frame:
    __slots__ = ("snap", "counts", "held", "prev_line", "depth", "func", "file", "raised")

    def __init__(self, depth, func, file):
        self.snap: dict[str, str] = {}
        self.counts: dict[tuple, int] = {}
        self.held: dict[tuple, tuple[int, dict]] = {}  # (line, event) -> (times held, last step)
        self.prev_line: int | None = None
        self.depth, self.func, self.file = depth, func, file
        self.raised = False


class Tracer:
    def __init__(self, targets, out, max_steps=400, loop_keep=3, max_depth=8, timeout=20.0,
                 max_bytes=56_000, last_call=False):
        root = os.getcwd()
        self.targets: dict[str, set[str]] = {}
        for file, func in targets:
            path = os.path.realpath(os.path.join(root, file))
            self.targets.setdefault(path, set()).add(func)
        self.root = root
        self.out = out
        self.max_steps, self.loop_keep, self.max_depth = max_steps, loop_keep, max_depth
        self.deadline = time.monotonic() + timeout
        self.max_bytes = max_bytes
        self.steps = 0
        self.bytes = 0
        self.depth = 0
        self.frames: dict[int, Frame] = {}  # id(frame) -> state
        self.code_cache: dict[types.CodeType, str | None] = {}
        self.stopped = False
        self.flags: dict[str, bool] = {}
        self.events = 0
        self.on_timeout = None  # called after the partial trace is flushed
        self.last_call = last_call
        self.held_call: list[str] = []  # --last-call: the current outermost call's lines
        self.call_full = False

    # -- output ----------------------------------------------------------------------------------
    def emit(self, step: dict) -> None:
        if self.stopped:
            return
        if self.steps >= self.max_steps or self.bytes >= self.max_bytes:
            if self.last_call:  # this call's record is full; the next outermost call starts afresh
                self.call_full = True
                return
            self.stop("truncated")
            return
        line = STEP + json.dumps(step, separators=(",", ":")) + "\n"
        if self.last_call:
            self.held_call.append(line)
        else:
            self.out.write(line)
            self.out.flush()
        self.steps += 1
        self.bytes += len(line)

    def release(self) -> None:
        """--last-call: print the held call (and whether it was cut)."""
        held, self.held_call = self.held_call, []
        if self.call_full:
            held.append(STEP + json.dumps({"file": "", "line": 0, "event": "truncated", "locals": {}}) + "\n")
            self.call_full = False
        self.out.write("".join(held))
        self.out.flush()

    def marker(self, event: str, **extra) -> None:
        self.release()
        line = STEP + json.dumps({"file": "", "line": 0, "event": event, "locals": {}, **extra}) + "\n"
        self.out.write(line)
        self.out.flush()

    def stop(self, why: str) -> None:
        if not self.stopped:
            self.flush_all()
            self.stopped = True
            self.flags[why] = True
            self.marker(why)
            sys.settrace(None)

    def flush_all(self) -> None:
        for st in list(self.frames.values()):
            self.flush_frame(st)

    def flush_frame(self, st: Frame) -> None:
        held, st.held = st.held, {}
        for key in sorted(held):
            skipped, last = held[key]
            if skipped > 1:
                self.emit({"file": st.file, "line": key[0], "event": "loop", "function": st.func,
                           "depth": st.depth, "locals": {}, "skipped": skipped - 1})
            self.emit(last)

    # -- tracing ---------------------------------------------------------------------------------
    def target_name(self, code: types.CodeType) -> str | None:
        if code in self.code_cache:
            return self.code_cache[code]
        name = None
        funcs = self.targets.get(os.path.realpath(code.co_filename)) if code.co_filename else None
        if funcs:
            qual = getattr(code, "co_qualname", None)
            if qual is None:  # before Python 3.11 a code object knows only its own name: match on that
                hit = any(code.co_name == f.rsplit(".", 1)[-1] for f in funcs)
                qual = code.co_name
            else:
                plain = qual.replace(".<locals>", "")  # nested functions: `outer.inner`, as localize names them
                hit = any(code.co_name == f or plain == f or plain.endswith("." + f) for f in funcs)
            # comprehensions, lambdas and genexprs are not traced: their result shows on their line
            if hit:
                name = qual
        self.code_cache[code] = name
        return name

    def global_trace(self, frame, event, arg):
        try:
            return self._global(frame, event, arg)
        except RecursionError:  # the traced code is at the recursion limit; let it fail there
            return None

    def _global(self, frame, event, arg):
        if self.stopped or event != "call":
            return None
        name = self.target_name(frame.f_code)
        if name is None:
            return None
        if time.monotonic() > self.deadline:
            self.timeout()
            return None
        if self.depth >= self.max_depth:
            if not self.flags.get("depth_limit"):
                self.flags["depth_limit"] = True
                self.marker("depth_limit", depth=self.depth)
            return None
        if self.last_call and self.depth == 0:  # a new outermost call: the one before is not the last
            self.held_call, self.call_full, self.steps, self.bytes = [], False, 0, 0
        self.depth += 1
        rel = os.path.relpath(frame.f_code.co_filename, self.root)
        st = Frame(self.depth, name, rel)
        self.frames[id(frame)] = st
        args = self.changed(frame, st)
        self.emit({"file": rel, "line": frame.f_lineno, "event": "call", "function": name,
                   "depth": st.depth, "locals": args})
        return self.local_trace

    def changed(self, frame, st: Frame) -> dict:
        diff = {}
        for k, v in list(frame.f_locals.items()):
            if isinstance(v, _SKIP_TYPES) or k.startswith(("@", ".")):
                continue
            r = short_repr(v)
            if st.snap.get(k) != r:
                diff[k] = r
                st.snap[k] = r
        return diff

    def record(self, st: Frame, step: dict) -> None:
        """Emit a line/exception step, or hold it once its line ran more than loop_keep times."""
        key = (step["line"], step["event"])
        n = st.counts.get(key, 0) + 1
        st.counts[key] = n
        if n <= self.loop_keep:
            self.emit(step)
        else:
            skipped = st.held.get(key, (0, None))[0]
            st.held[key] = (skipped + 1, step)

    def settle(self, frame, st: Frame, at_line: int | None = None) -> dict:
        """Attribute what changed since the last event to the previous line. When that line is
        `at_line` (the line now returning/raising) the change is returned for the caller's step."""
        if st.prev_line is None:
            return {}
        line, st.prev_line = st.prev_line, None
        diff = self.changed(frame, st)
        if line == at_line:
            return diff
        self.record(st, {"file": st.file, "line": line, "event": "line", "function": st.func,
                         "depth": st.depth, "locals": diff})
        return {}

    def local_trace(self, frame, event, arg):
        try:
            return self._local(frame, event, arg)
        except RecursionError:
            return None

    def _local(self, frame, event, arg):
        if self.stopped:
            return None
        st = self.frames.get(id(frame))
        if st is None:
            return None
        self.events += 1
        if (self.events & 63) == 0 and time.monotonic() > self.deadline:
            self.settle(frame, st)
            self.timeout()
            return None
        if event == "line":
            self.settle(frame, st)
            st.prev_line = frame.f_lineno
            st.raised = False
        elif event == "exception":
            diff = self.settle(frame, st, frame.f_lineno)
            exc_type, exc, _tb = arg
            self.record(st, {"file": st.file, "line": frame.f_lineno, "event": "exception",
                             "function": st.func, "depth": st.depth, "locals": diff,
                             "exception": short_repr(exc) if exc is not None else exc_type.__name__})
            st.raised = True
        elif event == "return":
            diff = self.settle(frame, st, frame.f_lineno)
            self.flush_frame(st)
            step = {"file": st.file, "line": frame.f_lineno, "event": "return", "function": st.func,
                    "depth": st.depth, "locals": diff}
            if st.raised:
                step["event"] = "raise"  # the exception leaves the function
            else:
                step["value"] = short_repr(arg)
            self.emit(step)
            self.frames.pop(id(frame), None)
            self.depth -= 1
        return self.local_trace

    def timeout(self) -> None:
        if not self.stopped:
            self.stop("timeout")
        if self.on_timeout is not None:
            self.on_timeout()


def main(argv: list[str]) -> int:
    if "--" in argv:
        i = argv.index("--")
        own, pytest_args = argv[:i], argv[i + 1:]
    else:
        own, pytest_args = argv, []
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", action="append", default=[], help="FILE::FUNC")
    ap.add_argument("--max-steps", type=int, default=400)
    ap.add_argument("--loop-keep", type=int, default=3)
    ap.add_argument("--max-depth", type=int, default=8)
    ap.add_argument("--max-bytes", type=int, default=56_000)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--last-call", action="store_true", help="print only the last outermost traced call")
    opts = ap.parse_args(own)
    targets = []
    for t in opts.target:
        file, _, func = t.rpartition("::")
        targets.append((file, func))

    root = os.getcwd()
    sys.path.insert(0, root)
    out = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # pytest's own console output is not wanted (stderr stays, for crashes)
    tracer = Tracer(targets, out, opts.max_steps, opts.loop_keep, opts.max_depth, opts.timeout,
                    opts.max_bytes, opts.last_call)
    outcome = {"outcome": None}

    def finish(extra: dict) -> None:
        tracer.release()
        out.write(FINISH + json.dumps({**outcome, "steps": tracer.steps, **tracer.flags, **extra}) + "\n")
        out.flush()

    def give_up():
        finish({})
        os._exit(0)

    def on_alarm(signum, frame):  # stuck outside traced lines (C code, sleep, untraced callees)
        tracer.timeout()

    tracer.on_timeout = give_up
    signal.signal(signal.SIGALRM, on_alarm)

    import pytest

    class Plugin:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_call(self, item):
            # the deadline counts from the test's call, not from pytest's start-up
            tracer.deadline = time.monotonic() + opts.timeout
            signal.setitimer(signal.ITIMER_REAL, opts.timeout + 2.0)
            sys.settrace(tracer.global_trace)
            try:
                yield
            finally:
                lost = sys.gettrace() is None and not tracer.stopped
                sys.settrace(None)
                signal.setitimer(signal.ITIMER_REAL, 0)
                if lost:  # CPython drops the tracer when it fails, e.g. at the recursion limit
                    tracer.flush_all()
                    tracer.marker("trace_lost", frames=len(tracer.frames))
                    tracer.stopped = True

        def pytest_runtest_teardown(self, item):
            sys.settrace(None)
            tracer.flush_all()

        def pytest_runtest_logreport(self, report):
            if report.failed:
                outcome["outcome"] = "failed"
                text = str(report.longrepr or "").strip().splitlines()
                errs = [ln[1:].strip() for ln in text if ln.startswith("E ")]
                outcome["message"] = (errs[0] if errs else text[-1] if text else "")[:300]
            elif outcome["outcome"] is None and report.when == "call":
                outcome["outcome"] = "skipped" if report.skipped else "passed"

    # pytest-timeout would take SIGALRM; the tracer has its own deadline
    rc = pytest.main(["-p", "no:cacheprovider", "-p", "no:timeout", "-q", *pytest_args],
                     plugins=[Plugin()])
    signal.setitimer(signal.ITIMER_REAL, 0)
    sys.settrace(None)
    tracer.flush_all()
    finish({"pytest_rc": int(rc)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
