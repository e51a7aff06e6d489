"""Once the judge has picked the fix, say what it changed and why (the model's own fix, from
refine, already came with its monologue: it gets the evidence only).

First the evidence (evidence.py), read from the real traces of the failing test before and after the
fix: the input, what the changed line computed before and after, what the test expected. It is
true by construction and always kept. Then the model turns it into a root cause, SemCoder's
monologue (execution simulation, root cause), and every checkable claim of the answer is checked
(faithfulness.check_explanation): values against the traces, code names against the program and the
fix, an echo of the prompt. An answer that fails is asked once more with its problems stated; if it
fails again, the root cause is written from the evidence, with a note saying so."""

from __future__ import annotations

import re
from pathlib import Path

from .. import answers, evidence, patching, policy, prompts
from ..errors import PromptTooLong, SandboxError
from ..faithfulness import check_explanation, names_change
from ..prompting import problem_statement, prompt_chunks, test_source
from ..state import RepairState
from ..tracing import around, trace_test, trace_text

TRACE_TOKENS = 150  # each trace, cut to the steps near the changed line: the whole one cost ~1,000 tokens
WHOLE_SENTENCES = re.compile(r"(?s)(.*[.!?])(?:\s|$)")  # up to the last sentence end
CHECKED = ("claims", "checked", "contradicted", "score", "contradictions", "alien", "echo", "names_change")


def explain_fix(state: RepairState, deps) -> dict:
    best = dict(state["best"])
    if not best.get("file"):  # the model's own fix (refine) names no place: its diff does
        edit = next(iter(evidence.edited_lines(best["patch"])), {})
        best["file"], best["line"] = edit.get("file", ""), edit.get("old_line") or edit.get("new_line") or 0
    before, after = state.get("trace") or [], traced_after(state, best, deps)
    ev = evidence.build(before, after, best["patch"], failure_message(state))
    best["evidence"] = {**ev, "text": evidence.text(ev)}
    if not best.get("source"):  # the model's own fix came with its monologue, checked when validated
        return {"best": best}
    if deps.model is None:  # no model asked for: the evidence says what changed, and that nothing explained it
        return {"best": best, "root_cause": f"{evidence.sentence(ev)} (Found by {best['source']}; no model was asked.)"}
    diff = "\n".join(ln for ln in best["patch"].splitlines() if not ln.startswith(("diff --git", "index ")))
    changed = ev["changed_before"] or ev["changed_after"]
    messages = [{"role": "system", "content": prompts.text("system.txt").strip()},
                {"role": "user", "content": prompts.render(
                    "explain_fix.j2", problem=problem_statement(state, deps), code=state["context"],
                    test=test_source(deps.workdir, state["failing"][0]), diff=diff.strip(),
                    trace_before=trace_near(before, best, radius=1), trace_after=trace_near(after, best, radius=2),
                    evidence=best["evidence"]["text"], changed=changed)}]
    known = known_code(state, deps, best, diff, before)
    chunks = prompt_chunks("explain_fix.j2") + [problem_statement(state, deps)]
    tokens = dict(state.get("tokens") or {"prompt": 0, "completion": 0})
    problems_by_answer = []
    for attempt in (1, 2):
        try:
            text, finish = ask(messages, deps, tokens)
        except PromptTooLong as exc:  # the fix stands; the evidence explains it, as without a model
            deps.log(f"the explanation was not asked for: {exc}")
            if attempt == 2:  # the retry's longer prompt: the first answer and its check stand
                attempt = 1
                break
            best["explanation"] = {"attempts": 0, "replaced": True, "problems": problems_by_answer,
                                   "names_change": False}
            return {"best": best, "tokens": tokens, "root_cause": f"{evidence.sentence(ev)} (Written from the "
                    f"traces: the explanation's prompt does not fit the model's context.)"}
        cause = root_cause_of(text, cut=finish == "length")
        check = check_explanation(text, cause, before, after, deps.workdir, known,
                                  [ev["changed_before"], ev["changed_after"]], chunks)
        problems_by_answer.append(check["problems"][:5])
        if not check["problems"] or attempt == 2:
            break
        messages = messages + [{"role": "assistant", "content": text},
                               {"role": "user", "content": prompts.render("explain_retry.j2",
                                                                          problems=check["problems"][:5],
                                                                          changed=changed)}]
    replaced = bool(check["problems"])
    if replaced:  # the model's words failed twice: the evidence speaks, and says why
        said = "; ".join(p.replace("you said", "it said").replace("you repeated", "it repeated")
                         for p in check["problems"][:3])
        cause = f"{evidence.sentence(ev)} (Written from the traces: the model's explanation was set aside: {said}.)"
    best.update(response=text, finish_reason=finish, faithfulness={k: check[k] for k in CHECKED})
    best["explanation"] = {"attempts": attempt, "replaced": replaced, "problems": problems_by_answer,
                           "names_change": names_change(cause, [ev["changed_before"], ev["changed_after"]])}
    deps.log(f"explained the fix ({attempt} answer(s){', set aside for the evidence' if replaced else ''})")
    return {"best": best, "root_cause": cause, "tokens": tokens}


