"""infill: the model fills a masked line (cloze-style repair, as in AlphaRepair).

At a ranked location the source masks, in order: the logical line there, a hunk of it and the
next line, a new line before it, a new line after it. Each mask is one prompt: the model's
fill-in-the-middle layout from its profile (`[infill] fim`, sent raw to the completions endpoint),
or a chat cloze prompt (`prompts/infill_chat.j2`) for models without one. The replaced lines are
shown above the hole as `# buggy:` comments, and the prompt holds the enclosing function plus the
module's imports, names and docstrings, not the whole file; above it all, as comments, how the test
fails (`outcomes.failure_lines`: its failing line, the code's line that raised, the values or the
exception), which the model cannot guess from the code alone. Many short samples per mask, in two
batches: the second only where the first's samples disagree (the model is unsure). Each is
cut to its lines, re-indented, spliced into the file (every other byte kept) and kept only if
the file parses and differs from the original and from the others. Candidates come best first:
by mean token log-probability where the server gives it, else by how often they were sampled.
"""

from __future__ import annotations

import ast
import io
import math
import re
import tokenize
from dataclasses import dataclass
from typing import Iterator

from .. import prompts
from ..errors import PromptTooLong
from ..llm.client import Completion
from ..llm.profiles import profile_for
from ..policy import infill_sampling
from ..state import Location
from . import Edit, SearchContext

MARKER = "<FILL>"  # the hole in the chat cloze prompt
HUNK = 2  # logical lines the hunk mask replaces
CHARS_PER_TOKEN = 4  # roughly, for code; sizes the prompt's context
CONTEXT_TOKENS = 1024  # the prompt's context when the settings name none


@dataclass(frozen=True)
class Mask:
    kind: str  # line | hunk | before | after
    start: int  # first replaced line (1-based); for an insertion, the line the new one goes before
    end: int  # last replaced line; start - 1 for an insertion
    indent: str  # the indentation the new lines take
    lines: int  # how many lines the model writes


def candidates(loc: Location, ctx: SearchContext) -> Iterator[Edit]:
    if ctx.model is None:
        ctx.log("infill skipped: no model")
        return
    profile = ctx.profile or profile_for(ctx.model.name)
    if profile.infill.fim and not hasattr(ctx.model, "complete"):
        ctx.log(f"infill skipped: {type(ctx.model).__name__} takes no raw prompt for fill-in-the-middle")
        return
    text = ctx.source_text(loc["file"])
    lines = text.splitlines(keepends=True)
    tree = parse(text)
    seen = {ast.dump(tree)} if tree else set()  # the original and every candidate so far, as trees
    budget = getattr(ctx.settings, "infill_context_tokens", CONTEXT_TOKENS) * CHARS_PER_TOKEN
    samples = max(1, getattr(ctx.settings, "infill_samples", 8))
    first = max(1, samples // 2)
    for mask in masks(text, loc["line"], tree):
        prefix, suffix = context(lines, tree, mask, budget, ctx.failure)
        # two batches: the first's candidates are tested before the second is asked for (a fix in
        # them saves it), and where the first's samples all agreed the model is sure: no second
        answers: set = set()
        for batch, n in enumerate((first, samples - first)):
            if n == 0 or (batch and first > 1 and len(answers) < 2):  # (one sample cannot disagree)
                break
            try:
                gen = _ask(ctx, profile, mask, prefix, suffix, n=n, seed_offset=batch * first)
            except PromptTooLong as exc:  # a smaller context than the budget assumed: this hole is skipped
                ctx.log(f"infill {loc['file']}:{loc['line']} {mask.kind}: {exc}")
                break
            # the prompt once per mask: llama.cpp re-reports it per sample, but evaluates only the
            # first (the rest hit its prefix cache), and vLLM takes all samples in one request
            if not batch:
                ctx.tokens["prompt"] = ctx.tokens.get("prompt", 0) + gen.prompt_tokens // max(gen.requests, 1)
            ctx.tokens["completion"] = ctx.tokens.get("completion", 0) + gen.completion_tokens
            answers |= {tuple(cut(c["text"], mask.lines)) for c in gen.completions}
            found = []
            for new, logprob in ranked(gen.completions, mask):
                edited = splice(lines, mask, new)
                key = ast.dump(new_tree) if (new_tree := parse(edited)) else None
                if key is None or key in seen:
                    continue
                seen.add(key)
                edit = Edit(file=loc["file"], text=edited, line=loc["line"], source="infill", note="\n".join(new))
                if logprob is not None:
                    edit["logprob"] = logprob
                found.append(edit)
            ctx.log(f"infill {loc['file']}:{loc['line']} {mask.kind}: {len(gen.completions)} samples, "
                    f"{len(found)} candidates, {gen.completion_tokens} tokens, {gen.seconds:.1f} s")
            yield from found


# -- masks ---------------------------------------------------------------------------------------
def masks(text: str, line: int, tree: ast.Module | None) -> list[Mask]:
    """The holes at `line`, in the order they are tried; none on a blank or comment line."""
    units = logical_lines(text)
    lines = text.splitlines()
    unit = next((u for u in units if u[0] <= line <= u[1]), None)
    if unit is None:  # a comment, a blank, or a file that does not tokenize: the physical line
        if not 0 < line <= len(lines) or lines[line - 1].strip().startswith("#") or not lines[line - 1].strip():
            return []
        unit = (line, line)
    first, last = unit
    indent = _indent(lines[first - 1])
    out = [Mask("line", first, last, indent, 1)]
    top, bottom = scope(tree, line, len(lines))
    after = [u for u in units if u[0] > last]
    hunk = [u for u in after if u[1] <= bottom][:HUNK - 1]
    if first > top:  # a new statement inside the body, not before the def
        out.append(Mask("before", first, first - 1, indent, 1))
        if not re.match(r"(return|raise|continue|break)\b", lines[first - 1].lstrip()):  # else: dead code
            # after a block opener (`if x:`) the new line goes into the block, at its indentation
            nxt = _indent(lines[after[0][0] - 1]) if after else indent
            out.append(Mask("after", last + 1, last, nxt if len(nxt) > len(indent) else indent, 1))
    if hunk:  # last: two lines cost the most tokens
        out.append(Mask("hunk", first, hunk[-1][1], indent, HUNK))
    return out


def logical_lines(text: str) -> list[tuple[int, int]]:
    """(first, last) physical line of each logical line of code; [] if the file does not tokenize."""
    spans, first = [], None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NEWLINE and first is not None:
                spans.append((first, tok.start[0]))
                first = None
            elif first is None and tok.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT,
                                                     tokenize.DEDENT, tokenize.NEWLINE, tokenize.ENDMARKER):
                first = tok.start[0]
    except (tokenize.TokenError, SyntaxError):
        return []
    return spans


