"""Plausible is not correct: differential testing of a benchmark fix against the reference program.

A patch is *plausible* when the benchmark's tests pass on it: the tests the agent searched
against. It is *correct* when it behaves like the reference (QuixBugs' fixed program,
HumanEvalFix's canonical solution) on the tests' own inputs and on a few hundred generated ones.
BugsInPy has no reference program, only the human fix: there a patch is correct when it makes the
same program as the human fix (`same_as_human_fix`); else the project's tests of the fixed commit run
on both, and then the changed functions of both programs run on the arguments those tests passed
them and on inputs generated from those (`against_human_fix`). The harness alone knows the
reference, and asks only after the agent has finished.

The patched code is untrusted: both programs run inside the sandbox (`sandbox/tools/call_runner.py`),
each call under a time limit. Inputs are generated on the host, as plain JSON, by the generator
this check shares with the agent's overfitting guard (`repair_agent/judge/differential.py`): hypothesis
strategies built from the arguments the tests passed, kept to the domain the tests show.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

from ..judge.differential import EXAMPLES, INPUT, RESULT, call_text, generate
from ..judge.differential import lines as _lines
from ..judge.differential import outcome_text as _outcome
from ..judge.differential import tail as _tail
from ..errors import RepairAgentError
from ..judge.guard import CALL, TARGET, VOTE, changed_functions
from ..patching import apply_diff, changed_files, is_test_file
from ..sandbox import open_sandbox, overlaid
from .bugsinpy import reference_patch, with_fixed_test_folders
from .datasets import reference_for
from .tasks import Task

HARNESS_DIR = ".differential"  # the reference and the inputs, written into the checked tree


# -- patch size ----------------------------------------------------------------------------------
def patch_size(patch: str) -> tuple[int, int]:
    """(changed lines: added + removed, added lines that are blank or only a comment)."""
    changed = noise = 0
    in_hunk = False  # file headers (`--- a/f`, `+++ b/f`) come before a file's first `@@`
    for line in patch.splitlines():
        in_hunk = line.startswith("@@") or (in_hunk and not line.startswith("diff "))
        if not in_hunk or not line.startswith(("+", "-")):
            continue
        changed += 1
        text = line[1:].strip()
        noise += line.startswith("+") and (not text or text.startswith("#"))
    return changed, noise


# -- the check -----------------------------------------------------------------------------------
def _unknown(reason: str) -> dict:
    return {"correct": "unknown", "correct_reason": reason, "first_difference": None, "correct_inputs": None}


def check(task: Task, patch: str, work: Path, sandbox: str = "docker", image: str | None = None,
          data: Path | str | None = None, examples: int = EXAMPLES, timeout: float = 1.0,
          budget: float = 60.0, settings=None) -> dict:
    """Is `patch` correct? `{"correct": True | False | "unknown", "correct_reason",
    "first_difference": {"source", "input", "reference", "patched"} | None, "correct_inputs"}`.
    `settings`: the task's own (task_settings()), where its tests need an environment (BugsInPy)."""
    if task.dataset == "bugsinpy":
        return same_as_human_fix(task, patch, work, settings)
    ref = reference_for(task, data)
    if ref is None:
        return _unknown(f"no reference program for this {task.dataset} task")
    program, source, entry = ref
    shutil.rmtree(work, ignore_errors=True)
    task.materialize(work)
    if not apply_diff(work, patch).ok:
        return _unknown("the patch does not apply")
    (work / HARNESS_DIR).mkdir()
    (work / HARNESS_DIR / "reference.py").write_text(source, encoding="utf-8")
    reference = f"{HARNESS_DIR}/reference.py"
    try:
        box = open_sandbox(sandbox, work, image=image, log=lambda m: None)
    except RepairAgentError as exc:
        return _unknown(f"no sandbox: {exc}")
    try:
        script = [box.python, box.tool("call_runner.py")]
        rc, out = box.run([*script, "record", "--reference", reference, "--entry", entry, "--",
                           *task.test_args], timeout=300)
        seen = _lines(out, INPUT)
        if not seen:
            return _unknown(f"the tests made no call to {entry} that can be replayed "
                            f"(exit code {rc}): {_tail(out)}")
        generated, why_not = generate(seen, examples)
        (work / HARNESS_DIR / "inputs.json").write_text(json.dumps({"seen": seen, "generated": generated}))
        rc, out = box.run([*script, "compare", "--reference", reference, "--program", program, "--entry", entry,
                           "--inputs", f"{HARNESS_DIR}/inputs.json", "--timeout", str(timeout),
                           "--budget", str(budget)], timeout=budget + 120)
    except RepairAgentError as exc:
        return _unknown(f"the sandbox failed: {exc}")
    finally:
        box.close()
    results = _lines(out, RESULT)
    if not results:
        return _unknown(f"the comparison did not finish (exit code {rc}): {_tail(out)}")
    return verdict(results[-1], why_not, entry)


