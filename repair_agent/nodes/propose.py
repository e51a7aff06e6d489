"""Ask the model for a monologue and a fix, in SemCoder's refine format; one request, n samples."""

from __future__ import annotations

import ast
from pathlib import Path

from .. import answers, prompts
from ..faithfulness import check_monologue
from ..state import Candidate, RepairState
from ..outcomes import first_failure


def propose(state: RepairState, deps) -> dict:
    rnd = state.get("round", 0)
    messages = [{"role": "system", "content": prompts.text("system.txt").strip()},
                {"role": "user", "content": prompts.render(
                    "refine.j2", problem=problem_statement(state, deps), code=state["context"],
                    test=test_source(deps.workdir, state["failing"][0]),
                    failure=first_failure(state["tests_before"], limit=1200),
                    trace=state.get("trace_text", ""), feedback=state.get("feedback", ""))}]
    sampling = deps.sampling(rnd)
    gen = deps.model.generate(deps.profile.render(messages), sampling)
    new = [Candidate(round=rnd, index=i, response=c["text"], finish_reason=c["finish_reason"],
                     code=answers.extract_code(c["text"], closed_only=c["finish_reason"] == "length"), patch="", status="pending", reason="",
                     tests=None, faithfulness=faithfulness(c["text"], state, deps))
           for i, c in enumerate(gen.completions)]
    tokens = state.get("tokens") or {"prompt": 0, "completion": 0}
    tokens = {"prompt": tokens["prompt"] + gen.prompt_tokens,
              "completion": tokens["completion"] + gen.completion_tokens}
    deps.recorder.write("propose", round=rnd, messages=messages, sampling=sampling.__dict__,
                        responses=gen.completions, prompt_tokens=gen.prompt_tokens,
                        completion_tokens=gen.completion_tokens, seconds=round(gen.seconds, 2))
    what = "the diagnosis" if deps.diagnose_only else f"round {rnd}: {len(new)} candidate(s)"
    deps.log(f"{what} in {gen.seconds:.1f}s, {gen.completion_tokens} tokens")
    return {"candidates": state.get("candidates", []) + new, "tokens": tokens}


def faithfulness(text: str, state: RepairState, deps) -> dict | None:
    """The monologue's execution claims checked against the real trace (None without a trace)."""
    if not state.get("trace"):
        return None
    report = check_monologue(text, state["trace"], deps.workdir)
    return {k: report[k] for k in ("claims", "checked", "contradicted", "score", "contradictions")}


def problem_statement(state: RepairState, deps) -> str:
    if deps.settings.problem:
        return deps.settings.problem.strip()
    ids = ", ".join(state["failing"][:5])
    return f"The code below should make these failing tests pass: {ids}. Fix the code, not the tests."


def test_source(root: Path, node_id: str, limit: int = 60) -> str:
    """The failing test function's source (without parametrize ids), or the node id."""
    file, _, rest = node_id.partition("::")
    name = rest.split("::")[-1].split("[")[0]
    try:
        source = (Path(root) / file).read_text()
        tree = ast.parse(source)
    except (OSError, SyntaxError, ValueError):
        return node_id
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            lines = source.splitlines()[min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1:
                                        node.end_lineno]
            return "\n".join(lines[:limit])
    return node_id
