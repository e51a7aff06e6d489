"""Two edits when one makes progress (issue 31): a source that mutates a line of a candidate that
was no fix but got further than the buggy code.

A candidate *progresses* when the failing tests, run on it, pass more of themselves than on the
buggy code, or when the first failing test fails later in its own body or with another exception
(an edit that moved the failure on). `Bases` keeps the best `BASES` of them as the search checks
its candidates; this source then yields, for each base, the mutants (`mutate.py`, fix shapes
included) of the next ranked lines of the base's file, made on the base's text: a two-edit
candidate whose note and `chain` record both edits. At most `CANDIDATES` in all.
"""

from __future__ import annotations

from typing import Iterator

from ..outcomes import BAD, FRAME_END
from ..state import Location
from . import Edit, SearchContext
from .mutate import mutants

BASES = 3  # progressing first edits kept, the most progress first
CANDIDATES = 150  # second edits in all: each is a test run


def failure_point(case: dict) -> tuple[int, str]:
    """(the last line of the test's own file in the failure's traceback, the exception's name)."""
    test_file = case["id"].split("::")[0]
    frames = FRAME_END.findall(case.get("details") or "")
    lines = [int(line) for path, line, _ in frames if test_file.endswith(path) or path.endswith(test_file)]
    errors = [error for _, _, error in frames if error]
    return (lines[-1] if lines else 0), (errors[-1] if errors else "")


def progress(before: dict, failing: list[str], record: dict) -> tuple[int, int]:
    """How much further `record` (a checked candidate) got than `before` (the buggy code's run of
    the tests): (failing tests it passes, 1 if the first one still failing fails later or with
    another exception); (0, 0) for none."""
    if record.get("status") == "fixed" or not record.get("tests"):
        return 0, 0
    run = (record["tests"] or {}).get("failing") or {}
    cases = {c["id"]: c for c in run.get("cases", [])}
    passed = sum(cases[t]["outcome"] == "passed" for t in failing if t in cases)
    old = {c["id"]: c for c in (before or {}).get("cases", []) if c["outcome"] in BAD}
    first = next((c for c in run.get("cases", []) if c["outcome"] in BAD), None)
    moved = 0
    if first is not None and first["id"] in old:
        (line, error), (old_line, old_error) = failure_point(first), failure_point(old[first["id"]])
        moved = int(line > old_line or bool(error and old_error and error != old_error))
    return passed, moved


class Bases:
    """The progressing candidates of one search, best first (`offer` each checked candidate)."""

    def __init__(self, before: dict, failing: list[str], keep: int = BASES):
        self.before, self.failing, self.keep = before, failing, keep
        self.kept: list[tuple[tuple[int, int], Edit]] = []
        self.yielded = 0

    def offer(self, edit: Edit, record: dict) -> None:
        if edit.get("chain"):
            return  # two edits at most
        gain = progress(self.before, self.failing, record)
        if gain > (0, 0):
            self.kept.append((gain, edit))
            self.kept.sort(key=lambda kept: kept[0], reverse=True)  # stable: the earlier first among equals
            del self.kept[self.keep:]

    def best(self) -> list[Edit]:
        return [edit for _, edit in self.kept]


def candidates(loc: Location, ctx: SearchContext) -> Iterator[Edit]:
    """The second edits at `loc`, one base after another."""
    bases = getattr(ctx, "bases", None)
    for base in bases.best() if bases else []:
        for edit in second_edits(base, loc, ctx.source_text(base["file"])):
            if bases.yielded >= CANDIDATES:
                return
            bases.yielded += 1
            yield edit


def second_edits(base: Edit, loc: Location, original: str) -> Iterator[Edit]:
    """The mutants of `loc`'s line made on the base's text (the line moved by what the base added
    or removed above it); none on the base's own line or in another file."""
    if loc["file"] != base["file"] or loc["line"] == base["line"]:
        return
    shift = base["text"].count("\n") - original.count("\n")
    line = loc["line"] + (shift if loc["line"] > base["line"] else 0)
    for text, note in mutants(base["text"], line):
        yield Edit(file=base["file"], text=text, line=loc["line"], source="mutate",
                   note=f"{base['note']}; then {note}", chain=[base["note"], note])