def scope(tree: ast.Module | None, line: int, n_lines: int) -> tuple[int, int]:
    """Lines of the outermost function (or method) holding `line`, else of its top-level statement."""
    for node in tree.body if tree else ():
        if _start(node) <= line <= node.end_lineno:
            for sub in node.body if isinstance(node, ast.ClassDef) else ():
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and _start(sub) <= line <= sub.end_lineno:
                    return _start(sub), sub.end_lineno
            return _start(node), node.end_lineno
    return 1, n_lines  # no tree: the budget trims it


# -- the prompt ----------------------------------------------------------------------------------
def context(lines: list[str], tree: ast.Module | None, mask: Mask, budget: int,
            failure: str = "") -> tuple[str, str]:
    """(prefix, suffix) around the hole: the scope's lines nearest the hole, then the module's
    imports, names and docstrings in file order while the budget (characters) lasts. The prefix
    opens with `failure` as comments (outside the budget: it is a few lines) and ends with the
    replaced lines as `# buggy:` comments."""
    top, bottom = scope(tree, mask.end, len(lines))  # mask.end is inside the scope for every kind
    before, after = list(lines[top - 1:mask.start - 1]), list(lines[mask.end:bottom])
    while before or after:  # drop the lines farthest from the hole, keeping about 2:1 before:after
        size_b, size_a = len("".join(before)), len("".join(after))
        if size_b + size_a <= budget:
            break
        if before and (size_b >= 2 * size_a or not after):
            before.pop(0)
        else:
            after.pop()
    left = budget - len("".join(before + after))
    head, tail = [], []
    for node in tree.body if tree else ():
        chunk = "".join(lines[node.lineno - 1:node.end_lineno])
        if _is_context(node) and not top <= node.lineno <= bottom and len(chunk) <= left:
            (head if node.lineno < top else tail).append(chunk)
            left -= len(chunk)
    hint = "".join(f"{_indent(line)}# buggy: {line.strip()}\n" for line in lines[mask.start - 1:mask.end])
    told = "".join(f"#   {line}\n" for line in failure.splitlines())
    prefix = (f"# A test fails:\n{told}\n" if told else "") + ("".join(head) + "\n" if head else "")
    prefix += "".join(before) + hint
    suffix = "".join(after) + ("\n" + "".join(tail) if tail else "")
    return prefix, suffix


