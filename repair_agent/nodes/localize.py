"""Where is the fault? Functions first, then lines (localize/rank.py): the spectrum, the traceback frames and
the failure's data flow (a slice of the first failing test's trace); a name the test cannot import, said plainly."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from .. import policy
from ..errors import SandboxError
from ..localize import frames, rank
from ..localize.slice import trace_last_call
from ..outcomes import modules_of
from ..policy import rerun_timeout
from ..state import Location, RepairState

NUMBERED = re.compile(r"^[> ]?\s*\d+ \| ?", re.M)


def localize(state: RepairState, deps) -> dict:
    root = deps.workdir
    failed = [c["details"] or c["message"] for c in state["tests_before"]["cases"] if c["id"] in set(state["failing"])]
    locations = frames.rank_frames(failed, root)
    covers = None  # line -> the passing tests that ran it: validation runs those before the full suite
    missing = rank.missing_name(failed, root, state["failing"])
    if deps.settings.use_sbfl:
        spec = spectrum(state, deps)
        locations = rank.rank(spec, failed, root, state["failing"])
        if locations and not missing and deps.settings.use_trace:  # the failure's data flow through the top functions
            locations = rank.rank(spec, failed, root, state["failing"], trace=slice_trace(state, deps, locations))
        covers = spec.get("covers")
    elif missing:
        locations = rank.missing_ranking(missing, [], root)
    if not locations:
        locations = imported_functions(root, state["failing"][0])
    context = plain_code(frames.context_for(root, locations[:5], budget_tokens=1500))
    if missing:  # said plainly: no line of the code holds this bug yet
        context = rank.missing_text(missing, root) + "\n\n" + context
        deps.log(rank.missing_text(missing, root))
    deps.recorder.write("localize", locations=locations[:20], context=context)
    deps.log("suspects: " + ", ".join(f"{loc['file']}:{loc['line']} {loc['function']}" for loc in locations[:3]))
    return {"locations": locations, "context": context, "covers": covers}


def spectrum(state: RepairState, deps) -> dict:
    """The suite under coverage; where that outlasts the time limit (coverage slows tight loops, such
    as tqdm's overhead tests, many times over), the failing tests' own modules alone: a weaker
    spectrum, and a map of fewer passing tests for validation to run first, but a ranking."""
    from ..localize import sbfl

    def run(test_args):
        return sbfl.spectrum(deps.sandbox, test_args, state["failing"], timeout=deps.settings.test_timeout_s,
                             per_test_timeout=rerun_timeout(state, deps.settings), log=deps.log)

    try:
        return run(state["test_args"])
    except sbfl.SpectrumTimedOut as exc:
        modules = modules_of(state["failing"])
        if modules == state["test_args"]:
            raise
        deps.log(f"{exc}: the spectrum from the failing tests' modules alone ({', '.join(modules)})")
        return run(modules)


def slice_trace(state: RepairState, deps, locations: list[Location]) -> list[dict]:
    """The first failing test traced through the top functions, for the slice ([] when it cannot run)."""
    try:
        return trace_last_call(deps.sandbox, state["failing"][0], rank.trace_targets(locations),
                               timeout=policy.trace_timeout(deps.settings, state))
    except SandboxError as exc:  # the slice helps; its absence must not end the run
        deps.log(f"no trace for the slice: {exc}")
        return []


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
