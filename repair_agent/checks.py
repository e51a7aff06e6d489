"""Does a candidate fix the bug? The failing tests first, then the passing tests that ran a changed
line (where localization's coverage map says which), then the full suite. The model's candidates
(nodes/validate.py) and the search's (nodes/search.py) are checked alike."""

from __future__ import annotations

import re

from . import patching
from .policy import suite_limit
from .localize import sbfl
from .outcomes import failing_ids, ran, trimmed
from .sandbox import crash_note
from .state import Candidate, RepairState


def run_checks(cand: Candidate, state: RepairState, deps, overlay: dict | None = None,
               timeout: float | None = None, per_test_timeout: int | None = None) -> Candidate:
    """The failing tests, then the covering tests, then the full suite, on the scratch tree (with
    `overlay`'s files over it). `stage` says which run decided."""
    timeout = timeout or deps.settings.test_timeout_s
    per_test_timeout = per_test_timeout or deps.settings.per_test_timeout_s
    # -x: one failure is enough to reject, and a hanging test costs one timeout, not one per test
    target = deps.sandbox.run_tests(["-x", *state["failing"]], timeout=timeout,
                                    per_test_timeout=per_test_timeout, overlay=overlay)
    still = failing_ids(target)
    if still or target["timed_out"] or ran(target) < len(state["failing"]):
        why = "timed out" if target["timed_out"] else (
            still_failing(target, still, state["failing"]) if still
            else f"the test run crashed: {crash_note(target)}" if crash_note(target)
            else "the failing tests did not run (skipped or not collected)")
        return {**cand, "status": "failed", "stage": "failing", "reason": why,
                "tests": {"failing": trimmed(target), "suite": None}}
    tests = {"failing": trimmed(target), "suite": None}
    timeout = suite_limit(state, timeout)  # what follows runs more of the suite, maybe all of it
    baseline = set(state.get("baseline") or [])  # known failures: they may stay failing
    rerun = Rerun(state, deps, overlay, timeout, per_test_timeout, tests)
    covering = selected_tests(cand, state, deps, overlay)
    if covering:  # -x again: a candidate that breaks one of them is rejected without the full suite
        near = deps.sandbox.run_tests(["-x", *covering], timeout=timeout,
                                      per_test_timeout=per_test_timeout, overlay=overlay)
        tests["covering"] = trimmed(near)
        broken = [t for t in failing_ids(near) if t not in baseline]
        if broken and not near["timed_out"] and not crash_note(near):
            broken = rerun.confirm(broken, "covering")
        if near["timed_out"] or broken or crash_note(near):
            why = "timed out" if near["timed_out"] else f"breaks {broken[0]}{rerun.said(broken)}" if broken \
                else crash_note(near)
            return {**cand, **rerun.record(), "status": "passed_failing", "stage": "covering", "tests": tests,
                    "reason": f"{why} (of the {len(covering)} tests that ran a changed line; the full suite did not run)"}
    cand = {**cand, "stage": "suite"}
    suite = deps.sandbox.run_tests(state["test_args"], timeout=timeout,
                                   per_test_timeout=per_test_timeout, overlay=overlay)
    tests["suite"] = trimmed(suite)
    broken = [t for t in failing_ids(suite) if t not in baseline]
    if broken and not suite["timed_out"]:
        broken = rerun.confirm(broken, "suite")
    if suite["timed_out"] or broken:
        why = "the full suite timed out" if suite["timed_out"] else \
            f"breaks {len(broken)} test(s): {', '.join(broken[:3])}{rerun.said(broken)}"
        return {**cand, **rerun.record(), "status": "passed_failing", "reason": why, "tests": tests}
    # a test skipped now that ran before: a skip cannot prove a fix, yet tqdm's timing tests skip
    # themselves on a loaded machine ("cpu time not accurate"), so it gets the same second chance
    if ran(suite) < ran(state["tests_before"]) and rerun.confirm(not_run(state["tests_before"], suite), "unran"):
        return {**cand, **rerun.record(), "status": "passed_failing", "tests": tests,
                "reason": f"fewer tests ran ({ran(suite)} < {ran(state['tests_before'])})"
                          + (f": {crash_note(suite)}" if crash_note(suite) else "")}
    cand = {**cand, **rerun.record()}
    excused = baseline | set(rerun.flaky)  # failures that may stay in the suite's report
    if suite["returncode"] != 0 and not (excused and failing_ids(suite)):  # all passed, yet pytest failed
        return {**cand, "status": "passed_failing", "tests": tests,
                "reason": f"pytest exited with code {suite['returncode']} although its report shows no failure"}
    return {**cand, "status": "fixed", "reason": "the full suite passes" + rerun.said([]), "tests": tests}


RERUN_MOST = 3  # more tests broken at once is the patch, not noise: no rerun


def not_run(before, now) -> list[str]:
    """The tests that ran in `before` and were skipped in `now`, or are not in it."""
    outcome = {c["id"]: c["outcome"] for c in now["cases"]}
    return [c["id"] for c in before["cases"] if c["outcome"] != "skipped" and outcome.get(c["id"], "skipped") == "skipped"]


