"""The search: many small candidate edits at the ranked locations, validated by running the tests.

A *source* is a plain function `candidates(loc, ctx) -> Iterator[Edit]` in its own module:
`mutate` (program mutations, no model) and `infill` (the model fills one masked line); after mutate,
`chain` makes second edits on the mutants that got further than the buggy code (no model). The
schedule (`schedule.py`) walks locations x sources cheapest first within a budget, drops
duplicates by normalized syntax tree, and stops at the first candidate that passes the full suite.
The SemCoder monologue with a rewritten function (`nodes/propose.py`) is the escalation when
the cheap sources find nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TypedDict

from ..state import Location

SOURCES = ("mutate", "infill")  # cheapest first


class Edit(TypedDict, total=False):
    file: str  # relative to the repository root
    text: str  # the file's whole new text (every byte outside the edit kept)
    line: int  # the location the edit was made for
    source: str  # mutate | infill
    note: str  # what changed, e.g. "`<` -> `<=`" or the infilled line
    logprob: float  # the model's mean log-probability of the line (infill, when the server gives it)
    tree: str  # `normalized(text)`, when the source has it already
    chain: list  # a second edit (chain.py): the notes of the first edit and of this one


@dataclass
class SearchContext:
    """What a source may use: the tree, the model and its profile, the settings, the spend."""

    root: Path
    settings: object
    model: object = None  # None when no model source is asked for
    profile: object = None
    tokens: dict = field(default_factory=lambda: {"prompt": 0, "completion": 0})
    bases: object = None  # chain.Bases: the candidates that progressed, for the second edits
    failure: str = ""  # how the failing test fails, in a few lines (outcomes.failure_lines): the model's evidence
    log: Callable[[str], None] = print

    def source_text(self, file: str) -> str:
        return (self.root / file).read_text(encoding="utf-8")


Source = Callable[[Location, SearchContext], Iterator[Edit]]


def record_search(summary: dict, deps) -> None:
    """The search's record and log line, once its summary is whole: written by the search node when
    it found no fix, else by the judge once it has ranked the fixes."""
    deps.recorder.write("search", **summary)
    deps.log(f"search: {summary['tried']} candidates, {len(summary['plausible'])} plausible fix(es); "
             f"{summary['stop_reason']}")
