"""Where is the fault? Traceback frames inside the repo, plus spectrum-based ranking (SBFL)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ..localize import frames
from ..policy import rerun_timeout
from ..state import Location, RepairState

NUMBERED = re.compile(r"^[> ]?\s*\d+ \| ?", re.M)


def localize(state: RepairState, deps) -> dict:
    root = deps.workdir
    failed = [c["details"] or c["message"] for c in state["tests_before"]["cases"] if c["id"] in set(state["failing"])]
    locations = frames.rank_frames(failed, root)
    covers = None  # line -> the passing tests that ran it: validation runs those before the full suite
    if deps.settings.use_sbfl:
        from ..localize import sbfl

        spec = sbfl.spectrum(deps.sandbox, state["test_args"], state["failing"], timeout=deps.settings.test_timeout_s,
                             per_test_timeout=rerun_timeout(state, deps.settings))
        locations = combine(sbfl.with_functions(sbfl.rank_lines(spec), root), locations)
        covers = spec.get("covers")
    if not locations:
        locations = imported_functions(root, state["failing"][0])
    context = plain_code(frames.context_for(root, locations[:5], budget_tokens=1500))
    deps.recorder.write("localize", locations=locations[:20], context=context)
    deps.log("suspects: " + ", ".join(f"{loc['file']}:{loc['line']} {loc['function']}" for loc in locations[:3]))
    return {"locations": locations, "context": context, "covers": covers}


def combine(spectrum: list[Location], traceback: list[Location]) -> list[Location]:
    """SBFL scores, with lines that also sit in a traceback lifted by half their frame score."""
    bonus = {(t["file"], t["line"]): t["score"] / 2 for t in traceback}
    merged = {(s["file"], s["line"]): {**s, "score": round(s["score"] + bonus.pop((s["file"], s["line"]), 0), 6)}
              for s in spectrum}
    for t in traceback:
        if (t["file"], t["line"]) in bonus:
            merged[(t["file"], t["line"])] = {**t, "score": round(bonus[(t["file"], t["line"])], 6)}
    return sorted(merged.values(), key=lambda loc: -loc["score"])


def imported_functions(root: Path, test_id: str) -> list[Location]:
    """No frame and no spectrum: the functions of the repo modules that the failing test imports."""
    file = test_id.split("::")[0]
    try:
        tree = ast.parse((root / file).read_text())
    except (OSError, SyntaxError, ValueError):
        return []
    modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    modules += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    out: list[Location] = []
    for mod in modules:
        for rel in (mod.replace(".", "/") + ".py", "src/" + mod.replace(".", "/") + ".py"):
            if (root / rel).is_file() and not frames.is_test_file(rel):
                for start, _end, _indent, name in frames.function_spans(root, rel):
                    out.append(Location(file=rel, function=name, line=start, score=0.0))
    return out


def plain_code(context: str) -> str:
    """The context without its line-number gutter: models copy a gutter back into their code."""
    return NUMBERED.sub("", context)
