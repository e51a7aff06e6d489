"""Differential testing of programs on the same inputs. Runs inside the sandbox.

    python call_runner.py record  --reference REF --entry NAME -- PYTEST ARGS
    python call_runner.py compare --reference REF --program PROG --entry NAME --inputs FILE
                                   [--timeout S] [--budget S]
    python call_runner.py calls   --targets FILE [--per-test S] [--failing FILE] [--short S] -- PYTEST ARGS
    python call_runner.py vote    --plan FILE

The benchmark (bench/correctness.py) uses `record` and `compare`; the agent's overfitting guard
(judge/guard.py) uses `calls` and `vote` (which runs `outcomes` once per program).

`record` runs the benchmark's own tests with the entry point replaced, in the test modules, by
the reference, and prints each call's arguments as `@@INPUT {json}`. `compare` calls the
reference and the patched program on every input of FILE (`{"seen": [...], "generated": [...]}`)
and prints one `@@RESULT {json}`: how many inputs were compared and skipped, and the first
difference. The reference sets the expectations: a generated input on which it raises is outside
the program's domain, one on which it times out tells nothing; both are skipped.

`calls` runs the repository's tests on the buggy program with the changed functions wrapped, and
prints each outermost call's arguments as `@@CALL {json}`, with whether a test that passed made it;
a call made by a test known to fail is cut short (the buggy program may never end there).
`vote` runs every program of a plan (the buggy program, then each plausible patch laid over it) in
a child process of its own, on the plan's inputs and on the functions' docstring examples, and
prints one `@@VOTE {json}`: for each input, which programs gave the same outcome (a label per
program), the inputs too slow to judge (one program timed out where another needed a fifth of the
limit), and the outcomes of the first inputs on which they differ. The child is restarted past
an input that kills it or hangs it in C code, where the per-call alarm cannot reach.

Values travel as JSON with tags: `{"$tuple": [...]}`, `{"$set": [...]}`, `{"$dict": [[k, v]]}`,
`{"$bytes": "latin-1 text"}`, `{"$obj": i}` (object i of the input's `objects` table: `{"type",
"module", "attrs"}`, e.g. QuixBugs' `Node`), `{"$ref": "module:qualname"}` (a function or class that importing
gives back: rebuilt by importing it), `{"$repr": "..."}` (anything else: a lambda, a lock, a file
handle). Generators become lists (a recorded call's own arguments only: one held by another value is
described, not read). A `$repr` argument is rebuilt as an `Opaque` stand-in: a call that never
touches it replays as recorded (a method whose `self` holds a callback); one that touches it ends
`unreplayable`, and that input counts for nothing, as a time-out does.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.machinery
import importlib.util
import itertools
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


class Unreplayable(BaseException):  # as CallTimeout: a `hasattr` or `except Exception` must not hide it
    """The call touched a value the recording could only describe."""


def _touched(self, *args, **kwargs):
    raise Unreplayable(object.__getattribute__(self, "_text"))


# every use of an Opaque raises: attribute access, truth, comparison, iteration, arithmetic, calls
_OPAQUE_USES = ("__getattribute__", "__setattr__", "__delattr__", "__bool__", "__len__", "__iter__",
                "__contains__", "__getitem__", "__setitem__", "__delitem__", "__call__", "__eq__", "__ne__",
                "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__str__", "__repr__", "__format__",
                "__int__", "__float__", "__index__", "__enter__", "__exit__", "__add__", "__radd__", "__sub__",
                "__rsub__", "__mul__", "__rmul__", "__truediv__", "__mod__", "__neg__", "__abs__")
Opaque = type("Opaque", (), {"__slots__": ("_text",), **{name: _touched for name in _OPAQUE_USES}})


def _opaque(text: str):
    value = object.__new__(Opaque)
    object.__setattr__(value, "_text", text)
    return value


# -- values <-> JSON ---------------------------------------------------------------------------
def encode(value, objects: list, memo: dict, depth: int = 0, consume: bool = True):
    """Tagged JSON for `value`. Without `consume`, a generator or iterator is only described: reading
    it would use up what the program is about to read (arguments are recorded before the call)."""
    if depth > 200:
        raise RecursionError("value nested too deeply")
    enc = lambda v: encode(v, objects, memo, depth + 1, consume)  # noqa: E731
    if type(value) is Opaque:  # before isinstance: that asks the stand-in its __class__
        return {"$repr": object.__getattribute__(value, "_text")}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return {"$bytes": value.decode("latin-1")}
    if isinstance(value, list):
        return [enc(v) for v in value[:MAX_ITEMS]]
    if isinstance(value, tuple):
        return {"$tuple": [enc(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"$set": sorted((enc(v) for v in value), key=_key)}
    if isinstance(value, dict):
        return {"$dict": [[enc(k), enc(v)] for k, v in value.items()]}
    if _iterated(value):
        if not consume:
            return {"$repr": _ADDRESS.sub("", repr(value))[:500]}
        items = []
        for v in value:
            if len(items) == MAX_ITEMS:
                break
            items.append(enc(v))
        return items
    if hasattr(value, "__dict__") and type(value).__module__ != "builtins" and not callable(value):
        if id(value) not in memo:  # objects by discovery order: same shape, same table
            memo[id(value)] = len(objects)
            entry = {"type": type(value).__name__, "module": type(value).__module__, "attrs": {}}
            objects.append(entry)
            entry["attrs"] = {k: enc(v) for k, v in sorted(vars(value).items())}
        return {"$obj": memo[id(value)]}
    name = _importable_name(value)
    return {"$ref": name} if name else {"$repr": _ADDRESS.sub("", repr(value))[:500]}


def _importable_name(value) -> str:
    """`module:qualname` for a function or class that the module gives back by that name; else ''."""
    if not isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return ""
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", "")
    try:
        found = _resolve(sys.modules[module], qualname)[2] if module and "<" not in qualname else None
    except (KeyError, AttributeError):
        return ""
    return f"{module}:{qualname}" if found is value else ""


def _imported(name: str):
    """What `_importable_name` named, in this process (the program's own module: its patch too)."""
    module, qualname = name.split(":", 1)
    return _resolve(importlib.import_module(module), qualname)[2]


def _key(x) -> str:
    return json.dumps(x, sort_keys=True)


def encode_call(args, kwargs, consume: bool = True) -> dict:
    objects, memo = [], {}
    return {"args": [encode(a, objects, memo, consume=consume) for a in args],
            "kwargs": {k: encode(v, objects, memo, consume=consume) for k, v in kwargs.items()}, "objects": objects}


def _iterated(value) -> bool:
    return isinstance(value, types.GeneratorType) or type(value).__name__.endswith("iterator")


def recorded(args: tuple, kwargs: dict) -> tuple[str, tuple, dict]:
    """A call's JSON ("" if it cannot be written), taken before it runs, and the arguments to run it
    with: a generator passed as an argument is split in two (one copy recorded, one passed on), and
    one inside another value (an attribute of `self`) is described, not read."""
    def split(v):
        if not _iterated(v):
            return v, v
        mine, theirs = itertools.tee(v)
        return list(itertools.islice(mine, MAX_ITEMS)), theirs

    args_pairs = [split(a) for a in args]
    kwargs_pairs = {k: split(v) for k, v in kwargs.items()}
    try:
        text = json.dumps(encode_call([m for m, _ in args_pairs], {k: m for k, (m, _) in kwargs_pairs.items()},
                                      consume=False))
    except (RecursionError, ValueError):
        text = ""
    return text, tuple(t for _, t in args_pairs), {k: t for k, (_, t) in kwargs_pairs.items()}


def decode_call(inp: dict, resolve=None):
    """Fresh arguments for one call (the program may mutate them). `resolve(type name)` may name
    the program's own class for an object (a method's `self`); else the class its recorded module
    gives by that name (thefuck's `Command`, passed to every rule); else a bare class of that name."""
    classes: dict[str, type] = {}

    def new(o: dict):
        name = o["type"]
        cls = resolve(name) if resolve else None
        if not isinstance(cls, type) and o.get("module") not in (None, "builtins", "__main__"):
            try:
                cls = _imported(f"{o['module']}:{name}")
            except Exception:  # gone, or not importable here: the bare class below
                cls = None
        if isinstance(cls, type):
            # the class's own __new__ first: it may register the instance (tqdm's) or be the only
            # maker of it (a dict subclass); the recorded attributes are set on what it returns
            for make in ([cls.__new__] if cls.__new__ is not object.__new__ else []) + [object.__new__]:
                try:
                    return make(cls)
                except Exception:  # one that needs arguments; object.__new__ of a builtin's subclass
                    pass
        return object.__new__(classes.setdefault(name, type(name, (), {})))

    objects = [new(o) for o in inp.get("objects", [])]

    def dec(v):
        if isinstance(v, list):
            return [dec(x) for x in v]
        if not isinstance(v, dict):
            return v
        if "$tuple" in v:
            return tuple(dec(x) for x in v["$tuple"])
        if "$set" in v:
            return {dec(x) for x in v["$set"]}
        if "$bytes" in v:
            return v["$bytes"].encode("latin-1")
        if "$dict" in v:
            return {dec(k): dec(x) for k, x in v["$dict"]}
        if "$obj" in v:
            return objects[v["$obj"]]
        if "$ref" in v:
            try:
                return _imported(v["$ref"])
            except Exception:  # e.g. ImportError: described, as a `$repr` is
                return _opaque(v["$ref"])
        if "$repr" in v:
            return _opaque(v["$repr"])
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


def run_call(fn, inp: dict, timeout: float, resolve=None, after: bool = False) -> dict:
    """`{"kind": "ok", "value", "objects"}`, `{"kind": "raise", "type"}`, `{"kind": "timeout"}` or
    `{"kind": "unreplayable"}` (it touched an `Opaque` argument).
    With `after`, an `ok` outcome also holds the arguments as the call left them (in-place edits)."""
    try:
        args, kwargs = decode_call(inp, resolve)
    except Exception as exc:  # e.g. an attribute the program's class will not take: no call at all
        return {"kind": "raise", "type": f"cannot rebuild the arguments: {type(exc).__name__}", "seconds": 0.0}
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
            objects: list = []
            value = encode(fn(*args, **kwargs), objects, {})  # inside the limit: generators run here
            out = {"kind": "ok", "value": value, "objects": objects}
            if after:
                out["after"] = encode_call(args, kwargs)
    except CallTimeout:
        out = {"kind": "timeout"}
    except Unreplayable:
        out = {"kind": "unreplayable"}
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
            text, args, kwargs = recorded(args, kwargs)  # before the call: it may mutate them
            if text and len(text) <= MAX_INPUT_CHARS and text not in calls:
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
            if ref["kind"] in ("timeout", "unreplayable") or (ref["kind"] == "raise" and source == "generated"):
                counts["skipped"] += 1
                continue
            # a correct patch may be somewhat slower than the reference; an endless loop is not
            got = run_call(patched, inp, ns.timeout + 10 * ref["seconds"])
            if got["kind"] == "unreplayable":
                counts["skipped"] += 1
                continue
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


# -- the agent's overfitting guard ----------------------------------------------------------------
CALL, TARGET, VOTE = "@@CALL ", "@@TARGET ", "@@VOTE "
LABELS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"  # one character per outcome class
MAX_DETAILS, DETAIL_CHARS = 12, 1500  # the outcomes shown for the first differing inputs
MAX_TESTS_PER_CALL = 20


def _resolve(owner, qualname: str):
    """(the object holding the function, its name, the function) for `f` or `Class.method`."""
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, name, getattr(owner, name)


def _module_of(rel: str):
    """The module the tests imported from file `rel`; else import it under a sys.path entry."""
    path = os.path.realpath(rel)
    for module in list(sys.modules.values()):
        f = getattr(module, "__file__", None)
        if f and os.path.realpath(f) == path:
            return module
    for entry in list(sys.path):
        base = os.path.realpath(entry or ".")
        if path.startswith(base + os.sep) and path.endswith(".py"):
            name = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
            name = name[: -len(".__init__")] if name.endswith(".__init__") else name
            try:
                return importlib.import_module(name)
            except Exception:
                continue
    raise ImportError(f"neither the tests nor a path entry import {rel}")


def _root_of(module) -> str:
    """The sys.path entry the module was imported from, relative to the working directory."""
    path = os.path.dirname(os.path.realpath(module.__file__))
    levels = module.__name__.count(".") + (os.path.basename(module.__file__) == "__init__.py")
    for _ in range(levels):
        path = os.path.dirname(path)
    return os.path.relpath(path)


class _Cut(BaseException):  # not an Exception: the test's own `except Exception` must not eat it
    """A call made by a test that failed before, cut short: its arguments were all that was needed."""


def _briefly(fn, args, kwargs, seconds: float):
    """`fn(*args, **kwargs)` under an alarm of `seconds` (or what is left of the test's own)."""
    def cut(signum, frame):
        raise _Cut()

    try:
        handler = signal.signal(signal.SIGALRM, cut)
    except ValueError:  # not the main thread: no alarm
        return fn(*args, **kwargs)
    left, interval = signal.setitimer(signal.ITIMER_REAL, 0)  # pytest-timeout's alarm, if it set one
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, min(seconds, left) if left else seconds)
    try:
        return fn(*args, **kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler)
        if left:
            signal.setitimer(signal.ITIMER_REAL, max(left - (time.monotonic() - start), 0.001), interval)


