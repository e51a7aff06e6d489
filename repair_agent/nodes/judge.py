"""The overfitting guard (judge/guard.py) on a fix the tests passed: the search's plausible fixes
ranked (the first becomes the fix), or the model's one fix graded; each with how sure it is."""

from __future__ import annotations

from .. import patching
from ..judge import guard
from ..search import record_search
from ..state import Candidate, RepairState


def judge(state: RepairState, deps) -> dict:
    return judge_model_fix(state, deps) if state.get("best") else judge_search_fixes(state, deps)


def judge_search_fixes(state: RepairState, deps) -> dict:
    """The plausible patches against each other, the passing tests' calls and the docstring
    examples, in the sandbox: ranked, the best first, with how sure the choice is."""
    verdict = guard.choose(state["fixes"], state, deps)
    ranked = verdict["ranked"]
    summary = {**state["search"],
               "plausible": [{k: f.get(k) for k in ("source", "file", "line", "note", "patch", "found", "guard",
                                                    "suspect")} for f in ranked],
               "confidence": verdict["confidence"], "confidence_reason": verdict["reason"],
               "disagreement": verdict["disagreement"], "guard": verdict["checked"]}
    record_search(summary, deps)
    fix = ranked[0]
    best = Candidate(round=0, index=fix["index"], response=fix["note"], finish_reason="", code="",
                     patch=fix["patch"], status="fixed", reason=fix["reason"], tests=fix["tests"],
                     faithfulness=None, source=fix["source"], note=fix["note"], line=fix["line"], file=fix["file"])
    return {"best": best, "search": summary}


def judge_model_fix(state: RepairState, deps) -> dict:
    """A fix from the model loop (refine) is one plausible patch: judged by the passing tests'
    calls and its docstring examples."""
    best = state["best"]
    patching.reset(deps.workdir)  # the guard lays the patch over the snapshot itself
    fix = {"patch": best["patch"], "file": best.get("file") or "", "line": best.get("line") or 0,
           "source": "refine", "note": "the model's fix", "tests": best.get("tests")}
    verdict = guard.choose([fix], state, deps)
    found = {"confidence": verdict["confidence"], "confidence_reason": verdict["reason"],
             "disagreement": verdict["disagreement"], "guard": verdict["checked"]}
    deps.recorder.write("guard", **found)
    return {"search": {**(state.get("search") or {}), **found}}
