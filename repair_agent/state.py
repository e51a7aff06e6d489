"""The one typed state that flows through the graph.

Everything is plain JSON data (TypedDicts of str/int/list/dict) so that LangGraph's SQLite
checkpointer can store it and `--resume` can reload it without custom serializers.
"""

from __future__ import annotations

from typing import Literal, TypedDict

try:
    from typing import NotRequired
except ImportError:  # Python 3.10
    from typing_extensions import NotRequired

Outcome = Literal["passed", "failed", "error", "skipped"]


class TestCase(TypedDict):
    id: str  # pytest node id, e.g. "tests/test_mod.py::test_x[1]"
    outcome: Outcome
    message: str  # first line of the failure message
    details: str  # the failure text (traceback), truncated
    seconds: NotRequired[float]  # how long the test ran (pytest's JUnit `time`)


class TestRun(TypedDict):
    cases: list[TestCase]
    returncode: int
    timed_out: bool
    duration_s: float
    output_tail: str  # last part of pytest's console output
    runner: NotRequired[str]  # "worker" (the warm test worker) or "exec" (a fresh pytest process)
    fallback: NotRequired[str]  # why a run went through exec although the worker was on


class Location(TypedDict):
    file: str  # relative to the repository root
    function: str
    line: int
    score: float


class CandidateTests(TypedDict):
    failing: TestRun  # the tests that failed before the patch
    suite: TestRun | None  # the full suite, run only when the failing and the covering tests pass
    covering: NotRequired[TestRun | None]  # the passing tests that ran a changed line, run before the suite
    covering_rerun: NotRequired[TestRun]  # the newly failing tests run once more (checks.Rerun)
    suite_rerun: NotRequired[TestRun]
    covering_original: NotRequired[TestRun]  # those failing again, on the code before the patch
    suite_original: NotRequired[TestRun]


class Faithfulness(TypedDict, total=False):
    claims: int  # execution claims parsed from the monologue
    checked: int  # claims the real trace could settle
    contradicted: int
    score: float | None  # 1 - contradicted / checked
    contradictions: list[str]  # e.g. "you said `middle = 2` at line 6; it was 1"


class Candidate(TypedDict, total=False):
    round: int
    index: int
    response: str  # the model's raw text
    finish_reason: str
    code: str  # extracted code ("" when the response had none)
    patch: str  # unified diff against the snapshot ("" when not applicable)
    status: str  # no_code | truncated | not_applicable | test_edit | failed | passed_failing | fixed
    stage: str  # the run that decided: failing | covering (the tests that ran a changed line) | suite
    reason: str
    tests: CandidateTests | None
    faithfulness: Faithfulness | None  # the monologue checked against the real trace
    source: str  # which search source made it: mutate | infill | refine
    note: str  # what the edit changed (search candidates)
    file: str  # the file and line a search candidate edited
    line: int
    flaky: list[str]  # failed with the patch, then passed on a rerun or failed on the original too (checks.Rerun)


class Tokens(TypedDict):
    prompt: int
    completion: int


class RepairState(TypedDict, total=False):
    run_id: str
    test_args: list[str]
    round: int
    tests_before: TestRun
    failing: list[str]  # node ids failing before any patch: the ones to fix
    baseline: list[str]  # failing before too, but not asked about (--known-failures): may stay failing
    locations: list[Location]
    covers: dict | None  # line -> the passing tests that ran it (localization's coverage; None without SBFL)
    context: str  # code shown to the model (the top-ranked functions)
    trace: list[dict]  # real execution steps of the first failing test
    trace_text: str  # the same, compact, for the prompt
    feedback: str  # evidence from the previous round, for refinement
    candidates: list[Candidate]  # every candidate of every round
    best: Candidate | None  # the fix: the model's validated one, or the judge's pick of the search's
    tokens: Tokens
    started_at: float
    status: str  # fixed | not_fixed | no_failures | error
    stop_reason: str
    root_cause: str
    search: dict  # the search's summary: sources, lines, candidates tried, spend by source
    fixes: list[dict]  # the search's plausible fixes, in the order found, for the judge to rank
    attempt: dict | None  # the search's closest failing candidate, with its diff (when nothing fixed)