class Rerun:
    """A second chance for the tests that passed before the patch and fail with it, or no longer run
    with it (issue 33: a timing test fails, or skips itself, by noise on a loaded machine; stage
    "unran"): just those, once each, where they would reject the
    candidate, and only where at most RERUN_MOST broke. Those that fail again run on the original code
    too (a search candidate's overlay left out): a test that fails there as well, now, is the
    machine's state, not the patch's doing (tqdm's overhead tests at load 5 fail every time). Only the
    rest count. The runs go into `tests["<stage>_rerun"]` and `tests["<stage>_original"]`; the tests
    excused, and not failing later, into the candidate's `flaky`."""

    def __init__(self, state, deps, overlay, timeout, per_test_timeout, tests: dict):
        self.passed_before = {c["id"] for c in (state.get("tests_before") or {}).get("cases", [])
                              if c["outcome"] == "passed"}

        def run_tests(ids, over):
            return deps.sandbox.run_tests(ids, timeout=timeout, per_test_timeout=per_test_timeout, overlay=over)
        self.run_tests = lambda ids: run_tests(ids, overlay)
        # no overlay: the candidate is the tree itself (a model's patch applied), no original to run
        self.run_original = (lambda ids: run_tests(ids, None)) if overlay is not None else None
        self.tests, self.flaky, self.again = tests, [], []

    def confirm(self, broken: list[str], stage: str) -> list[str]:
        """`broken` less the tests that pass when run again (those that passed before the patch)."""
        self.flaky = [t for t in self.flaky if t not in broken]  # passed on a rerun, failed later: no excuse
        again = [t for t in broken if t in self.passed_before and t not in self.again]
        if not again or len(broken) > RERUN_MOST:
            return broken
        run = self.run_tests(again)
        self.again += again
        self.tests[f"{stage}_rerun"] = trimmed(run)
        excused = {c["id"] for c in run["cases"] if c["outcome"] == "passed"}
        still = [t for t in again if t not in excused]
        if still and self.run_original:
            original = self.run_original(still)
            self.tests[f"{stage}_original"] = trimmed(original)
            excused.update(c["id"] for c in original["cases"] if c["outcome"] != "passed")
        self.flaky += [t for t in again if t in excused]
        return [t for t in broken if t not in self.flaky]

    def said(self, broken: list[str]) -> str:
        """What the reruns found, for the reason: ", also on a rerun" (the tests that reject failed
        again), "; flaky, passed on a rerun: ..." (those that did not count)."""
        text = ", also on a rerun" if any(t in self.again for t in broken) else ""
        return text + (f"; flaky, passed on a rerun or failed on the original code too: "
                       f"{', '.join(self.flaky[:3])}" if self.flaky else "")

    def record(self) -> dict:
        return {"flaky": self.flaky} if self.flaky else {}


def selected_tests(cand: Candidate, state: RepairState, deps, overlay: dict | None) -> list[str]:
    """The passing tests whose coverage touches a line the candidate changes; none without a map,
    and none where they are every test there is (the full suite runs next anyway)."""
    covers = state.get("covers")
    if not covers:
        return []
    # the search: the scratch tree is the snapshot, the overlay the new text
    patch = patching.overlay_diff(deps.workdir, overlay, context=0) if overlay is not None else cand.get("patch", "")
    selected = [t for t in sbfl.covering_tests(covers, changed_lines(patch)) if t not in state["failing"]]
    # a big suite's map names only the tests that ran a failing test's lines: `passing` counts them all
    return selected if len(selected) < covers.get("passing", len(covers["tests"])) else []


HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,(\d+))? @@")


def changed_lines(patch: str) -> dict[str, set[int]]:
    """file -> the old file's lines that a unified diff removes or replaces, and the two lines around
    each pure insertion."""
    out: dict[str, set[int]] = {}
    file, old, left, removed = None, 0, 0, False  # left: old and new lines still to come in this hunk
    for line in patch.splitlines():
        hunk = HUNK.match(line)
        if left <= 0:
            if line.startswith("+++ "):
                file = line[6:].strip() if line.startswith("+++ b/") else None
            elif hunk:
                old = int(hunk[1]) + (hunk[2] == "0")  # a pure insertion's header names the line before it
                left = int(hunk[2] or 1) + int(hunk[3] or 1)
            continue
        if line.startswith("-"):
            out.setdefault(file, set()).add(old)
            old, left, removed = old + 1, left - 1, True
        elif line.startswith("+"):
            if not removed:  # an insertion, not a replacement
                out.setdefault(file, set()).update((old - 1, old))
            left -= 1
        elif line.startswith(" "):
            old, left, removed = old + 1, left - 2, False
    out.pop(None, None)
    return out


def still_failing(run, still: list[str], failing: list[str]) -> str:
    """What a `-x` run measured: it stops at the first failure, so the tests after it never ran."""
    total, first = len(failing), still[0]
    if first not in failing:  # a collection or internal error: no failing test got to run
        note = next((c["message"] for c in run["cases"] if c["id"] == first and c["message"]), "")
        return f"the failing tests did not run: {first} errored first" + (f" ({note})" if note else "")
    if total == 1:
        return f"the failing test still fails: {first}"
    if len(still) > 1:  # -x let more than one through (a failing test and its teardown)
        return f"{len(still)} of {total} failing tests still fail"
    passed = sum(c["outcome"] == "passed" for c in run["cases"])
    if not passed:
        return f"stopped at the first of {total} failing tests: {first} still fails"
    return f"{passed} of {total} failing tests pass, then {first} still fails (stopped there)"