def calls(ns) -> int:
    import functools

    import pytest

    with open(ns.targets, encoding="utf-8") as f:
        targets = json.load(f)
    failing: set = set()
    if ns.failing:
        with open(ns.failing, encoding="utf-8") as f:
            failing = set(json.load(f))
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 2000))  # each wrapped frame costs one more
    seen: list[dict] = [{} for _ in targets]  # per target: call text -> tests that made it
    depth = [0] * len(targets)
    info = [{"index": i, "module": "", "root": "", "error": ""} for i in range(len(targets))]
    outcomes: dict[str, str] = {}

    def current_test() -> str:
        return os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]

    def wrap(i: int, fn):
        @functools.wraps(fn)
        def recorder(*args, **kwargs):
            if depth[i] == 0:  # the outermost call only: a recursive call is the function's own business
                text, args, kwargs = recorded(args, kwargs)  # before the call: it may mutate them
                if text and len(text) <= MAX_INPUT_CHARS and \
                        (text in seen[i] or len(seen[i]) < MAX_INPUTS):
                    tests = seen[i].setdefault(text, set())
                    if len(tests) < MAX_TESTS_PER_CALL:
                        tests.add(current_test())
            depth[i] += 1
            try:
                if depth[i] == 1 and failing and current_test() in failing:  # it fails anyway: do not wait
                    return _briefly(fn, args, kwargs, ns.short)  # for a buggy program that never ends
                return fn(*args, **kwargs)
            finally:
                depth[i] -= 1

        return recorder

    class Wrap:
        @pytest.hookimpl(trylast=True)
        def pytest_collection_modifyitems(self, items):
            for i, t in enumerate(targets):
                try:
                    module = _module_of(t["file"])
                    owner, name, fn = _resolve(module, t["qualname"])
                    raw = vars(owner).get(name) if isinstance(owner, type) else fn
                    if isinstance(raw, classmethod):
                        raise TypeError("a classmethod: its class argument cannot be replayed")
                    if not callable(fn) or isinstance(fn, type):
                        raise TypeError(f"{t['qualname']} is not a function")
                    recorder = wrap(i, fn)
                    setattr(owner, name, staticmethod(recorder) if isinstance(raw, staticmethod) else recorder)
                    if owner is module:  # copies made by `from module import f`, in the tests and elsewhere
                        for other in list(sys.modules.values()):
                            try:
                                if other is not module and vars(other).get(name) is fn:
                                    setattr(other, name, recorder)
                            except Exception:
                                pass
                    info[i].update(module=module.__name__, root=_root_of(module))
                except Exception as exc:
                    info[i]["error"] = f"{type(exc).__name__}: {exc}"[:300]

        def pytest_runtest_logreport(self, report):
            if report.failed:
                outcomes[report.nodeid] = "failed"
            elif report.when == "call" and outcomes.get(report.nodeid) != "failed":
                outcomes[report.nodeid] = "passed" if report.passed else "skipped"

    pytest.main(["-q", "-p", "no:cacheprovider", "-o", f"timeout={ns.per_test}", *ns.pytest_args],
                plugins=[Wrap()])
    for t in info:
        print(TARGET + json.dumps(t))
    share = MAX_RECORD_CHARS // max(1, len(targets))
    for i, calls_of in enumerate(seen):
        rows = [(any(outcomes.get(t) == "passed" for t in tests), text) for text, tests in calls_of.items()]
        used = 0
        for passed, text in sorted(rows, key=lambda r: not r[0]):  # the calls of passing tests first
            line = f'{{"target": {i}, "passed": {json.dumps(passed)}, "call": {text}}}'
            used += len(line)
            if used > share:
                break
            print(CALL + line)
    return 0


