"""What the project's suite costs a BugsInPy task, against the bug's test files alone (no agent, no
model): the steps of `fix` that run the suite, each timed with either suite on the same tree, in the
same sandbox, side by side (interleaved, `--repeats` times, medians).

    .venv/bin/python benchmarks/bugsinpy_suite_cost.py --data BugsInPy --repos CLONES \
        --ids youtube-dl-1,tqdm-6 [--repeats 3] [--records RUN/records.jsonl ...] \
        > benchmarks/results/bugsinpy-suite-cost.jsonl

For each bug and suite: `reproduce` (the suite once on the buggy tree: its tests, failures and
baseline), `coverage` (the suite under per-test coverage, localization's spectrum, whose `covers`
map selects the tests that ran a changed line) and `human_fix` (the human fix checked as a search
candidate is, checks.run_checks under the search's limits: the failing tests, the selected tests,
then the suite; which stage decided and how many tests were selected). `--records`: a committed
run's plausible patch of the bug is checked the same way (`recorded`), as the search would check it
(e.g. tqdm-6's patch that breaks tests_tqdm.py::test_all_defaults). The image build is timed apart
(once a bug, before the rest).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from repair_agent.bench.bugsinpy import load_bugsinpy, reference_patch
from repair_agent.bench.reproducibility import task_settings
from repair_agent.bench.runner import code_version
from repair_agent.checks import run_checks
from repair_agent.localize import sbfl
from repair_agent.outcomes import failing_ids
from repair_agent.patching import apply_diff, changed_files
from repair_agent.policy import candidate_limits, candidate_timeout
from repair_agent.sandbox import open_sandbox


def timed(step):
    start = time.monotonic()
    out = step()
    return round(time.monotonic() - start, 2), out


def overlay_of(task, patch: str, tree: Path) -> dict[str, str]:
    """The files `patch` changes, as their text after it."""
    task.materialize(tree)
    assert apply_diff(tree, patch).ok, f"{task.task_id}: the patch does not apply"
    return {rel: (tree / rel).read_text(encoding="utf-8") for rel in changed_files(patch)}


def recorded_patch(files: list[str], task_id: str) -> str | None:
    """The last verified patch of `task_id` in these records files."""
    found = [r["patch"] for f in files for r in map(json.loads, Path(f).read_text().splitlines())
             if r.get("task_id") == task_id and r.get("verified")]
    return found[-1] if found else None


def one_pass(box, tree: Path, settings, suite: list[str], candidates: dict[str, dict]) -> dict:
    seconds, run = timed(lambda: box.run_tests(suite, timeout=settings.test_timeout_s,
                                               per_test_timeout=settings.per_test_timeout_s))
    baseline = [t for t in failing_ids(run) if settings.is_baseline(t)]
    failing = [t for t in failing_ids(run) if t not in baseline]
    out = {"reproduce_s": seconds, "tests": len(run["cases"]), "failing": len(failing), "baseline": len(baseline)}
    seconds, spec = timed(lambda: sbfl.spectrum(box, suite, failing, timeout=settings.test_timeout_s,
                                                per_test_timeout=settings.per_test_timeout_s))
    out.update(coverage_s=seconds, covers_map=spec.get("covers") is not None)
    state = {"failing": failing, "baseline": baseline, "test_args": suite, "tests_before": run,
             "covers": spec.get("covers")}
    deps = SimpleNamespace(sandbox=box, settings=settings, workdir=tree)
    run_timeout, per_test = candidate_limits(candidate_timeout(state, settings))
    out["candidate_run_limit_s"] = run_timeout
    for name, overlay in candidates.items():
        seconds, cand = timed(lambda: run_checks({"patch": ""}, state, deps, overlay, timeout=run_timeout,
                                                 per_test_timeout=per_test))
        covering = cand["tests"].get("covering")
        out.update({f"{name}_s": seconds, name: {"status": cand["status"], "stage": cand.get("stage"),
                                                 "reason": cand["reason"],
                                                 "selected": len(covering["cases"]) if covering else 0}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--repos", required=True)
    ap.add_argument("--ids", default="youtube-dl-1,tqdm-6")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--records", nargs="*", default=[], help="runs' records.jsonl: their plausible patches")
    args = ap.parse_args()
    from repair_agent.config import Settings

    base = Settings(sandbox="docker", test_timeout_s=600, per_test_timeout_s=60)
    results = []
    for task in load_bugsinpy(args.data, args.repos, ids=args.ids.split(",")):
        settings = task_settings(task, base)
        suites = {"bug_files": list(task.meta["test_files"]), "project": list(task.test_args)}
        with tempfile.TemporaryDirectory() as tmp:
            candidates = {"human_fix": overlay_of(task, reference_patch(task), Path(tmp) / "human")}
            if recorded := recorded_patch(args.records, task.task_id):
                candidates["recorded"] = overlay_of(task, recorded, Path(tmp) / "recorded")
            tree = task.materialize(Path(tmp) / "repo")
            build_s, box = timed(lambda: open_sandbox("docker", tree, image=settings.image, log=lambda m: None,
                                                      deps=settings.deps, install_project=settings.install_project))
            try:
                runs = {name: [] for name in suites}
                for _ in range(args.repeats):  # interleaved: the machine's load falls on both alike
                    for name, suite in suites.items():
                        runs[name].append(one_pass(box, tree, settings, suite, candidates))
            finally:
                box.close()
        row = {"task": task.task_id, "code": code_version(), "image_s": build_s, "image": settings.image}
        for name, passes in runs.items():
            last = passes[-1]
            row[name] = {"modules": len(suites[name]),
                         **{k: v for k, v in last.items() if not k.endswith("_s") or k == "candidate_run_limit_s"},
                         **{k: statistics.median(p[k] for p in passes) for k in last if k.endswith("_s")
                         and k != "candidate_run_limit_s"},
                         "runs": passes}
        results.append(row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