def ask(messages: list[dict], deps, tokens: dict) -> tuple[str, str]:
    """One greedy answer; its tokens are added to `tokens` and it is written to the run record."""
    gen = deps.model.generate(deps.profile.render(messages), policy.explain_sampling(deps.profile, deps.settings))
    text = gen.completions[0]["text"] if gen.completions else ""
    tokens["prompt"] += gen.prompt_tokens
    tokens["completion"] += gen.completion_tokens
    deps.recorder.write("explain_fix", messages=messages, response=text, prompt_tokens=gen.prompt_tokens,
                        completion_tokens=gen.completion_tokens, seconds=round(gen.seconds, 2))
    return text, gen.completions[0]["finish_reason"] if gen.completions else ""


def root_cause_of(text: str, cut: bool = False) -> str:
    """The Root Cause Analysis section; small models often answer in plain prose, without the
    sections: then the prose is the cause. `cut`: the answer hit the token cap, so the cause ends at
    its last whole sentence (a cause that stops mid-word reads as broken; 17 of 29 once did)."""
    prose = " ".join(text.replace("[MONOLOGUE]", "").split())[:800] if "```" not in text else ""
    cause = answers.root_cause(text) or prose
    whole = WHOLE_SENTENCES.match(cause) if cut else None
    return whole[1] if whole else cause


def failure_message(state: RepairState) -> str:
    """The first failing test's failure line in the run before any fix."""
    cases = (state.get("tests_before") or {}).get("cases") or []
    return next((c.get("message") or "" for c in cases if c["id"] == state["failing"][0]), "")


def known_code(state: RepairState, deps, best: dict, diff: str, before: list[dict]) -> str:
    """Every name the prompt showed, which an explanation may use: the code, the fix, the traced
    functions and locals, the failure and the evidence (`NoneType`, from "'NoneType' object has no
    attribute", was once called a name that exists nowhere)."""
    return "\n".join([state["context"], diff, known_source(state, deps, best["file"]),
                      " ".join(str(s.get("function")) + " " + " ".join(s.get("locals") or {}) for s in before),
                      failure_message(state), (best.get("evidence") or {}).get("text", "")])


def known_source(state: RepairState, deps, file: str) -> str:
    """The changed file and the failing test's file, whole: the names an explanation may use."""
    out = []
    for rel in (file, state["failing"][0].split("::")[0]):
        try:
            out.append((Path(deps.workdir) / rel).read_text(errors="replace"))
        except OSError:
            pass
    return "\n".join(out)


def traced_after(state: RepairState, best: dict, deps) -> list[dict]:
    """The failing test traced through the fixed code (the fix applied to the scratch tree)."""
    if not deps.settings.use_trace:
        return []
    try:
        if not patching.apply_diff(deps.workdir, best["patch"]).ok:
            return []
        return trace_test(deps.sandbox, state["failing"][0], [(best["file"], fn) for fn in
                                                            {loc["function"] for loc in state["locations"][:3]
                                                             if loc["file"] == best["file"] and loc["function"]}],
                          timeout=policy.trace_timeout(deps.settings))
    except SandboxError:
        return []
    finally:
        patching.reset(deps.workdir)


def trace_near(steps: list[dict], best: dict, radius: int) -> str:
    return trace_text(around(steps, best["file"], int(best["line"]), radius), budget_tokens=TRACE_TOKENS)