def same_as_human_fix(task: Task, patch: str, work: Path, settings=None) -> dict:
    """Correct when every file that the patch or the human fix (`bug_patch.txt`) changes has the
    same syntax tree after either (comments and layout aside). Otherwise, given `settings` (the
    task's environment, task_settings()), the project's tests judge (`project_tests`); without
    them the verdict is unknown."""
    human = reference_patch(task)
    if human is None:
        return _unknown("no human fix for this bug")
    trees = {}
    for name, diff in (("patch", patch), ("human fix", human)):
        trees[name] = work / name.replace(" ", "_")
        shutil.rmtree(trees[name], ignore_errors=True)
        task.materialize(trees[name])
        applied = apply_diff(trees[name], diff)
        if not applied.ok:
            return _unknown(f"the {name} does not apply: {applied.reason}")
    files = sorted(set(changed_files(patch)) | set(changed_files(human)))
    differs = [rel for rel in files if _program(trees["patch"] / rel) != _program(trees["human fix"] / rel)]
    if not differs:
        return {"correct": True, "correct_reason": f"the same program as the human fix in {', '.join(files)}",
                "first_difference": None, "correct_inputs": None}
    why = f"{differs[0]} differs from the human fix's"
    if settings is None:
        return _unknown(f"{why} (no reference program to run both)")
    return project_tests(task, trees, files, work / "suite", settings, why)


def project_tests(task: Task, trees: dict[str, Path], files: list[str], work: Path, settings, why: str) -> dict:
    """The fixed commit's test folders (not only the bug's tests), run on the human fix and on the
    patch in the task's environment. A test that passes with the human fix and fails with the patch,
    twice (a flaky test is no verdict), makes the patch wrong; else the changed functions of both
    programs are compared on the calls those tests make (`against_human_fix`)."""
    sides = {}
    for name, tree in trees.items():  # each side as an overlay of the files that either patch changes
        if not all((tree / rel).is_file() for rel in files):
            return _unknown(f"{why}; a file is deleted, which the project's tests cannot compare")
        sides[name] = {rel: (tree / rel).read_text(encoding="utf-8", errors="replace") for rel in files}
    shutil.rmtree(work, ignore_errors=True)
    repo = task.materialize(work)
    modules = with_fixed_test_folders(task, repo)
    try:
        box = open_sandbox(settings.sandbox, repo, image=settings.image, log=lambda m: None, deps=settings.deps,
                           build=settings.build_image, install_project=settings.install_project)
    except RepairAgentError as exc:
        return _unknown(f"{why}; no sandbox for the project's tests: {exc}")
    try:
        def outcomes(args: list[str]) -> dict[str, dict]:
            return {name: {c["id"]: c["outcome"] for c in box.run_tests(
                args, timeout=settings.test_timeout_s, per_test_timeout=settings.per_test_timeout_s,
                overlay=overlay)["cases"]} for name, overlay in sides.items()}

        def broken(runs: dict) -> list[str]:
            return sorted(t for t, o in runs["human fix"].items()
                          if o == "passed" and runs["patch"].get(t) in ("failed", "error"))

        first = outcomes(modules)
        suspects = broken(first)
        wrong = suspects and broken(outcomes(suspects))
        passed = sum(o == "passed" for o in first["human fix"].values())
        tests = {"passed_with_human_fix": passed, "broken": wrong or []}
        if wrong:
            return {"correct": False, "correct_reason": f"{len(wrong)} of the project's tests that pass with the "
                    f"human fix fail with the patch, twice: {', '.join(wrong[:3])}", "first_difference": None,
                    "correct_inputs": None, "project_tests": tests}
        said = (f"{why}; the project's tests ({passed} pass with the human fix, in {len(modules)} modules) "
                "pass alike with the patch" if passed else
                f"{why}; none of the project's tests ({len(modules)} modules) passed with the human fix")
        found = against_human_fix(box, repo, sides["human fix"], sides["patch"], modules,
                                  per_test=settings.per_test_timeout_s)
    except RepairAgentError as exc:
        return _unknown(f"{why}; the project's tests did not run: {exc}")
    finally:
        box.close()
    return {**found, "correct_reason": f"{said}; {found['correct_reason']}", "project_tests": tests}


