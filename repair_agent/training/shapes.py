"""Training records shaped exactly as the prompts the agent sends.

An infill record is a masked line and its fill: the buggy file, the hole where the fix goes (the
first of the search's masks at that line, `search.infill.masks`, whose fill turns the buggy file
into the fixed one), the prompt the infill source would send for that hole with the model's
profile (`search.infill.context`, then the profile's fill-in-the-middle layout, or its chat cloze
prompt), and the fixed lines as the answer. A mutation fix gets the same shape: the embedded model
learns to write the fixed line where the search's mutation found it. A fix that deletes lines or
changes more than one place has no infill shape (None).

Records::

    {"prompt": <the raw completions prompt (FIM profiles)> | [<chat messages>],
     "completion": <what the model should answer>,
     "metadata": {"kind": "infill" | "explain", ...}}
"""

from __future__ import annotations

from ..llm.profiles import Profile
from ..search import infill

def fill(buggy: str, fixed: str) -> tuple[infill.Mask, list[str]] | None:
    """The search's first mask at the changed line whose fill turns `buggy` into `fixed`, with
    the fill's lines (their own text, line endings kept); None when no mask does."""
    old, new = buggy.splitlines(keepends=True), fixed.splitlines(keepends=True)
    if old == new:
        return None
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tree = infill.parse(buggy)
    for line in dict.fromkeys(n for n in (head + 1, head) if 0 < n <= len(old)):  # the change, or an insertion
        for mask in infill.masks(buggy, line, tree):
            kept_after = len(old) - mask.end
            lines = new[mask.start - 1:len(new) - kept_after]
            if 1 <= len(lines) <= mask.lines and infill.splice(old, mask, [ln.rstrip("\r\n") for ln in lines]) == fixed:
                return mask, lines
    return None


def infill_record(buggy: str, fixed: str, profile: Profile, context_tokens: int | None = None,
                  failure: str = "") -> dict | None:
    """{"prompt", "completion", "mask", "line"} for the fix from `buggy` to `fixed` (one file's
    texts), the prompt as `profile`'s model gets it from the infill source (with `failure`, how the
    test fails: outcomes.failure_lines); None if no mask fits."""
    found = fill(buggy, fixed)
    if found is None:
        return None
    mask, lines = found
    budget = (context_tokens or infill.CONTEXT_TOKENS) * infill.CHARS_PER_TOKEN
    prefix, suffix = infill.context(buggy.splitlines(keepends=True), infill.parse(buggy), mask, budget, failure)
    # a raw completion answers with the hole's text; a chat answer without the last line ending
    completion = "".join(lines) if profile.infill.fim else "".join(lines).rstrip("\r\n")
    return {"prompt": infill.prompt(profile, prefix, suffix, mask), "completion": completion,
            "mask": mask.kind, "line": mask.start}


def explain_record(events: list[dict], result: dict, profile: Profile) -> dict | None:
    """The explanation prompt (its first asking, rendered for `profile` as the agent sends it) with
    the answer that passed `explain_fix`'s checks, or None when no answer passed."""
    explanation = result.get("explanation") or {}
    asked = [e for e in events if e.get("event") == "explain_fix" and e.get("messages")]
    if not asked or explanation.get("replaced") is not False:  # set aside: the evidence spoke, not the model
        return None
    last = asked[-1]
    messages = last["messages"]
    first_user = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
    answer = (last.get("response") or "").strip()
    if first_user is None or not answer:
        return None
    return {"prompt": profile.render(messages[:first_user + 1]), "completion": answer}
