"""The run's outcome: status, root cause, and why it stopped."""

from __future__ import annotations

from .. import answers, policy
from ..state import RepairState


def report(state: RepairState, deps) -> dict:
    best = state.get("best")
    if not state.get("failing"):
        status = "no_failures"
    elif deps.diagnose_only:
        status = "diagnosed"
    else:
        status = "fixed" if best else "not_fixed"
    replies = [best] if best else [c for c in reversed(state.get("candidates", []))]
    cause = state.get("root_cause") or next(
        (rc for c in replies if c and (rc := answers.root_cause(c["response"]))), "")
    stop = policy.final_stop_reason(state, deps.settings, status)
    deps.recorder.write("report", status=status, root_cause=cause, stop_reason=stop,
                        patch=best["patch"] if best else "")
    return {"status": status, "root_cause": cause, "stop_reason": stop}
