"""Execution reasoning, measured: CRUXEval's two tasks on a repository's own functions, scored by running.

For each repository of a fixed set (QuixBugs' 40 programs, correct versions; mpmath's core
functions, a package the `train` extra brings, with its own tests), the repository's tests run in
the sandbox with every module-level function of its source files wrapped by the guard's recorder
(`call_runner.py calls`), which keeps the arguments of each outermost call. A call becomes an item
when a test that passed made it, its arguments and its return value are Python literals no longer
than `MAX_SHOWN` characters, and two runs return the same value. Items are chosen by a seed: per
function, the recorded calls sorted by their text, shuffled by `seed`, the first `per_function`
usable ones; then at most `limit` per repository, again by the seed.

The model is asked twice per item, greedily, with the function's source (prompts/reasoning.j2):
- output prediction: what does `f(ARGS)` return? Correct when the value it gives is the value the
  call returned;
- input prediction: which call of `f` returns VALUE? Correct when the function, run on the
  arguments it gives, returns VALUE (any input that does is right).
Both are judged by `sandbox/tools/reasoning_runner.py` inside the sandbox: the model's text is read
there with `ast.literal_eval` and the function runs there; on the host it is only parsed into its
parts (`parse_answer`). Values compare as the guard compares them (a tuple is not a list; floats
within a tolerance).

`evaluate(model, ...)` is the function to call (the CLI's `repair-agent eval reasoning` and
`benchmarks/reasoning_eval.py` call it); its result is JSON: the items with each prompt, answer and
verdict, the scores, the model, the settings and the code commit.
"""

from __future__ import annotations

import ast
import json
import random
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .. import __version__, prompts
from ..errors import BadInput, SandboxError
from ..judge.differential import lines, tail
from ..judge.guard import definitions
from ..llm.client import Model, Sampling
from ..llm.profiles import Profile, profile_for

REPOSITORIES = ("quixbugs", "mpmath")
HARNESS = ".repair-agent-reasoning"  # the plans, in the scratch tree while the sandbox runs them
CALL, TARGET, RUN = "@@CALL ", "@@TARGET ", "@@RUN "  # as the sandbox tools print them
MAX_SHOWN = 60  # characters of an item's arguments, and of its value, as the model reads them
CANDIDATES = 8  # recorded calls per function, in the seed's order, run to find usable ones
CALL_TIMEOUT_S = 2.0
CHUNK = 20  # items per sandbox run: the output the sandbox keeps (64 KiB) holds them
MAX_TOKENS = 128  # a value or a call (or CRUXEval's assertion)
STOP = "[/ANSWER]"
TASKS = {"output": "output_prediction", "input": "input_prediction"}  # task -> its record in an item


@dataclass
class Repository:
    """A tree to record calls in: `files` (relative path -> text), the pytest arguments that run its
    tests, and the files whose functions are asked about."""

    name: str
    files: dict[str, str]
    test_args: list[str]
    sources: list[str]
    note: str


# -- the fixed set of repositories -----------------------------------------------------------------
def quixbugs() -> Repository:
    """The 40 QuixBugs programs in their correct versions, with their tests and support files (the
    shipped data's layout; the buggy programs are not in the tree)."""
    from ..bench.datasets import load_quixbugs, reference_for

    files: dict[str, str] = {}
    tests, sources = [], []
    for task in load_quixbugs():
        path, fixed, _ = reference_for(task)
        files.update(task.files)
        files[path] = fixed
        sources.append(path)
        tests.append(task.meta["test_path"])
    return Repository("quixbugs", files, tests, sources,
                      "QuixBugs' 40 programs, correct versions (repair_agent/data/quixbugs), and their tests")


MPMATH_SOURCES = ("libmp/libintmath.py", "libmp/libmpf.py")  # integers, and floats as (sign, man, exp, bc)
MPMATH_TESTS = tuple(f"tests/test_{n}.py" for n in
                     ("bitwise", "division", "basic_ops", "convert", "power", "functions", "gammazeta"))


def mpmath() -> Repository:
    """mpmath's core functions on integers and on floats as tuples (`mpmath/libmp/libintmath.py`,
    `libmpf.py`) and tests mpmath ships that reach them, from the installed package (pure Python;
    the `train` extra brings it, through torch and sympy)."""
    import importlib.util

    spec = importlib.util.find_spec("mpmath")
    if spec is None or not spec.origin:
        raise BadInput("mpmath is not installed (it comes with the train extra: pip install -e '.[train]')")
    root = Path(spec.origin).parent
    files = {f"mpmath/{p.relative_to(root)}": p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py"))
             if "__pycache__" not in p.parts}
    from importlib.metadata import version

    return Repository("mpmath", files, [f"mpmath/{t}" for t in MPMATH_TESTS], [f"mpmath/{s}" for s in MPMATH_SOURCES],
                      f"mpmath {version('mpmath')} (installed): {', '.join(MPMATH_SOURCES)}, with its own "
                      f"{', '.join(MPMATH_TESTS)}")