class _Variant(importlib.machinery.SourceFileLoader):
    """Loads a module's source from a variant file, keeping its name, `__file__` and package."""

    def __init__(self, name, path, variant):
        super().__init__(name, path)
        self.variant = variant

    def get_data(self, path):
        if path == self.path:
            with open(self.variant, "rb") as f:
                return f.read()
        return super().get_data(path)

    def path_stats(self, path):
        raise OSError("no bytecode cache for a variant")  # the original's .pyc must not be used


class _Overrides:
    """A meta-path finder: the files of one program variant replace the tree's, import by import."""

    def __init__(self, files: dict):
        self.files = {os.path.realpath(k): os.path.abspath(v) for k, v in files.items()}

    def find_spec(self, name, path=None, target=None):
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or not spec.origin or os.path.realpath(spec.origin) not in self.files:
            return None
        loader = _Variant(name, spec.origin, self.files[os.path.realpath(spec.origin)])
        return importlib.util.spec_from_file_location(
            name, spec.origin, loader=loader, submodule_search_locations=spec.submodule_search_locations)


def outcomes(ns) -> int:
    """One program of the plan: its docstring examples, then its outcome on each input it is given."""
    with open(ns.plan, encoding="utf-8") as f:
        plan = json.load(f)
    out = open(ns.out, "a", encoding="utf-8")

    def emit(obj) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    if plan["programs"][ns.program]["files"]:
        sys.meta_path.insert(0, _Overrides(plan["programs"][ns.program]["files"]))
    for t in plan["targets"]:
        root = os.path.abspath(t.get("root") or ".")
        if root not in sys.path:
            sys.path.insert(0, root)
    signal.signal(signal.SIGALRM, _alarm)
    functions = []
    for t in plan["targets"]:
        if not t["module"]:  # the recording could not wrap it: no input of the plan calls it
            functions.append(None)
            continue
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                module = importlib.import_module(t["module"])
            functions.append((module, _resolve(module, t["qualname"])[2]))
        except BaseException as exc:
            functions.append(None)
            emit({"error": f"{t['qualname']}: {type(exc).__name__}: {exc}"[:300]})
    emit({"ready": True})
    timeout = plan["timeout"]
    if ns.docs:
        for ti, t in enumerate(plan["targets"]):
            if functions[ti] is not None:
                for k, ok, got in _examples(functions[ti][0], t.get("examples") or [], timeout):
                    emit({"doc": [ti, k, ok, got]})
    emit({"inputs": True})
    for idx in plan["runs"][ns.program][ns.skip:]:
        inp = plan["inputs"][idx]
        found = functions[inp["target"]]
        if found is None:
            o = {"kind": "raise", "type": "ImportError"}
        else:
            module, fn = found

            def resolve(name, module=module):
                return getattr(module, name, None)

            o = run_call(fn, inp["call"], timeout, resolve=resolve, after=True)
        emit({"i": idx, "o": _bare(o), "s": round(o.get("seconds", 0.0), 4)})
    emit({"end": True})
    return 0


