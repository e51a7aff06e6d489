"""Choosing among plausible patches: every one passes the tests, so ask what else they do.

A patch that passes the tests may still be wrong: it overfits them. With no reference program to
ask, the guard asks the programs themselves, inside the sandbox (patched code is untrusted):

- the argument values of the calls into the changed functions, recorded while the repository's
  tests run on the buggy program, and a few hundred more generated from them with hypothesis (the
  generator the benchmark's correctness check uses, `repair_agent/judge/differential.py`);
- every plausible patch runs on all of them, each call under a time limit, and a patch whose
  outcome (the value returned, the exception type raised, the arguments as the call left them)
  differs from a strict majority's is ranked down (two one-line edits of the same line that always
  agree are one fix written twice, and vote once); a generated input that most patches reject is
  outside the domain and counts for nothing;
- the buggy program and each patch run on the calls made by the tests that passed before any
  patch: there the buggy program was right, and a patch that changes behaviour is ranked down;
- the changed function's docstring examples (doctest `>>>` lines, and those of the module's own
  docstrings that call it) count as extra tests.

Among equals the smallest patch wins (fewest changed lines, then fewest characters inserted or
deleted), then the cheaper source, then the one found first: a one-token operator change is a likelier human fix
than a new branch. A suspect patch (`antipatterns.py`) comes after every clean one. The verdict's `confidence` is `high` when the plausible patches agree on every
input and none changes what the passing tests saw or fails a docstring example (a single patch is
judged by the last two alone, and is `high` when nothing speaks against it, which the reason then
says), `low` otherwise, with the first input that shows it, and `unknown`, with the reason, when the
guard could not judge (no function changed, nothing recorded, no input generated for several
patches, the budget spent, the sandbox failing). A failing guard never costs the fix: the patches
are still ranked as above.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
import shutil
import time
from collections import Counter
from pathlib import Path

from .. import patching
from ..config import STRATEGIES
from ..errors import RepairAgentError
from ..localize.sbfl import covering_tests
from ..policy import candidate_limits, candidate_timeout
from ..syntax import first_line
from .differential import call_text, clip, generate, lines, outcome_text, tail

GUARD_DIR = ".repair-agent-guard"  # the plan and the patched files, in the scratch tree while the guard runs
BUDGET_S = 20.0  # seconds per task: recording the calls, generating inputs, running the programs
CALL_TIMEOUT_S = 0.5  # per call of one program on one input
EXAMPLES = 200  # generated inputs per task, shared by the changed functions
CALL, TARGET, VOTE = "@@CALL ", "@@TARGET ", "@@VOTE "  # as sandbox/tools/call_runner.py prints them
CONFIDENCE = ("low", "unknown", "high")  # in order: `ci --min-confidence` opens a pull request at or above


class Unjudged(Exception):
    """The guard could not judge the patches; the message says why."""


def rank(fixes: list[dict]) -> list[dict]:
    """The plausible fixes, the most natural first; a suspect one (an anti-pattern) after every clean one."""
    return sorted(fixes, key=lambda f: (bool(f.get("suspect")), size(f["patch"]),
                                        STRATEGIES.index(f["source"]) if f["source"] in STRATEGIES else len(STRATEGIES)))


def size(patch: str) -> tuple[int, int]:
    """(changed lines, characters inserted or deleted within them) of a unified diff: `mid` ->
    `mid + 1` (4) is smaller than `start == end` -> `(start + 1) == end` (6), whatever the lines' lengths."""
    body = [ln for ln in patch.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    old = "\n".join(ln[1:].strip() for ln in body if ln[0] == "-")
    new = "\n".join(ln[1:].strip() for ln in body if ln[0] == "+")
    ops = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    return len(body), sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in ops if tag != "equal")


def at_least(confidence: str | None, threshold: str) -> bool:
    """Is `confidence` at or above `threshold` (low < unknown < high)? None counts as unknown."""
    return CONFIDENCE.index(confidence if confidence in CONFIDENCE else "unknown") >= CONFIDENCE.index(threshold)


