"""Once the judge has picked the search's fix, the model explains it: SemCoder's monologue
(execution simulation, root cause), given the fix and the real traces of the failing test before
and after it. The monologue's claims are checked against the trace before the fix, as for
refinement answers."""

from __future__ import annotations

from .. import answers, patching, policy, prompts
from ..errors import SandboxError
from ..prompting import faithfulness, problem_statement, test_source
from ..state import RepairState
from ..tracing import around, trace_test, trace_text

TRACE_TOKENS = 150  # each trace, cut to the steps near the changed line: the whole one cost ~1,000 tokens


def explain_fix(state: RepairState, deps) -> dict:
    best = dict(state["best"])
    if deps.model is None:  # no model asked for: say what changed, and that nothing explained it
        cause = f"{best['file']}:{best['line']}: {best['note']} (found by {best['source']}; no model was asked)"
        return {"root_cause": cause}
    diff = "\n".join(ln for ln in best["patch"].splitlines() if not ln.startswith(("diff --git", "index ")))
    messages = [{"role": "system", "content": prompts.text("system.txt").strip()},
                {"role": "user", "content": prompts.render(
                    "explain_fix.j2", problem=problem_statement(state, deps), code=state["context"],
                    test=test_source(deps.workdir, state["failing"][0]), diff=diff.strip(),
                    trace_before=trace_near(state.get("trace") or [], best, radius=1),
                    trace_after=trace_after(state, deps))}]
    gen = deps.model.generate(deps.profile.render(messages), policy.explain_sampling(deps.profile, deps.settings))
    text = gen.completions[0]["text"] if gen.completions else ""
    best.update(response=text, finish_reason=gen.completions[0]["finish_reason"] if gen.completions else "",
                faithfulness=faithfulness(text, state, deps))
    tokens = state.get("tokens") or {"prompt": 0, "completion": 0}
    tokens = {"prompt": tokens["prompt"] + gen.prompt_tokens,
              "completion": tokens["completion"] + gen.completion_tokens}
    # small models often answer in plain prose, without the sections: then the prose is the cause
    prose = " ".join(text.replace("[MONOLOGUE]", "").split())[:800] if "```" not in text else ""
    cause = answers.root_cause(text) or prose or f"{best['file']}:{best['line']}: {best['note']}"
    deps.recorder.write("explain_fix", messages=messages, response=text, prompt_tokens=gen.prompt_tokens,
                        completion_tokens=gen.completion_tokens, seconds=round(gen.seconds, 2))
    deps.log(f"explained the fix in {gen.seconds:.1f}s, {gen.completion_tokens} tokens")
    return {"best": best, "root_cause": cause, "tokens": tokens}


def trace_after(state: RepairState, deps) -> str:
    """The failing test traced through the fixed code (the fix applied to the scratch tree)."""
    if not deps.settings.use_trace:
        return ""
    best = state["best"]
    try:
        if not patching.apply_diff(deps.workdir, best["patch"]).ok:
            return ""
        steps = trace_test(deps.sandbox, state["failing"][0], [(best["file"], fn) for fn in
                                                             {loc["function"] for loc in state["locations"][:3]
                                                              if loc["file"] == best["file"] and loc["function"]}],
                           timeout=policy.trace_timeout(deps.settings))
    except SandboxError:
        return ""
    finally:
        patching.reset(deps.workdir)
    return trace_near(steps, best, radius=2)  # an inserted line moves the fixed one


def trace_near(steps: list[dict], best: dict, radius: int) -> str:
    return trace_text(around(steps, best["file"], int(best["line"]), radius), budget_tokens=TRACE_TOKENS)