def against_human_fix(box, root: Path, human: dict[str, str], patched: dict[str, str], test_args: list[str],
                      examples: int = EXAMPLES, timeout: float = 1.0, budget: float = 60.0,
                      per_test: float = 60.0, record_timeout: float = 900.0) -> dict:
    """The differential check on real code. `root` holds the buggy tree (the one `box` sees);
    `human` and `patched` map every file that either changes to its text after each. The functions
    either changes are wrapped while `test_args` run on the human fix (the arguments of their
    outermost calls are recorded, as the guard does), more inputs are generated from those, and
    both programs run on all of them in the sandbox (`call_runner.py vote`, each call under
    `timeout`). The human fix sets the expectations, as the reference does for QuixBugs: a
    generated input on which it raises is outside the domain, one on which it times out tells
    nothing; both are skipped. Same fields as `check`."""
    targets = []
    for rel in sorted(human):
        old = root / rel
        if not rel.endswith(".py") or is_test_file(rel) or not old.is_file():
            continue
        for side in (human, patched):
            for name in changed_functions(old.read_text(encoding="utf-8", errors="replace"), side[rel]):
                if {"file": rel, "qualname": name} not in targets:
                    targets.append({"file": rel, "qualname": name})
    if not targets:
        return _unknown("neither the patch nor the human fix changes a function (only module-level code or tests)")
    harness = root / HARNESS_DIR
    shutil.rmtree(harness, ignore_errors=True)
    for rel, text in patched.items():
        (harness / "patch" / rel).parent.mkdir(parents=True, exist_ok=True)
        (harness / "patch" / rel).write_text(text, encoding="utf-8")
    (harness / "targets.json").write_text(json.dumps(targets))
    script = [box.python, box.tool("call_runner.py")]
    try:
        with overlaid(root, human):  # the recording and the human fix's own runs see its files
            rc, out = box.run([*script, "calls", "--targets", f"{HARNESS_DIR}/targets.json", "--per-test",
                               str(per_test), "--", *test_args], timeout=record_timeout)
            found = {t["index"]: t for t in _lines(out, TARGET)}
            for i, t in enumerate(targets):
                t.update({k: found.get(i, {}).get(k, "") for k in ("module", "root", "error")}, examples=[])
            seen = [c for c in _lines(out, CALL) if targets[c["target"]]["module"]]
            if not seen:
                wrapped = "; ".join(f"{t['qualname']}: {t['error']}" for t in targets if t["error"])
                return _unknown(f"the tests made no call into {', '.join(t['qualname'] for t in targets)} that "
                                f"can be replayed (exit code {rc}){'; ' + wrapped if wrapped else ''}: {_tail(out)}")
            inputs = [{"target": c["target"], "source": "seen", "call": c["call"]} for c in seen]
            called = sorted({c["target"] for c in seen})
            why_not = []
            for i in called:
                made, why = generate([c["call"] for c in seen if c["target"] == i], examples // len(called),
                                     keep_objects=True)  # real code's methods: `self` kept, the rest drawn
                inputs += [{"target": i, "source": "generated", "call": c} for c in made]
                if why:
                    why_not.append(f"{targets[i]['qualname']}: {why}")
            plan = {"targets": targets, "inputs": [{k: x[k] for k in ("target", "call")} for x in inputs],
                    "programs": [{"name": "human fix", "files": {}},
                                 {"name": "patch", "files": {rel: f"{HARNESS_DIR}/patch/{rel}" for rel in patched}}],
                    "runs": [list(range(len(inputs)))] * 2, "timeout": timeout, "budget": budget}
            (harness / "plan.json").write_text(json.dumps(plan))
            rc, out = box.run([*script, "vote", "--plan", f"{HARNESS_DIR}/plan.json"], timeout=budget + 60)
    finally:
        shutil.rmtree(harness, ignore_errors=True)
    votes = _lines(out, VOTE)
    if not votes:
        return _unknown(f"running the two programs did not finish (exit code {rc}): {_tail(out)}")
    res, where = compared(votes[-1], inputs)
    name = targets[inputs[where]["target"]]["qualname"] if where is not None else ""
    made = any(x["source"] == "generated" for x in inputs)  # a function without them still had its own calls
    return verdict(res, "" if made else "; ".join(why_not), name, reference="the human fix")


_KINDS = {"o": "ok", "r": "raise", "t": "timeout", "c": "crash", "u": "unreplayable"}