def _examples(module, groups: list, timeout: float):
    """(example number, passed, what it printed) for each docstring example; the examples of one
    docstring share their names, as doctest runs them."""
    import doctest

    k = 0
    for group in groups:
        globs = dict(vars(module))
        for ex in group:
            example = doctest.Example(ex["source"], ex["want"], exc_msg=ex.get("exc_msg"))
            test = doctest.DocTest([example], globs, "example", "<docstring>", 0, None)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
            report: list[str] = []
            signal.setitimer(signal.ITIMER_REAL, timeout * 2)
            try:
                failed = runner.run(test, out=report.append, clear_globs=False).failed
            except BaseException:  # the alarm outside the example's own code
                failed, report = 1, ["does not finish in time"]
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            got = "".join(report)
            got = got.split("Got:", 1)[1] if "Got:" in got else got
            yield k, not failed, " ".join(got.split())[-300:]
            k += 1


def _program(ns, plan: dict, p: int, deadline: float) -> dict:
    """Run program `p` of the plan in child processes until its inputs are done or its time is up."""
    import subprocess
    import tempfile

    todo = plan["runs"][p]
    results: dict[int, dict] = {}
    seconds: dict[int, float] = {}
    docs: dict[str, list] = {}
    errors: list[str] = []
    skip, restarts, cut = 0, 0, False
    examples = p > 0  # the buggy program's own examples are not asked about: its failing them is the bug
    quiet = plan["timeout"] * 4 + 2  # seconds without progress after which a child is taken as hung
    with tempfile.TemporaryDirectory(prefix="ra-guard-") as tmp:
        while True:
            path = os.path.join(tmp, f"out-{restarts}.jsonl")
            open(path, "w").close()
            child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "outcomes", "--plan", ns.plan,
                                      "--program", str(p), "--skip", str(skip), "--out", path,
                                      *(["--docs"] if examples else [])],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
            size, moved, ready = 0, time.monotonic(), False
            while child.poll() is None:
                time.sleep(0.01)
                now = time.monotonic()
                if os.path.getsize(path) != size:
                    size, moved = os.path.getsize(path), now
                    with open(path, encoding="utf-8") as f:
                        ready = ready or '"ready"' in f.read(8000)
                if now > deadline or (ready and now - moved > quiet):
                    break
            with contextlib.suppress(OSError):  # a hung child, and whatever any child left behind
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            ended = loaded = at_inputs = False
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # the last line of a killed child
                    if "i" in row:
                        results[row["i"]], seconds[row["i"]] = row["o"], row.get("s", 0.0)
                    elif "doc" in row:
                        docs[f"{row['doc'][0]}:{row['doc'][1]}"] = row["doc"][2:]
                    elif "error" in row and row["error"] not in errors:
                        errors.append(row["error"])
                    loaded = loaded or row.get("ready", False)
                    at_inputs = at_inputs or row.get("inputs", False)
                    ended = ended or row.get("end", False)
            if ended:
                break
            skip = next((n for n, idx in enumerate(todo) if idx not in results), len(todo))
            if not loaded:
                errors.append("the program could not be loaded: its process ended first")
                cut = skip < len(todo)
                break
            if time.monotonic() > deadline:
                cut = skip < len(todo)
                break
            if not at_inputs:  # a docstring example stopped it: go on without the examples
                errors.append("a docstring example stopped the process")
            elif skip < len(todo):  # it died or hung on this input: that is its outcome there
                results[todo[skip]] = {"kind": "crash"}
                skip += 1
            examples = False
            restarts += 1
            if skip >= len(todo) or restarts > 5:
                cut = skip < len(todo)
                if restarts > 5:
                    errors.append("stopped after 5 crashes")
                break
    return {"results": results, "seconds": seconds, "docs": docs, "errors": errors, "cut": cut}