def fim_prompt(fim: str, prefix: str, suffix: str) -> str:
    return fim.replace("{prefix}", prefix).replace("{suffix}", suffix)


def chat_prompt(prefix: str, suffix: str, mask: Mask) -> list[dict]:
    code = prefix + f"{mask.indent}{MARKER}\n" + suffix
    return [{"role": "user", "content": prompts.render("infill_chat.j2", code=code.rstrip("\n"), marker=MARKER,
                                                       lines=mask.lines, hint=mask.end >= mask.start)}]


def _ask(ctx: SearchContext, profile, mask: Mask, prefix: str, suffix: str, n: int, seed_offset: int = 0):
    fmt = profile.infill
    stop = list(fmt.stop)
    if fmt.fim:  # (a chat answer may open with a fence line: no newline stops there)
        # one line ends at a newline; a hunk at a blank line or where the model starts on the suffix
        after = next((line for line in suffix.splitlines() if line.strip()), "")
        stop += ["\n"] if mask.lines == 1 else ["\n\n"] + (["\n" + after] if after else [])
    sampling = infill_sampling(profile, ctx.settings, n, mask.lines, stop, seed_offset)
    if fmt.fim:
        return ctx.model.complete(prompt(profile, prefix, suffix, mask), sampling, logprobs=True)
    return ctx.model.generate(prompt(profile, prefix, suffix, mask), sampling)


def prompt(profile, prefix: str, suffix: str, mask: Mask) -> str | list[dict]:
    """What `profile`'s model is sent for the hole: the raw fill-in-the-middle text (for
    /v1/completions) where the profile has one, else the chat cloze prompt's messages."""
    if profile.infill.fim:
        return fim_prompt(profile.infill.fim, prefix, suffix)
    return profile.render(chat_prompt(prefix, suffix, mask))


# -- answers -------------------------------------------------------------------------------------
def ranked(completions: list[Completion], mask: Mask) -> list[tuple[list[str], float | None]]:
    """Distinct answers cut and re-indented, best first: by mean log-probability where the server
    gave one, then by how often they were sampled, then in sampling order."""
    found: dict[tuple[str, ...], list] = {}  # lines -> [count, logprob, first index]
    for i, c in enumerate(completions):
        new = cut(c["text"], mask.lines)
        if new:
            entry = found.setdefault(tuple(reindent(new, mask.indent)), [0, c.get("logprob"), i])
            entry[0] += 1
    order = sorted(found.items(), key=lambda kv: (-(kv[1][1] if kv[1][1] is not None else -math.inf),
                                                  -kv[1][0], kv[1][2]))
    return [(list(new), entry[1]) for new, entry in order]


def cut(answer: str, n: int) -> list[str]:
    """The first `n` lines of code in an answer; fences, blanks, comments and the marker skipped."""
    out = []
    for raw in answer.split("\n"):
        line = _drop_comment(raw.rstrip())
        if line.strip() and not line.lstrip().startswith("```") and MARKER not in line:
            out.append(line)
            if len(out) == n:
                break
    return out


def reindent(new: list[str], indent: str) -> list[str]:
    """Move the lines so that the first starts at `indent`; the others keep theirs relative to it."""
    own = _indent(new[0])
    return [indent + line[len(own):] if line.startswith(own) else indent + line.lstrip() for line in new]


def splice(lines: list[str], mask: Mask, new: list[str]) -> str:
    """The file with the masked lines replaced by `new` (or `new` inserted); all else kept."""
    head, old, tail = list(lines[:mask.start - 1]), lines[mask.start - 1:mask.end], lines[mask.end:]
    nl = "\r\n" if (old or head or ["\n"])[-1].endswith("\r\n") else "\n"
    if head and not old and not head[-1].endswith("\n"):  # inserting after a last line without newline
        head[-1] += nl
    ending = old[-1][len(old[-1].rstrip("\r\n")):] if old else nl
    return "".join(head) + nl.join(new) + ending + "".join(tail)


def _is_context(node: ast.stmt) -> bool:
    """An import, a module-level name, or a docstring (QuixBugs puts the problem after the code)."""
    if isinstance(node, ast.Expr):
        return isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    return isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign))


def _drop_comment(line: str) -> str:
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line).readline):
            if tok.type == tokenize.COMMENT:
                return line[:tok.start[1]].rstrip()
    except (tokenize.TokenError, SyntaxError):  # an unclosed bracket: comments before it were seen
        pass
    return line


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip(" \t"))]


def _start(node: ast.AST) -> int:
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])


def parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None
