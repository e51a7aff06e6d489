"""Check each of the model's new candidates: its code applied to the scratch tree, then the tests
(checks.run_checks: the failing tests, the passing tests that ran a changed line, the full suite)."""

from __future__ import annotations

from .. import answers, patching
from ..checks import run_checks
from ..state import Candidate, RepairState


def validate(state: RepairState, deps) -> dict:
    candidates = list(state["candidates"])
    best = state.get("best")
    seen = {c["patch"]: c for c in candidates if c["patch"] and c["status"] != "pending"}
    for i, cand in enumerate(candidates):
        if cand["status"] != "pending":
            continue
        if best is not None:  # a fix is in hand: the rest of this round is not needed
            cand = {**cand, "status": "skipped", "reason": "a fix was already found"}
        else:
            cand = check(cand, state, deps, seen)
            if cand["patch"]:
                seen.setdefault(cand["patch"], cand)
            if cand["status"] == "fixed":
                best = cand
        candidates[i] = cand
        deps.recorder.write("validate", candidate=cand)
        deps.log(f"  candidate {cand['round']}.{cand['index']}: {cand['status']} {cand['reason']}".rstrip())
    return {"candidates": candidates, "best": best}


def check(cand: Candidate, state: RepairState, deps, seen: dict) -> Candidate:
    text = cand["response"]
    if cand["finish_reason"] == "length" and not cand["code"]:
        return {**cand, "status": "truncated", "reason": "the answer was cut off at the token limit"}
    diff = "" if cand["code"] else answers.extract_diff(text)
    if not cand["code"] and not diff:
        why = "no parsable code in the answer" if answers.has_code_attempt(text) else "no code in the answer"
        return {**cand, "status": "no_code", "reason": why}
    scratch = deps.workdir
    patching.reset(scratch)
    try:
        hint = list(dict.fromkeys(loc["file"] for loc in state.get("locations", [])))
        applied = patching.apply_code(scratch, cand["code"], hint) if cand["code"] \
            else patching.apply_diff(scratch, diff)
        if not applied.ok:
            return {**cand, "status": "not_applicable", "reason": applied.reason}
        patch = patching.current_diff(scratch)
        cand = {**cand, "patch": patch}
        if patch in seen:
            prev = seen[patch]
            return {**cand, "status": prev["status"], "tests": prev["tests"],
                    "reason": f"same patch as candidate {prev['round']}.{prev['index']}"}
        tampered = [f for f in patching.changed_files(patch) if patching.is_test_file(f)]
        if tampered and not deps.settings.allow_test_edits:
            return {**cand, "status": "test_edit", "reason": f"edits test files: {', '.join(tampered)}"}
        return run_checks(cand, state, deps)
    finally:
        patching.reset(scratch)
