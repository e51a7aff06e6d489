"""The schedule: sources x locations, cheapest source first, within a budget (`policy.Budget`).

Every source runs over all its locations before the next (more expensive) source starts: a
mutation costs one test run, an infill sample costs model tokens too. Candidates whose syntax
tree equals one already tried are skipped. The search stops at the first candidate that `check`
calls a fix, or when the candidates, the tokens or the wall time run out. A fix that matches an
anti-pattern (`judge/antipatterns.py`) is kept but does not stop the search: a clean one may follow.

The mutants are evidence too (mutation-based fault localization, as Metallaxis and MUSE): a line
whose mutants change the failing tests' outcome (they pass, or fail differently) depends on what
the failure depends on; a line whose every mutant leaves the failure as it was likely does not.
Each later source visits its locations in that order (`by_evidence`), within the same budget.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ..policy import Budget
from ..state import Location
from . import Edit, SearchContext


@dataclass
class Outcome:
    fixes: list = field(default_factory=list)  # checked candidates that passed the full suite, in order
    tried: int = 0
    stop_reason: str = ""
    by_source: dict = field(default_factory=dict)  # source -> {"tried", "seconds", "tokens"}
    evidence: dict = field(default_factory=dict)  # (file, line) -> the failure signature of each mutant there


def source(name: str):
    """The module `repair_agent.search.<name>`; its `candidates(loc, ctx)` yields Edits."""
    return importlib.import_module(f"{__package__}.{name}").candidates


def run_search(plan: Iterable[tuple], ctx: SearchContext,
               check: Callable[[Edit], dict], budget: Budget) -> Outcome:
    """`plan` is (source, its locations[, how many of them it visits]) in the order to run them, each
    source's locations reordered by the evidence so far; `check(edit)` runs the tests
    and returns the candidate's record (with "status"). With `budget.plausible` > 1 the search
    goes on after the first mutation fix through the rest of that line's mutants (the
    alternatives to a fix sit beside it), for at most `budget.after_first` more candidates; a fix
    from the model ends the search at once (more samples would cost tokens)."""
    out = Outcome()
    seen: set[bytes] = set()  # digests: a tree's dump is 370 KB on youtube-dl's utils.py
    first_at, clean = 0, 0  # a suspect fix (an anti-pattern, see antipatterns.py) does not end the search
    for name, locations, *take in plan:
        locations = by_evidence(locations, out.evidence)[:take[0] if take else None]
        stats = out.by_source.setdefault(name, {"tried": 0, "seconds": 0.0, "tokens": 0})
        for loc in locations:
            before = ctx.tokens["prompt"] + ctx.tokens["completion"]
            start = time.monotonic()
            for edit in source(name)(loc, ctx):
                out.stop_reason = budget.spent(out.tried, ctx.tokens, first_at)
                if out.stop_reason:
                    break
                key = edit.get("tree") or normalized(edit["text"])
                if key is None or (key := hashlib.sha256(f"{edit['file']}\0{key}".encode()).digest()) in seen:
                    continue
                seen.add(key)
                out.tried += 1
                stats["tried"] += 1
                record = check(edit)
                if ctx.bases is not None:  # a first edit that got further is a base for two-edit candidates
                    ctx.bases.offer(edit, record)
                if name == "mutate":
                    out.evidence.setdefault((edit["file"], edit["line"]), []).append(failure_signature(record))
                if record["status"] == "fixed":
                    out.fixes.append(record)
                    if record.get("suspect"):
                        continue
                    clean += 1
                    first_at = first_at or out.tried
                    if budget.enough(clean, name):
                        out.stop_reason = f"{len(out.fixes)} plausible fix(es) found"
                        break
            stats["seconds"] = round(stats["seconds"] + time.monotonic() - start, 3)
            stats["tokens"] += ctx.tokens["prompt"] + ctx.tokens["completion"] - before
            if clean and not out.stop_reason:
                out.stop_reason = "the fix's line searched to its end"
            if out.stop_reason:
                return out
    out.stop_reason = out.stop_reason or "every candidate of the search tried"
    return out


def failure_signature(record: dict) -> str:
    """How the failing tests ended with a candidate: "passed", "timed out", or their failures."""
    if record.get("status") != "failed":
        return "passed"
    run = (record.get("tests") or {}).get("failing") or {}
    if run.get("timed_out"):
        return "timed out"
    cases = [f"{c['id']} {c['outcome']}: {(c.get('message') or '').strip()[:200]}" for c in run.get("cases", [])
             if c.get("outcome") != "passed"]
    return "\n".join(cases) or record.get("reason", "")


def by_evidence(locations: list[Location], evidence: dict) -> list[Location]:
    """Lines whose mutants changed the failing tests' outcome first (the larger share first), then
    lines without mutants, then lines whose every mutant left the failure as it was; otherwise in
    the given order. The failure as it was: the signature most mutants share."""
    if not evidence:
        return list(locations)
    untouched = Counter(sig for sigs in evidence.values() for sig in sigs).most_common(1)[0][0]

    def key(loc: Location):
        sigs = evidence.get((loc["file"], loc["line"]))
        if not sigs:
            return (1, 0.0)
        changed = sum(sig != untouched for sig in sigs) / len(sigs)
        return (0, -changed) if changed else (2, 0.0)

    return sorted(locations, key=key)


def normalized(text: str) -> str | None:
    """The file's syntax tree without positions or comments (None when it does not parse)."""
    try:
        return ast.dump(ast.parse(text))
    except (SyntaxError, ValueError):
        return None
