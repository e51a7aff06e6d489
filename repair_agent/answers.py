"""Reading a model's answer: monologue sections, the `[Refined]` code, fenced code, diffs.

Small models wrap the right code in the wrong places: they echo the failure text in a fenced
block, paste test lines after the function, or put prose between the `[Refined]` tags. So code
is taken only from blocks that parse as Python and define something, and top-level statements
other than imports and definitions are dropped later, when the code is patched in.
"""

from __future__ import annotations

import ast
import re

FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(```|\Z)", re.S)
FENCE_LINE = re.compile(r"^[ \t]*```[^\n]*$", re.M)
REFINED = re.compile(r"\[Refined\](.*?)(?:\[/Refined\]|\Z)", re.S | re.I)
HEADING = re.compile(r"^#{2,4}\s*(.+?)\s*:?\s*$", re.M)
DIFF_START = re.compile(r"^(---|\+\+\+|@@) ", re.M)


def sections(text: str) -> dict[str, str]:
    """`### Heading` -> body, e.g. 'Execution Simulation', 'Root Cause Analysis'."""
    text = text.replace("[MONOLOGUE]", "")
    heads = list(HEADING.finditer(text))
    out: dict[str, str] = {}
    for i, h in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = REFINED.split(text[h.end():end])[0]
        out.setdefault(h.group(1).strip(), body.strip())
    return out


def root_cause(text: str) -> str:
    for name, body in sections(text).items():
        if "root cause" in name.lower() and body:
            return _strip_code(body)[:2000]
    return ""


def _strip_code(text: str) -> str:
    return FENCE.sub("", text).strip()


def _defines_something(code: str) -> bool:
    """Parses, and defines a function or class that is not a test (models paste tests back)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
               and not n.name.lower().startswith("test") for n in tree.body)


def _blocks(text: str, closed_only: bool = False) -> list[tuple[str, str]]:
    return [(m.group(1).lower(), m.group(2)) for m in FENCE.finditer(text) if m.group(3) or not closed_only]


def extract_code(text: str, closed_only: bool = False) -> str:
    """The fixed code: `[Refined]` first, then the last fenced block that parses and defines something.

    `closed_only` (for answers cut off at the token limit) takes only fenced blocks that were
    closed, so a half-written function is never applied."""
    for refined in REFINED.findall(text):
        blocks = [b for _, b in _blocks(refined, closed_only)] or ([] if closed_only else [refined])
        good = [b for b in blocks if _defines_something(b)]
        if good:
            return good[-1].strip("\n") + "\n"
    good = [b for lang, b in _blocks(text, closed_only)
            if lang in ("", "python", "py", "python3") and _defines_something(b)]
    # fences that do not pair up (a block opened around the prose, never closed): try every
    # stretch between two fence lines
    good = good or [b for b in _between_fences(text, closed_only) if _defines_something(b)]
    if good:
        return good[-1].strip("\n") + "\n"
    return ""


def _between_fences(text: str, closed_only: bool) -> list[str]:
    parts = FENCE_LINE.split(text)[1:]
    return parts[:-1] if closed_only else parts


def extract_diff(text: str) -> str:
    """A unified diff the model sent, or ""."""
    for lang, block in _blocks(text):
        if lang in ("diff", "patch") or (DIFF_START.search(block) and "+++ " in block):
            return block if block.endswith("\n") else block + "\n"
    return ""


def has_code_attempt(text: str) -> bool:
    """True when the text holds something that looks like code, even broken code."""
    return bool(REFINED.search(text) or _blocks(text) or re.search(r"^\s*def \w+\(", text, re.M))