# -- the guard -------------------------------------------------------------------------------------
def choose(fixes: list[dict], state, deps, budget: float | None = None) -> dict:
    """`{"ranked": fixes best first (each with its "guard" counts), "confidence": "high" | "low" |
    "unknown", "reason", "disagreement": {...} | None, "checked": what was run}`."""
    started = time.monotonic()
    budget = float(budget or getattr(deps.settings, "guard_budget_s", None) or BUDGET_S)
    ranked = [{**f, "found": n} for n, f in enumerate(fixes)]
    ranked = rank(ranked)
    out = {"ranked": ranked, "confidence": "unknown", "reason": "", "disagreement": None, "checked": {}}
    if not ranked:
        return {**out, "reason": "no plausible patch"}
    harness = Path(deps.workdir) / GUARD_DIR
    try:
        out.update(_judge(ranked, state, deps, started + budget, harness))
    except Unjudged as exc:
        out["reason"] = f"the guard could not judge the patches: {exc}"
    except RepairAgentError as exc:
        out["reason"] = f"the guard could not judge the patches: the sandbox failed: {exc}"
    except Exception as exc:  # the guard only ranks and grades a fix the tests proved: it never costs one
        out["reason"] = f"the guard failed: {type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(harness, ignore_errors=True)
    out["checked"] = {**out["checked"], "seconds": round(time.monotonic() - started, 2), "budget_s": budget}
    if out["ranked"][0].get("suspect"):  # no clean patch passed: what the tests let through is likely wrong
        out["confidence"] = "low"
        out["reason"] = (f"every plausible patch is suspect (patch #1: {'; '.join(out['ranked'][0]['suspect'])})"
                         + (f"; {out['reason']}" if out["reason"] else ""))
    deps.log(f"guard: confidence {out['confidence']}: {out['reason']}")
    return out


def recording_tests(state, root: Path, targets: list[dict]) -> list[str]:
    """The tests whose calls are recorded: the failing ones and the passing ones that ran a line of a
    changed function (localization's coverage map, which the candidates' checks use too); the whole
    suite where there is no map. Only those call the functions, and a real project's whole suite
    outlasts the guard's budget (tqdm's 91 tests: 22 s against 12 s)."""
    covers = state.get("covers")
    if not covers or not state.get("failing"):
        return state["test_args"]
    spans: dict[str, set[int]] = {}
    for file in dict.fromkeys(t["file"] for t in targets):  # each file parsed once
        wanted = {t["qualname"] for t in targets if t["file"] == file}
        for name, first, last in functions(ast.parse((root / file).read_text(encoding="utf-8"))):
            if name in wanted:
                spans.setdefault(file, set()).update(range(first, last + 1))
    return list(dict.fromkeys([*state["failing"], *covering_tests(covers, spans)]))


