"""Run the test command once on the user's code: what fails, and how."""

from __future__ import annotations

from ..envfault import env_fault
from ..errors import BadInput, EnvFault
from ..sandbox import crash_note
from ..state import RepairState
from ..outcomes import failing_ids, modules_of


def reproduce(state: RepairState, deps) -> dict:
    test_args = state["test_args"]
    run = run_tests(test_args, deps)
    named = modules_of(deps.settings.failing_tests)
    if run["timed_out"] and named and named != test_args:
        # a suite that hangs where no per-test limit reaches (tqdm-2: its own bars deadlock in a
        # garbage-collected __del__ while pytest writes a failure's report): the named tests' modules
        deps.log(f"warning: the test command timed out after {deps.settings.test_timeout_s:.0f}s; the suite "
                 f"is now the failing tests' own modules ({', '.join(named)})")
        test_args, run = named, run_tests(named, deps)
    deps.recorder.write("reproduce", tests=run)
    if run["timed_out"]:
        raise BadInput(f"the test command timed out after {deps.settings.test_timeout_s:.0f}s")
    if not run["cases"] and crash_note(run):
        raise BadInput(f"the test command crashed before reporting: {crash_note(run)}")
    if fault := env_fault(run, deps.workdir):
        raise EnvFault(fault)
    if not run["cases"]:
        last = run["output_tail"].strip().splitlines()[-1:] or [""]
        command = " ".join(["pytest", *state["test_args"]])
        raise BadInput(f"no tests collected by {command}: {last[0]}".strip(": "))
    baseline = [t for t in failing_ids(run) if deps.settings.is_baseline(t)]
    failing = [t for t in failing_ids(run) if t not in baseline]
    deps.log(f"{len(run['cases'])} tests, {len(failing)} failing"
             + (f", {len(baseline)} failing before and not asked about (the baseline)" if baseline else ""))
    return {"tests_before": run, "failing": failing, "baseline": baseline, "status": "" if failing else "no_failures",
            "test_args": test_args}


def run_tests(test_args: list[str], deps):
    return deps.sandbox.run_tests(test_args, timeout=deps.settings.test_timeout_s,
                                  per_test_timeout=deps.settings.per_test_timeout_s)