def compared(vote: dict, inputs: list[dict]) -> tuple[dict, int | None]:
    """call_runner.py's `@@VOTE` for two programs (the reference first) read as `compare`'s result,
    and the index of the first differing input (None when none differs)."""
    counts = {"seen": 0, "generated": 0, "skipped": 0}
    shown = {d["i"]: d["outcomes"] for d in vote.get("details") or []}
    slow = set(vote.get("slow") or [])
    first = None
    for i, x in enumerate(inputs):
        lab, kind = vote["labels"][i], vote["kinds"][i]
        if "-" in lab:  # the budget ended before this input ran
            continue
        if i in slow or kind[0] in "tc" or "u" in kind or (kind[0] == "r" and x["source"] == "generated"):
            counts["skipped"] += 1
            continue
        counts[x["source"]] += 1
        if lab[0] != lab[1]:
            first = i
            break
    res = {**counts, "budget_exhausted": any(vote.get("cut") or []), "first_difference": None}
    if first is not None:
        outcomes = shown.get(first) or [  # vote keeps the outcomes of the first input of each pattern only
            {"kind": "ok", "value": {"$repr": "(not kept)"}, "objects": []} if k == "o" else {"kind": _KINDS[k],
                                                                                           "type": "?"}
            for k in vote["kinds"][first]]
        res["first_difference"] = {"source": inputs[first]["source"], "input": inputs[first]["call"],
                                   "reference": outcomes[0], "patched": outcomes[1]}
    return res, first


def _program(path: Path) -> str | None:
    """A Python file's syntax tree, dumped (other files: their text); None for a missing file."""
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix != ".py":
        return text
    try:
        return ast.dump(ast.parse(text))
    except SyntaxError:
        return text


def verdict(res: dict, why_not_generated: str = "", entry: str = "f", reference: str = "the reference") -> dict:
    """The record fields from call_runner.py's result (`reference`: what the patch is compared with)."""
    counts = {k: res.get(k, 0) for k in ("seen", "generated", "skipped")}
    diff = res.get("first_difference")
    if diff:
        where = "one of the tests' own inputs" if diff["source"] == "seen" else "a generated input"
        return {"correct": False, "correct_reason": f"differs from {reference} on {where}",
                "first_difference": {**diff, "text": describe(diff, entry, reference)}, "correct_inputs": counts}
    done = f"{counts['seen']} of the tests' inputs and {counts['generated']} generated ones " \
           f"({counts['skipped']} skipped: {reference} raised or timed out)"
    if why_not_generated:
        return {**_unknown(f"agrees with {reference} on {done}, but no inputs were generated: "
                           f"{why_not_generated}"), "correct_inputs": counts}
    if counts["generated"] == 0:
        return {**_unknown(f"no generated input could be compared: {done}"), "correct_inputs": counts}
    cut = "; the time budget ended first" if res.get("budget_exhausted") else ""
    return {"correct": True, "correct_reason": f"agrees with {reference} on {done}{cut}",
            "first_difference": None, "correct_inputs": counts}


def describe(diff: dict, entry: str, reference: str = "the reference") -> str:
    """`gcd(4, 6): the reference returns 2, the patch 1`, objects written out after `where`."""
    text = f"{call_text(diff['input'], entry)}: {reference} {_outcome(diff['reference'])}, " \
           f"the patch {_outcome(diff['patched'])}"
    return text if len(text) <= 600 else text[:597] + "..."


def score(task: Task, record: dict, work: Path, **kw) -> dict:
    """The correctness fields of one benchmark record (the check runs only for plausible fixes)."""
    plausible = record.get("status") == "fixed" and record.get("verified") is True
    fields = {"plausible": plausible, "correct": None, "correct_reason": "not plausible",
              "first_difference": None, "correct_inputs": None, "patch_lines": None, "patch_noise_lines": None,
              "plausible_patches": None, "first_found_correct": None}
    if plausible:
        fields.update(check(task, record["patch"], work, **kw))
        fields["patch_lines"], fields["patch_noise_lines"] = patch_size(record["patch"])
        fields.update(first_found(task, record, fields["correct"], work / "first", **kw))
    return fields


def first_found(task: Task, record: dict, correct, work: Path, **kw) -> dict:
    """With several plausible patches, is the one the search found first correct too? That is what
    the guard's pick (the record's patch) is measured against."""
    found = (record.get("search") or {}).get("plausible") or []
    if len(found) < 2:
        return {"plausible_patches": len(found), "first_found_correct": None}
    first = min(found, key=lambda f: f.get("found") or 0)
    same = first is found[0]  # the search ranks the guard's pick first
    return {"plausible_patches": len(found),
            "first_found_correct": correct if same else check(task, first["patch"], work, **kw)["correct"]}