def vote(ns) -> int:
    with open(ns.plan, encoding="utf-8") as f:
        plan = json.load(f)
    start = time.monotonic()
    deadline = start + plan["budget"]
    programs = []
    for p in range(len(plan["programs"])):
        share = (deadline - time.monotonic()) / (len(plan["programs"]) - p)  # a slow program eats only its share
        programs.append(_program(ns, plan, p, time.monotonic() + max(share, 0.5)))
    labels, kinds, details, patterns, slow = [], [], [], set(), []
    for i in range(len(plan["inputs"])):
        # a time-out where another program needed a good part of the limit too says "slow", not "different"
        ends = [(prog["results"].get(i) or {}).get("kind") for prog in programs]
        took = [prog["seconds"].get(i, 0.0) for prog, end in zip(programs, ends) if end in ("ok", "raise")]
        if "timeout" in ends and took and max(took) > plan["timeout"] / 5:
            slow.append(i)
        reps: list[dict] = []
        lab = kind = ""
        shown = []
        for prog in programs:
            o = prog["results"].get(i)
            if o is None:
                lab, kind = lab + "-", kind + "-"
                shown.append(None)
                continue
            j = next((j for j, r in enumerate(reps) if same(o, r)), None)
            if j is None:
                reps.append(o)
                j = len(reps) - 1
            lab, kind = lab + LABELS[min(j, len(LABELS) - 1)], kind + o["kind"][0]
            shown.append(o)
        labels.append(lab)
        kinds.append(kind)
        present = {c for c in lab if c != "-"}
        if len(present) > 1 and lab not in patterns and len(details) < MAX_DETAILS:
            patterns.add(lab)
            details.append({"i": i, "outcomes": [_small(o, left) for o, left in zip(shown, _left(shown))]})
    docs = [prog["docs"] for prog in programs]
    print(VOTE + json.dumps({"labels": labels, "kinds": kinds, "slow": slow, "docs": docs, "details": details,
                             "errors": [prog["errors"] for prog in programs],
                             "cut": [prog["cut"] for prog in programs],
                             "seconds": round(time.monotonic() - start, 3)}))
    return 0


