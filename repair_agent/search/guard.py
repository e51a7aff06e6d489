"""Choosing among plausible patches: every one passes the tests, so prefer the least surprising.

A patch that passes the tests may still be wrong (it overfits them). Among equals, the smallest
patch wins (fewest changed lines, then fewest changed characters), then the cheaper source, then
the one found first: a one-token operator change is a likelier human fix than a new branch.
"""

from __future__ import annotations

from . import SOURCES


def rank(fixes: list[dict]) -> list[dict]:
    """The plausible fixes, the most natural first."""
    return sorted(fixes, key=lambda f: (size(f["patch"]), SOURCES.index(f["source"]) if f["source"] in SOURCES
                                        else len(SOURCES)))


def size(patch: str) -> tuple[int, int]:
    """(changed lines, changed characters) of a unified diff."""
    changed = [ln[1:] for ln in patch.splitlines()
               if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    return len(changed), sum(len(ln.strip()) for ln in changed)
