"""Feed the evidence of the last round back: the previous attempt and how it failed."""

from __future__ import annotations

from .. import prompts
from ..state import RepairState
from ..outcomes import first_failure

# which failed attempt teaches the most: one that ran tests beats one that never applied
USEFUL = {"passed_failing": 0, "failed": 1, "test_edit": 2, "not_applicable": 3, "no_code": 4, "truncated": 5}


def refine(state: RepairState, deps) -> dict:
    rnd = state.get("round", 0)
    last = [c for c in state["candidates"] if c["round"] == rnd and c["status"] in USEFUL]
    feedback = ""
    if last:
        pick = min(last, key=lambda c: USEFUL[c["status"]])
        tests = pick.get("tests") or {}
        failure = first_failure(tests.get("suite") or tests.get("failing"), limit=1000)
        contradictions = (pick.get("faithfulness") or {}).get("contradictions", [])[:3]
        feedback = prompts.render("feedback.j2", code=pick["code"] or "(no usable code)",
                                  reason=pick["reason"], failure=failure, contradictions=contradictions)
    deps.recorder.write("refine", round=rnd + 1, feedback=feedback)
    return {"round": rnd + 1, "feedback": feedback}