def repository(name: str) -> Repository:
    if name not in REPOSITORIES:
        raise BadInput(f"unknown repository {name!r}; choose from {', '.join(REPOSITORIES)}")
    return {"quixbugs": quixbugs, "mpmath": mpmath}[name]()


# -- items -----------------------------------------------------------------------------------------
def shown_code(source: str, name: str) -> str:
    """The function's own source, after its module's import lines (what it needs to be read)."""
    tree = ast.parse(source)
    node = dict(definitions(tree))[name]
    imports = [ast.get_source_segment(source, n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    body = "\n".join(source.splitlines()[start - 1:node.end_lineno])
    return "\n".join(imports) + ("\n\n" if imports else "") + body


def targets_of(repo: Repository) -> list[dict]:
    """Every module-level function of the repository's source files (methods take `self`: no literal)."""
    out = []
    for rel in repo.sources:
        for name, _ in definitions(ast.parse(repo.files[rel])):
            if "." not in name:
                out.append({"file": rel, "qualname": name})
    return out


def shuffled(keys: list[str], seed: int, salt: str) -> list[str]:
    """`keys` sorted, then shuffled by `seed` and `salt`: the same order whatever order they came in."""
    order = sorted(keys)
    random.Random(f"{seed}:{salt}").shuffle(order)
    return order


def select(usable: dict, per_function: int, limit: int | None, seed: int, salt: str = "") -> list[tuple]:
    """(function, key) pairs: the first `per_function` keys of each function (they come in the seed's
    order), then at most `limit` of all of them, chosen by the seed and kept in order."""
    picked = [(fn, key) for fn in usable for key in usable[fn][:per_function]]
    if limit is not None and len(picked) > limit:
        keep = set(random.Random(f"{seed}:{salt}:limit").sample(range(len(picked)), limit))
        picked = [p for i, p in enumerate(picked) if i in keep]
    return picked


def collect(repo: Repository, box, seed: int, per_function: int, limit: int | None,
            log: Callable[[str], None]) -> tuple[list[dict], dict]:
    """The repository's items (see the module's docstring) and what was recorded, from its tests."""
    targets = targets_of(repo)
    harness = Path(box.workdir) / HARNESS
    harness.mkdir(exist_ok=True)
    (harness / "targets.json").write_text(json.dumps(targets))
    started = time.monotonic()
    rc, text = box.run([box.python, box.tool("call_runner.py"), "calls", "--targets", f"{HARNESS}/targets.json",
                        "--per-test", "30", "--", *repo.test_args], timeout=900)
    found = {t["index"]: t for t in lines(text, TARGET)}
    if not found:
        raise SandboxError(f"{repo.name}: recording the calls failed (exit code {rc}): {tail(text)}")
    for i, t in enumerate(targets):
        t.update({k: found.get(i, {}).get(k, "") for k in ("module", "root", "error")})
    calls: dict[int, dict[str, dict]] = {}  # target -> call text -> call, for calls of passing tests
    for c in lines(text, CALL):
        if c["passed"] and not c["call"].get("objects"):
            calls.setdefault(c["target"], {})[json.dumps(c["call"], sort_keys=True)] = c["call"]
    log(f"{repo.name}: {sum(map(len, calls.values()))} calls into {len(calls)} of {len(targets)} functions "
        f"recorded in {time.monotonic() - started:.0f}s")
    tried = [(i, key) for i in sorted(calls)
             for key in shuffled(list(calls[i]), seed, f"{repo.name}:{targets[i]['qualname']}")[:CANDIDATES]]
    runs = run_items(box, targets, [{"target": i, "call": calls[i][key]} for i, key in tried])
    usable: dict[int, list[str]] = {}  # target -> its usable calls, in the seed's order
    truth: dict[tuple[int, str], dict] = {}
    for (i, key), out in zip(tried, runs):
        if out.get("plain") and len(out["args"]) <= MAX_SHOWN and len(out["text"]) <= MAX_SHOWN:
            usable.setdefault(i, []).append(key)
            truth[i, key] = out
    items = []
    for i, key in select(usable, per_function, limit, seed, salt=repo.name):
        t, out = targets[i], truth[i, key]
        items.append({"id": f"{repo.name}:{t['qualname']}:{len(items)}", "repository": repo.name,
                      "file": t["file"], "function": t["qualname"], "target": t,
                      "code": shown_code(repo.files[t["file"]], t["qualname"]), "call": calls[i][key],
                      "input": out["args"], "output": out["text"], "value": out["value"]})
    recorded = {"functions": len(targets), "functions_called": len(calls),
                "calls": sum(map(len, calls.values())), "functions_usable": len(usable),
                "record_s": round(time.monotonic() - started, 1)}
    return items, recorded


def run_items(box, targets: list[dict], items: list[dict]) -> list[dict]:
    """What `reasoning_runner.py` says of each item, run in the sandbox `CHUNK` at a time; an item on
    which the run died (a crash, the memory limit) is marked `crash` and the rest go on."""
    plan_targets = [{k: t.get(k, "") for k in ("module", "qualname", "root")} for t in targets]
    harness = Path(box.workdir) / HARNESS
    harness.mkdir(exist_ok=True)
    (harness / "plan.json").write_text(json.dumps({"targets": plan_targets, "timeout": CALL_TIMEOUT_S,
                                                   "items": items}))
    results: dict[int, dict] = {}
    start = 0
    while start < len(items):
        count = min(CHUNK, len(items) - start)
        rc, text = box.run([box.python, box.tool("reasoning_runner.py"), "--plan", f"{HARNESS}/plan.json",
                            "--skip", str(start), "--count", str(count)],
                           timeout=60 + 3 * CALL_TIMEOUT_S * count)
        for row in lines(text, RUN):
            results[row.pop("i")] = row
        missing = next((i for i in range(start, start + count) if i not in results), None)
        if missing is not None:
            results[missing] = {"kind": "crash", "why": f"the run ended here (exit code {rc}): {tail(text)}"}
            start = missing + 1
        else:
            start += count
    return [results[i] for i in range(len(items))]


# -- asking ----------------------------------------------------------------------------------------
def messages(item: dict, task: str) -> list[dict]:
    return [{"role": "user", "content": prompts.render("reasoning.j2", task=task, code=item["code"],
                                                        function=item["function"], input=item["input"],
                                                        output=item["output"])}]


def parse_answer(text: str, name: str, task: str) -> dict:
    """The model's answer in parts, never evaluated: `{"literal": source}` (output prediction) or
    `{"args": [source], "kwargs": {name: source}}` (input prediction), or `{"error": why}`.

    The answer follows `[ANSWER]` (or is the whole text), in a code fence or not: the value, or the
    call `NAME(ARGS)`; or, in CRUXEval's form, an assertion `assert NAME(ARGS) == VALUE`. The first
    line that parses as one of them is the answer."""
    body = text.split("[ANSWER]", 1)[1] if "[ANSWER]" in text else text
    rows = [ln.strip() for ln in body.split(STOP, 1)[0].splitlines()]
    for ln in (ln for ln in rows if ln and not ln.startswith("```")):
        node = _statement(ln)
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1 \
                and isinstance(node.test.ops[0], ast.Eq):
            call, value = node.test.left, node.test.comparators[0]
        elif isinstance(node, ast.Expr):
            call = value = node.value
        else:
            continue
        if task == "output":
            return {"literal": ast.get_source_segment(ln, value)}
        if isinstance(call, ast.Call):
            return _arguments(ln, call, name)
    return {"error": "no value in the answer" if task == "output" else f"no call of {name} in the answer"}


def _statement(line: str):
    try:
        tree = ast.parse(line)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    return tree.body[0] if len(tree.body) == 1 else None


def _arguments(line: str, call, name: str) -> dict:
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == name):
        return {"error": f"the assertion does not call {name}"}
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return {"error": "starred arguments"}
    return {"args": [ast.get_source_segment(line, a) for a in call.args],
            "kwargs": {k.arg: ast.get_source_segment(line, k.value) for k in call.keywords}}


def ask(model: Model, profile: Profile, item: dict, task: str) -> dict:
    msgs = messages(item, task)
    sampling = Sampling(n=1, temperature=0.0, top_p=1.0, max_tokens=MAX_TOKENS, stop=[STOP, *profile.stop], seed=0)
    gen = model.generate(profile.render(msgs), sampling)
    answer = gen.completions[0]["text"] if gen.completions else ""
    return {"prompt": msgs[0]["content"], "answer": answer, "parsed": parse_answer(answer, item["function"], task),
            "tokens": {"prompt": gen.prompt_tokens, "completion": gen.completion_tokens},
            "seconds": round(gen.seconds, 2)}


# -- scoring ---------------------------------------------------------------------------------------
def score(box, items: list[dict]) -> None:
    """Set each task's `verdict` (`correct`, and `why` when not) by running it in the sandbox."""
    checks, where = [], []
    for n, item in enumerate(items):
        for task, key in TASKS.items():
            parsed = item[key]["parsed"]
            if "error" in parsed:
                item[key]["verdict"] = {"correct": False, "why": parsed["error"]}
                continue
            if task == "output":
                checks.append({"literal": parsed["literal"], "expect": item["value"]})
            else:
                checks.append({"target": n, "args": parsed["args"], "kwargs": parsed["kwargs"], "expect": item["value"]})
            where.append((item, task))
    runs = run_items(box, [it["target"] for it in items], checks)
    for (item, task), out in zip(where, runs):
        item[TASKS[task]]["verdict"] = {"correct": bool(out.get("same"))} | ({} if out.get("same") else
                                                                            {"why": _why(out, task)})


def _why(out: dict, task: str) -> str:
    from ..judge.differential import show

    if out["kind"] in ("invalid", "crash"):
        return out.get("why", out["kind"])
    if out["kind"] == "raise":
        return f"the function raises {out['type']} on that input"
    if out["kind"] == "timeout":
        return "the function does not finish in time on that input"
    if task == "output":
        return f"{show(out['value'])} is not the value the call returned"
    return f"the function returns {show(out['value'])} on that input"


def scores(items: list[dict]) -> dict:
    """Per task (and per repository, per task): how many items, how many right, the share in percent."""
    def rate(rows: list[dict], task: str) -> dict:
        right = sum(r[TASKS[task]]["verdict"]["correct"] for r in rows)
        return {"correct": right, "items": len(rows), "score": round(100 * right / len(rows), 1) if rows else None}

    out = {task: rate(items, task) for task in TASKS}
    for name in sorted({it["repository"] for it in items}):
        rows = [it for it in items if it["repository"] == name]
        out[name] = {task: rate(rows, task) for task in TASKS}
    return out


# -- the whole evaluation --------------------------------------------------------------------------
def evaluate(model: Model, repositories: Iterable[str | Repository] = REPOSITORIES, seed: int = 0,
             per_function: int = 1, limit: int | None = None, profile: str | None = None,
             log: Callable[[str], None] = lambda m: None) -> dict:
    """Execution reasoning of `model` (any server that repair_agent.llm reaches) on the fixed set of
    repositories (names), or on `Repository`s of one's own: items chosen by `seed` (at most
    `per_function` per function and `limit` per repository), each asked both ways and scored by
    running in the Docker sandbox. The result is JSON-ready."""
    chosen = profile_for(model.name, profile)
    started = time.monotonic()
    items: list[dict] = []
    recorded: dict[str, dict] = {}
    for repo in repositories:
        repo = repository(repo) if isinstance(repo, str) else repo
        found, recorded[repo.name] = _evaluate_repository(model, chosen, repo, seed, per_function, limit, log)
        items += found
    return {"model": model.name, "profile": chosen.name, "code": code_version(), "seed": seed,
            "per_function": per_function, "limit": limit, "repositories": recorded,
            "scores": scores(items), "seconds": round(time.monotonic() - started, 1),
            "tokens": {k: sum(it[t]["tokens"][k] for it in items for t in TASKS.values())
                       for k in ("prompt", "completion")},
            "items": items}


@contextmanager
def sandboxed(repo: Repository, log: Callable[[str], None] = lambda m: None) -> Iterator:
    """A Docker sandbox on a scratch copy of the repository's files (never the local sandbox: the
    functions run on the model's inputs)."""
    from ..sandbox import DockerSandbox

    with tempfile.TemporaryDirectory(prefix="ra-reasoning-") as tmp:
        tree = Path(tmp) / repo.name
        for rel, text in repo.files.items():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            (tree / rel).write_text(text, encoding="utf-8")
        box = DockerSandbox(tree, log=log, use_worker=False, install_project=False)
        try:
            yield box
        finally:
            box.close()


def _evaluate_repository(model: Model, profile: Profile, repo: Repository, seed: int, per_function: int,
                         limit: int | None, log: Callable[[str], None]) -> tuple[list[dict], dict]:
    with sandboxed(repo, log) as box:
        items, recorded = collect(repo, box, seed, per_function, limit, log)
        asked = time.monotonic()
        for item in items:
            for task, key in TASKS.items():
                item[key] = ask(model, profile, item, task)
            log(f"{item['id']}: asked ({sum(item[k]['seconds'] for k in TASKS.values()):.1f}s)")
        recorded["ask_s"] = round(time.monotonic() - asked, 1)
        scored = time.monotonic()
        score(box, items)
        recorded["score_s"] = round(time.monotonic() - scored, 1)
    for item in items:
        item.pop("target")
        log(f"{item['id']}: " + ", ".join(f"{task} {'right' if item[key]['verdict']['correct'] else 'wrong'}"
                                          for task, key in TASKS.items()))
    return items, {**recorded, "items": len(items), "note": repo.note}


def code_version() -> str:
    """`git describe --always --dirty` of this checkout, else the package's version."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).resolve().parents[2],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return __version__
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else __version__