def _judge(ranked: list[dict], state, deps, deadline: float, harness: Path) -> dict:
    root, box = Path(deps.workdir), deps.sandbox
    variants = [patched_files(root, f["patch"]) for f in ranked]
    targets = changed_targets(root, variants)
    if not targets:
        raise Unjudged("the patches change no function (only module-level code, or tests)")
    texts = {file: (root / file).read_text(encoding="utf-8") for file in {t["file"] for t in targets}}
    for t in targets:
        t["examples"] = docstring_examples(texts[t["file"]], t["qualname"])
    shutil.rmtree(harness, ignore_errors=True)
    harness.mkdir()
    (harness / "targets.json").write_text(json.dumps([{k: t[k] for k in ("file", "qualname")} for t in targets]))
    (harness / "failing.json").write_text(json.dumps(state.get("failing") or []))
    script = [box.python, box.tool("call_runner.py")]
    per_test = candidate_limits(candidate_timeout(state, deps.settings))[1]
    left = deadline - time.monotonic()
    started = time.monotonic()
    rc, text = box.run([*script, "calls", "--targets", f"{GUARD_DIR}/targets.json", "--per-test", str(per_test),
                        "--failing", f"{GUARD_DIR}/failing.json", "--short", str(CALL_TIMEOUT_S),
                        "--", *recording_tests(state, root, targets)], timeout=max(3.0, 0.6 * left))
    found = {t["index"]: t for t in lines(text, TARGET)}
    if not found:
        raise Unjudged("recording the calls took longer than the guard's budget" if rc == 124 else
                       f"recording the calls into {names(targets)} failed (exit code {rc}): {tail(text)}")
    seen = lines(text, CALL)
    spent = {"record_s": round(time.monotonic() - started, 2)}
    for i, t in enumerate(targets):
        t.update({k: found.get(i, {}).get(k, "") for k in ("module", "root", "error")})
    usable = [i for i, t in enumerate(targets) if t["module"]]
    if not usable:
        raise Unjudged("the changed function(s) could not be wrapped: "
                       + "; ".join(f"{t['qualname']}: {t['error']}" for t in targets))
    several = len(ranked) > 1
    inputs = [{"target": c["target"], "source": "tests", "passed": c["passed"], "call": c["call"]}
              for c in seen if c["target"] in usable]
    why_not = []
    if several:
        with_calls = [i for i in usable if any(c["target"] == i for c in inputs)]
        for i in with_calls:
            made, why = generate([c["call"] for c in inputs if c["target"] == i], EXAMPLES // len(with_calls))
            inputs += [{"target": i, "source": "generated", "passed": False, "call": c} for c in made]
            if why:
                why_not.append(f"{targets[i]['qualname']}: {why}")
    examples = sum(len(g) for i in usable for g in targets[i]["examples"])
    if not inputs and not examples:
        raise Unjudged(f"the tests made no call into {names(targets)} that can be replayed, and it has no "
                       "docstring examples" + "".join(f"; {t['qualname']}: {t['error']}" for t in targets
                                                      if t["error"]))
    plan = {"targets": [{k: targets[i][k] if i in usable else "" for k in ("file", "qualname", "module", "root")}
                        | {"examples": targets[i]["examples"] if i in usable else []} for i in range(len(targets))],
            "programs": [{"name": "original", "files": {}}],
            "inputs": [{"target": x["target"], "call": x["call"]} for x in inputs],
            "runs": [[n for n, x in enumerate(inputs) if x["passed"]]],
            "timeout": CALL_TIMEOUT_S}
    for p, files in enumerate(variants, 1):
        for rel, new in files.items():
            (harness / f"p{p}" / rel).parent.mkdir(parents=True, exist_ok=True)
            (harness / f"p{p}" / rel).write_text(new, encoding="utf-8")
        plan["programs"].append({"name": f"p{p}", "files": {rel: f"{GUARD_DIR}/p{p}/{rel}" for rel in files}})
        plan["runs"].append(list(range(len(inputs))) if several else plan["runs"][0])
    left = deadline - time.monotonic()
    plan["budget"] = max(2.0, left - 2.0)
    (harness / "plan.json").write_text(json.dumps(plan))
    started = time.monotonic()
    rc, text = box.run([*script, "vote", "--plan", f"{GUARD_DIR}/plan.json"], timeout=plan["budget"] + 30)
    spent["vote_s"] = round(time.monotonic() - started, 2)
    votes = lines(text, VOTE)
    if not votes:
        raise Unjudged(f"running the patches did not finish (exit code {rc}): {tail(text)}")
    verdict = judge(ranked, inputs, votes[-1], targets)
    verdict["checked"].update(spent, why_not_generated="; ".join(why_not))
    if several and not verdict["checked"]["compared_generated"] and verdict["confidence"] == "high":
        verdict["confidence"] = "unknown"
        verdict["reason"] = (f"no generated input could be compared ({'; '.join(why_not) or 'none was made'}); "
                             + verdict["reason"])
    return verdict


def names(targets: list[dict]) -> str:
    return ", ".join(t["qualname"] for t in targets)


# -- what the patches change -----------------------------------------------------------------------
def patched_files(root: Path, patch: str) -> dict[str, str]:
    """{file: its text with the patch applied} for the Python files the patch changes."""
    try:
        if not patching.apply_diff(root, patch).ok:
            raise Unjudged("a plausible patch no longer applies to the scratch tree")
        return {rel: (root / rel).read_text(encoding="utf-8") for rel in patching.changed_files(patch)
                if rel.endswith(".py") and (root / rel).is_file()}
    finally:
        patching.reset(root)


def functions(tree: ast.Module) -> list[tuple[str, int, int]]:
    """(qualname, first line, last line) of each module-level function and method of a
    module-level class, decorators included."""
    return [(name, first_line(fn), fn.end_lineno) for name, fn in definitions(tree)]


def definitions(tree: ast.Module):
    """(qualname, node) of each module-level function and each method of a module-level class
    (not coroutines: what a call returns cannot be compared without an event loop)."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for m in node.body:
                if isinstance(m, ast.FunctionDef):
                    yield f"{node.name}.{m.name}", m


def changed_functions(old: str, new: str) -> list[str]:
    """The functions (qualnames, as `functions` names them) whose lines `new` changes against `old`:
    a change inside a nested function counts for the function around it."""
    try:
        spans = (functions(ast.parse(old)), functions(ast.parse(new)))
    except SyntaxError:
        return []
    old_lines, new_lines = old.splitlines(), new.splitlines()
    touched: list[str] = []

    def mark(span_list, first, last):
        for name, a, b in span_list:
            if a <= last and first <= b and name not in touched:
                touched.append(name)

    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        mark(spans[0], i1 + 1, max(i1 + 1, i2))
        mark(spans[1], j1 + 1, max(j1 + 1, j2))
    return touched


def changed_targets(root: Path, variants: list[dict[str, str]]) -> list[dict]:
    """The functions any patch changes, in the order the ranked patches name them."""
    targets: list[dict] = []
    for files in variants:
        for rel, new in files.items():
            if patching.is_test_file(rel):
                continue
            old = (root / rel).read_text(encoding="utf-8")
            for name in changed_functions(old, new):
                if not any(t["file"] == rel and t["qualname"] == name for t in targets):
                    targets.append({"file": rel, "qualname": name})
    return targets


def docstring_examples(source: str, qualname: str) -> list[list[dict]]:
    """The doctest examples of the function's docstring (`own`), and those of the module's bare
    strings (e.g. a trailing description) that call it: one group per docstring (they share names)."""
    import doctest

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    node = dict(definitions(tree)).get(qualname)
    parser = doctest.DocTestParser()
    short = qualname.rsplit(".", 1)[-1]
    call = re.compile(rf"\b{re.escape(short)}\s*\(")
    groups = []
    texts = [(ast.get_docstring(node) or "", False)] if node is not None else []
    texts += [(n.value.value, True) for n in tree.body if isinstance(n, ast.Expr)
              and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)]
    for text, module_level in texts:
        try:
            examples = parser.get_examples(text)
        except ValueError:  # an example that doctest itself cannot read
            continue
        if module_level and not any(call.search(e.source) for e in examples):
            continue
        if examples:
            groups.append([{"source": e.source, "want": e.want, "exc_msg": e.exc_msg, "own": not module_level}
                           for e in examples])
    return groups


# -- the verdict -----------------------------------------------------------------------------------
def judge(ranked: list[dict], inputs: list[dict], vote: dict, targets: list[dict]) -> dict:
    """Rank the patches and say how confident the choice is, from what `call_runner.py vote`
    printed: `labels[i]` has one character per program (the buggy program first, then the patches
    in `ranked` order), equal characters for equal outcomes, `-` where the program did not run;
    `kinds[i]` the outcomes' kinds (`o`k, `r`aise, `t`imeout, `c`rash, `u`nreplayable: the call
    touched an argument the recording could not rebuild, and says nothing about that program)."""
    k = len(ranked)
    labels, kinds = vote["labels"], vote["kinds"]
    # a suspect patch (an anti-pattern) is ranked last; when a clean one exists, only the clean ones
    # speak to the confidence: a deletion that the tests let through disagrees with the fix by nature
    counted = [p for p in range(1, k + 1) if not ranked[p - 1].get("suspect")] or list(range(1, k + 1))
    voters = independent(ranked, labels)
    stats = [{"examples_failed": 0, "passing_changed": 0, "outvoted": 0} for _ in range(k)]
    first_passing: dict[int, int] = {}  # patch -> the first passing-test call it changes
    splits: list[int] = []  # the inputs on which the patches disagree
    compared = Counter()
    slow = set(vote.get("slow") or [])  # a time-out there says "slower", not "different"
    for i, x in enumerate(inputs):
        lab, kind = labels[i], kinds[i]
        if i in slow:
            compared["slow"] += 1
            continue
        if x["passed"] and kind[0] in "or":  # a test that passed made this call: the buggy program was right
            compared["passing"] += 1
            for p in range(1, k + 1):
                if lab[p] not in ("-", lab[0]) and kind[p] != "u":
                    stats[p - 1]["passing_changed"] += 1
                    first_passing.setdefault(p - 1, i)
        ran = comparable(lab, kind, x)
        if not ran:
            continue
        compared[x["source"]] += 1
        votes = Counter(lab[p] for p in ran)
        if len(votes) == 1:
            continue
        if len({lab[p] for p in ran if p in counted}) > 1:
            splits.append(i)
        ballots = Counter(lab[p] for p in ran if p in voters)
        top, n = ballots.most_common(1)[0]
        if 2 * n > sum(ballots.values()):  # a strict majority outvotes the rest; a tie ranks no one down
            for p in ran:
                stats[p - 1]["outvoted"] += lab[p] != top
    docs = vote.get("docs") or []
    # an example counts when it is the function's own, or when some patch passes it (a module's
    # description may hold examples that no program can pass as written)
    own = {f"{t}:{n}" for t, target in enumerate(targets)
           for n, e in enumerate(e for group in target.get("examples") or [] for e in group) if e.get("own")}
    informative = sorted({key for prog in docs for key, (ok, _) in prog.items() if ok or key in own},
                         key=lambda s: tuple(map(int, s.split(":"))))
    failed_example: dict[int, tuple[str, str]] = {}
    for p in range(k):
        for key in informative:
            got = docs[p + 1].get(key) if p + 1 < len(docs) else None
            if got is not None and not got[0]:
                stats[p]["examples_failed"] += 1
                failed_example.setdefault(p, (key, got[1]))
    # the guard's counts first; the order of `ranked` (size, source, found first) breaks ties
    order = sorted(range(k), key=lambda p: (bool(ranked[p].get("suspect")), stats[p]["examples_failed"],
                                            stats[p]["passing_changed"], stats[p]["outvoted"]))
    position = {p: r for r, p in enumerate(order)}
    errors = [e for errs in vote.get("errors") or [] for e in errs]
    cut = any(vote.get("cut") or [])
    n_in = compared["tests"] + compared["generated"]
    checked = {"functions": [t["qualname"] for t in targets],
               "inputs": {"tests": sum(x["source"] == "tests" for x in inputs),
                          "passing": sum(bool(x["passed"]) for x in inputs),
                          "generated": sum(x["source"] == "generated" for x in inputs)},
               "compared_tests": compared["tests"], "compared_generated": compared["generated"],
               "compared_passing": compared["passing"], "too_slow": compared["slow"], "examples": len(informative),
               "budget_exhausted": cut, "errors": errors[:5]}
    verdict = {"ranked": [{**ranked[p], "guard": stats[p]} for p in order], "disagreement": None,
               "checked": checked}

    def name(p: int) -> str:  # p: 0 the buggy program, 1.. the patches in `ranked` order
        return "the original code" if p == 0 else f"patch #{position[p - 1] + 1}"

    def at(i: int, programs: list[int], kind: str) -> dict:
        x = inputs[i]
        fn = targets[x["target"]]["qualname"]
        shown = {d["i"]: d["outcomes"] for d in vote.get("details", [])}.get(i) or []
        outcomes = {name(p): shown[p] for p in programs if p < len(shown) and shown[p] is not None}
        groups: dict[str, list[str]] = {}  # equal outcomes said once: "patches #1, #2 return 2"
        for who, o in outcomes.items():
            groups.setdefault(json.dumps(o, sort_keys=True), []).append(who)
        said = "; ".join(_together(whos) + " " + outcome_text(json.loads(o), plural=len(whos) > 1)
                         for o, whos in groups.items()) or "different outcomes"
        return {"kind": kind, "function": fn, "source": x["source"], "input": x["call"], "outcomes": outcomes,
                "text": clip(f"{call_text(x['call'], fn)}: {said}")}

    def example(p: int) -> dict:
        key, got = failed_example[p]
        t, n = map(int, key.split(":"))
        ex = [e for group in targets[t]["examples"] for e in group][n]
        return {"kind": "docstring example", "function": targets[t]["qualname"], "source": "docstring",
                "input": None, "outcomes": {name(p + 1): got},
                "text": clip(f">>> {ex['source'].strip()} expects {ex['want'].strip() or 'no output'}; "
                             f"{name(p + 1)} gives {got or 'something else'}")}

    problems = []
    if splits:
        i = splits[0]
        programs = ([0] if inputs[i]["passed"] else []) + sorted(range(1, k + 1), key=lambda p: position[p - 1])
        kind = "changes what a passing test saw" if any(first_passing.get(p) == i for p in range(k)) \
            else "patches disagree"
        verdict["disagreement"] = at(i, programs, kind)
        problems.append(f"the {len(counted)} plausible patches disagree on {len(splits)} of {n_in} inputs")
    changed = [p for p in order if stats[p]["passing_changed"] and p + 1 in counted]
    if changed:
        verdict["disagreement"] = verdict["disagreement"] or at(first_passing[changed[0]], [0, changed[0] + 1],
                                                                "changes what a passing test saw")
        problems.append(f"{len(changed)} patch(es) change the outcome of calls made by tests that passed before")
    failing = [p for p in order if stats[p]["examples_failed"] and p + 1 in counted]
    if failing:
        verdict["disagreement"] = verdict["disagreement"] or example(failing[0])
        problems.append(f"{len(failing)} patch(es) fail docstring examples")
    if problems:
        return {**verdict, "confidence": "low",
                "reason": "; ".join(problems) + f"; first: {verdict['disagreement']['text']}"}
    n = len(counted)
    suspects = [f"{k - n} suspect patch(es) ranked last and not counted"] if n < k else []
    if n == 1 and not compared["passing"] and not informative:  # the guard ran; nothing speaks against it
        return {**verdict, "confidence": "high",
                "reason": "; ".join([f"one plausible patch, and nothing speaks against it, though little could: no "
                                     f"test that passed before calls {names(targets)}, and no docstring example "
                                     "does", *suspects])}
    if n > 1 and not n_in:
        return {**verdict, "confidence": "unknown",
                "reason": "no input could be compared" + (f" ({'; '.join(errors[:2])})" if errors else "")}
    said = [f"the {n} plausible patches agree on {n_in} inputs ({compared['tests']} from the tests, "
            f"{compared['generated']} generated)"] if n > 1 else []
    if compared["passing"]:
        said.append(f"{'none changes' if n > 1 else 'one plausible patch; it keeps'} the outcome of the "
                    f"{compared['passing']} call(s) made by tests that passed before")
    if informative:
        said.append(f"{len(informative)} docstring example(s) pass")
    if cut:
        said.append("the time budget ended before every input ran")
    return {**verdict, "confidence": "high", "reason": "; ".join(said + suspects)}


def independent(ranked: list[dict], labels: list[str]) -> set[int]:
    """The patches (1-based, as in the labels) whose votes count: two one-line edits of the same
    line that behave the same on every input are one fix written twice (`(start + 1) == end` and
    `start == (end - 1)`), and vote once; different code that agrees is evidence, and votes twice."""
    def one_line(fix: dict):
        return (fix.get("file"), fix.get("line")) if size(fix["patch"])[0] == 2 and fix.get("line") else None

    def always_agree(p: int, q: int) -> bool:
        return all(lab[q] == lab[p] for lab in labels if "-" not in (lab[p], lab[q]))

    voters: set[int] = set()
    for p, fix in enumerate(ranked, 1):
        where = one_line(fix)
        if not (where and any(one_line(ranked[q - 1]) == where and always_agree(p, q) for q in voters)):
            voters.add(p)
    return voters


def _together(whos: list[str]) -> str:
    if len(whos) == 1:
        return whos[0]
    patches = [w.removeprefix("patch ") for w in whos if w.startswith("patch ")]
    rest = [w for w in whos if not w.startswith("patch ")]
    return " and ".join(rest + ([f"patches {', '.join(patches)}"] if patches else []))


def comparable(lab: str, kind: str, x: dict) -> list[int]:
    """The patches whose outcomes on this input count ([] when fewer than two): not on a generated
    input that most patches reject (outside the domain), nor one on which most time out."""
    ran = [p for p in range(1, len(lab)) if lab[p] != "-" and kind[p] != "u"]
    raised = sum(kind[p] == "r" for p in ran)
    slow = sum(kind[p] in "tc" for p in ran)
    if len(ran) < 2 or (x["source"] == "generated" and 2 * raised > len(ran)) or 2 * slow > len(ran):
        return []
    return ran
