"""Ask the model for a monologue and a fix, in SemCoder's refine format; one request, n samples."""

from __future__ import annotations

from .. import answers, policy, prompts
from ..errors import PromptTooLong
from ..outcomes import first_failure
from ..prompting import faithfulness, problem_statement, test_source
from ..state import Candidate, RepairState


def propose(state: RepairState, deps) -> dict:
    rnd = state.get("round", 0)
    messages = [{"role": "system", "content": prompts.text("system.txt").strip()},
                {"role": "user", "content": prompts.render(
                    "refine.j2", problem=problem_statement(state, deps), code=state["context"],
                    test=test_source(deps.workdir, state["failing"][0]),
                    failure=first_failure(state["tests_before"], limit=1200),
                    trace=state.get("trace_text", ""), feedback=state.get("feedback", ""))}]
    sampling = policy.sampling(deps.profile, deps.settings, rnd)
    try:
        gen = deps.model.generate(deps.profile.render(messages), sampling)
    except PromptTooLong as exc:  # this request's fault: the round ends without answers, the run goes on
        deps.log(f"round {rnd}: {exc}")
        return {"candidates": state.get("candidates", []) + [Candidate(
            round=rnd, index=0, response="", finish_reason="", code="", patch="", status=policy.TOO_LONG,
            reason=str(exc), tests=None, faithfulness=None)]}
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