def _small(out: dict | None, left: dict | None = None):
    """What the caller got back, and where the call left its arguments unlike another program did."""
    if out is None:
        return None
    out = {k: v for k, v in out.items() if k != "after"}
    if left:
        out["leaves"] = left
    text = json.dumps(out)
    return out if len(text) <= DETAIL_CHARS else {"kind": out["kind"], "truncated": text[:DETAIL_CHARS]}


UNSET = {"$unset": True}  # an attribute one program's call left unset


def _places(after: dict) -> dict:
    """The arguments as a call left them, by place: `args[0]`, `key=`, `#0.total` (object 0's)."""
    flat = {f"args[{n}]": v for n, v in enumerate(after.get("args") or [])}
    flat.update({f"{k}=": v for k, v in (after.get("kwargs") or {}).items()})
    for n, o in enumerate(after.get("objects") or []):
        flat.update({f"#{n}.{k}": v for k, v in o["attrs"].items()})
    return flat


def _left(outs: list) -> list:
    """For one input's outcomes: each `ok` one's values at the (at most 3) places where the calls left
    the arguments differently, e.g. `{"#0.pos": 0}` against `{"#0.pos": UNSET}`; None elsewhere."""
    flats = [_places(o["after"]) if o and o.get("kind") == "ok" and "after" in o else None for o in outs]
    known = [f for f in flats if f is not None]
    places = sorted({k for f in known for k in f})
    differ = [k for k in places if any(not same(f.get(k, UNSET), known[0].get(k, UNSET)) for f in known)][:3]
    return [{k: f.get(k, UNSET) for k in differ} if f is not None and differ else None for f in flats]


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
    cal = sub.add_parser("calls")
    cal.add_argument("--targets", required=True)
    cal.add_argument("--per-test", type=float, default=60)
    cal.add_argument("--failing", default="", help="JSON list of the node ids that failed before")
    cal.add_argument("--short", type=float, default=1.0, help="seconds a call of a failing test may take")
    cal.add_argument("pytest_args", nargs="*")
    vot = sub.add_parser("vote")
    vot.add_argument("--plan", required=True)
    out = sub.add_parser("outcomes")
    out.add_argument("--plan", required=True)
    out.add_argument("--program", type=int, required=True)
    out.add_argument("--skip", type=int, default=0)
    out.add_argument("--out", required=True)
    out.add_argument("--docs", action="store_true")
    ns = p.parse_args(argv)
    return {"record": record, "compare": compare, "calls": calls, "vote": vote, "outcomes": outcomes}[ns.command](ns)


if __name__ == "__main__":
    sys.exit(main())
