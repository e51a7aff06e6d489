"""Check a SemCoder-style monologue's execution simulation against the real trace.

`check_monologue(text, steps)` parses the `### Execution Simulation` section for simple claims:

- values: `` `name = value` ``, ``name = value``, "`name` is / becomes / is set to / is updated to value"
  (chains like `` `mid = (0 + 4) // 2 = 2` `` take the last value);
- returns: "returns X", "the return value is X";
- conditions: "the condition `expr` is / evaluates to True|False" (also "`expr` is True");
- failures: "fails / raises ... at line N".

A claim may name a line ("at line 6", "Line 6:") in the same line of text. Each claim is checked
against the steps of `repair_agent.tracing` (the same format): a value claim is contradicted when
the variable was traced and never held that value (at that line, when one is named and the trace
assigned it there); a return claim when no traced return gave it; a condition when evaluating it
on the traced variables never gives the claimed truth; a failure claim when the traced exceptions
were raised elsewhere. Claims about names the trace never saw are not checked, and neither is a
claim the trace could have missed (a loop compressed, a trace cut short): the checker prefers
missing a wrong claim to accusing a right one.

Result: {claims, checked, contradicted, score, contradictions, items}, score = 1 -
contradicted / checked, None when nothing was checked.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from . import answers

_TAG = re.compile(r"^\s*\[/?(?:MONOLOGUE|Refined|ANSWER)\]", re.I | re.M)  # a closing tag ends the section too
_FENCE = re.compile(r"```.*?(```|\Z)", re.S)
_LIT = (r"(?:-?\d+(?:\.\d+)?(?:e-?\d+)?|'[^'\n]*'|\"[^\"\n]*\"|\[[^\[\]\n]*(?:\[[^\[\]\n]*\][^\[\]\n]*)*\]"
        r"|\([^()\n]*\)|\{[^{}\n]*\}|True|False|None)")
_NAME = r"[A-Za-z_]\w*"
_END = r"(?![\w(\[])(?!\.\w)(?!\s*(?:[-+*/%<>=&|^@]))"  # a literal that is not the start of an expression
_STOP = {"which", "it", "that", "this", "value", "result", "there", "what", "answer", "output", "expected",
         "test", "function", "condition", "line", "step", "iteration", "loop", "call", "so", "then"}
_LINE_REF = re.compile(r"\b(?:line|L)\s*#?(\d+)\b", re.I)
_BACKTICK = re.compile(r"`([^`\n]+)`")
_PLAIN_ASSIGN = re.compile(rf"(?<![\w.\[=!<>+\-*/%])({_NAME})\s*=\s*(?!=)({_LIT}){_END}")
_IS = re.compile(rf"`?({_NAME})`?\s+(?:is now|is set to|is updated to|is assigned|becomes|is|equals|will be)"
                 rf"\s+(?:to\s+)?`?({_LIT})`?{_END}")
_RETURN = re.compile(rf"\breturn(?:s|ing|ed)?\b(?:\s+(?:the\s+)?(?:value|result))?\s*(?:of|is|:)?\s*`?({_LIT})`?"
                     rf"{_END}", re.I)
# "returns `expr = 3`", "returns `xs[1]`, which is 2"
_RETURN_EXPR = re.compile(r"\breturn(?:s|ing|ed)?\b\s*`([^`\n]+)`(?:\s*,?\s*(?:which is|which evaluates to|i\.e\.|"
                          rf"that is|=|->|→)\s*`?({_LIT})`?{_END})?", re.I)
_RETURN_IS = re.compile(rf"\breturn value\s+(?:is|=|of)\s+`?({_LIT})`?", re.I)
_COND = re.compile(r"`([^`\n]+)`\s*(?:\)\s*)?(?:is|evaluates to|becomes|returns|will be)\s+`?(True|False)`?")
_FAIL = re.compile(r"\b(?:fail(?:s|ed|ing)?|rais(?:es|ed|ing)|error|exception|crash(?:es)?|throws?)\b"
                   r"[^.\n]{0,50}?\b(?:at|on|in)\s+line\s+(\d+)", re.I)
_COMPARE_OPS = ("==", "!=", "<=", ">=", "<", ">", " in ", " not ", " and ", " or ", " is ")
_INCOMPLETE = {"truncated", "timeout", "killed", "depth_limit", "trace_lost"}


def simulation_section(text: str) -> tuple[str, bool]:
    """The Execution Simulation section as `answers.sections` cuts it, up to a closing tag and without
    code blocks; (whole text, False) when absent."""
    body = next((b for name, b in answers.sections(text or "").items() if name.lower() == "execution simulation"),
                None)
    if body is None:
        return _FENCE.sub("", text or ""), False
    return _FENCE.sub("", _TAG.split(body)[0]), True


# -- parsing -------------------------------------------------------------------------------------
def _value(text: str):
    """(python value, True) when `text` is a literal; else (text, False)."""
    t = text.strip().rstrip(".,;:")
    try:
        return ast.literal_eval(t), True
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return t, False


def _split_assign(span: str) -> tuple[str, str] | None:
    """`name = expr = value` -> (name, value) when name is an identifier and value a literal."""
    parts = re.split(r"(?<![=!<>+\-*/%])=(?!=)", span)
    if len(parts) < 2:
        return None
    name = parts[0].strip()
    if not re.fullmatch(_NAME, name):
        return None
    value = parts[-1].strip()
    if not _value(value)[1]:
        return None
    return name, value


def parse_claims(text: str) -> list[dict]:
    section, _found = simulation_section(text)
    claims: list[dict] = []
    for raw in section.splitlines():
        line_text = raw.strip()
        if not line_text:
            continue
        fail_lines = {m.start(1) for m in _FAIL.finditer(line_text)}
        refs = [m for m in _LINE_REF.finditer(line_text) if m.start(1) not in fail_lines]
        at = int(refs[0].group(1)) if refs else None
        spans: list[tuple[int, int]] = []  # text already used by a claim

        def free(a: int, b: int) -> bool:
            return all(b <= s or a >= e for s, e in spans)

        def add(kind: str, a: int, b: int, **kw) -> None:
            spans.append((a, b))
            claims.append({"kind": kind, "text": line_text[a:b].strip(), "line": at, **kw})

        for m in _FAIL.finditer(line_text):
            add("fails", m.start(), m.end(), line=int(m.group(1)))
        for m in _COND.finditer(line_text):
            expr = m.group(1).strip()
            if any(op in f" {expr} " for op in _COMPARE_OPS) or expr.startswith("not "):
                add("condition", m.start(), m.end(), expr=expr, truth=m.group(2) == "True")
        for m in _BACKTICK.finditer(line_text):
            if not free(m.start(), m.end()):
                continue
            sa = _split_assign(m.group(1))
            if sa:
                add("value", m.start(), m.end(), name=sa[0], value=sa[1])
        for m in _RETURN_EXPR.finditer(line_text):
            if not free(m.start(), m.end()):
                continue
            expr = m.group(1).strip()
            value = m.group(2) or expr.split("=")[-1].strip()
            if _value(value)[1]:
                add("returns", m.start(), m.end(), value=value)
            else:
                spans.append((m.start(), m.end()))  # an expression we cannot check: skip its text
        for rx in (_RETURN_IS, _RETURN):
            for m in rx.finditer(line_text):
                if free(m.start(), m.end()):
                    add("returns", m.start(), m.end(), value=m.group(1))
        for rx in (_PLAIN_ASSIGN, _IS):
            for m in rx.finditer(line_text):
                if free(m.start(), m.end()) and m.group(1).lower() not in _STOP:
                    add("value", m.start(), m.end(), name=m.group(1), value=m.group(2))
    return claims


# -- the trace -----------------------------------------------------------------------------------
class _Trace:
    def __init__(self, steps: list[dict]):
        self.values: dict[str, list[tuple[int, str]]] = {}  # name -> [(line, repr)]
        self.returns: list[str] = []
        self.exceptions: list[tuple[int, str]] = []
        self.compressed: set[tuple[str, int]] = set()
        self.incomplete = False
        self.states: list[tuple[str, int, dict]] = []  # (file, line, locals before the line ran)
        env: dict[int, dict] = {}
        for s in steps:
            ev = s.get("event")
            if ev in _INCOMPLETE:
                self.incomplete = True
                continue
            if ev == "loop":
                self.compressed.add((s.get("file", ""), int(s.get("line") or 0)))
                continue
            depth = int(s.get("depth") or 1)
            line = int(s.get("line") or 0)
            loc = s.get("locals") or {}
            if ev == "call":
                env[depth] = {}
            frame = env.setdefault(depth, {})
            if ev in ("line", "return", "exception", "raise"):
                self.states.append((s.get("file", ""), line, dict(frame)))
            for k, v in loc.items():
                self.values.setdefault(k, []).append((line, v))
                frame[k] = v
            if ev == "return" and "value" in s:
                self.returns.append(s["value"])
            if ev == "exception":
                self.exceptions.append((line, s.get("exception", "")))
        self.compressed_lines = {line for _f, line in self.compressed}


def _same(claimed: str, actual: str) -> bool | None:
    """True/False when comparable, None when the actual repr cannot be judged (cut, an object)."""
    cv, c_ok = _value(claimed)
    if "..." in actual:  # cut by reprlib: only a matching prefix can be judged
        head = actual.split("...")[0]
        norm = repr(cv) if c_ok else claimed.strip()
        return True if head and (norm.startswith(head) or claimed.strip().startswith(head)) else None
    av, a_ok = _value(actual)
    if a_ok and c_ok:
        try:
            return bool(av == cv) or (str(av) == str(cv))
        except Exception:
            return None
    if a_ok and not c_ok:  # the claim is a bare word: compare with a string value
        return str(av) == cv if isinstance(av, str) else None
    return claimed.strip().strip("`") == actual.strip() or None


_SAFE_NODES = (ast.Expression, ast.Compare, ast.BoolOp, ast.UnaryOp, ast.BinOp, ast.Name, ast.Load,
               ast.Constant, ast.Subscript, ast.Slice, ast.Call, ast.List, ast.Tuple, ast.operator,
               ast.cmpop, ast.boolop, ast.unaryop)
_SAFE_CALLS = {"len": len, "abs": abs, "min": min, "max": max, "sum": sum, "int": int,
               "sorted": sorted, "bool": bool, "str": str}


def _eval(expr: str, env: dict[str, str]):
    """Evaluate a simple expression over the traced reprs; raises when it cannot."""
    tree = ast.parse(expr, mode="eval")
    names = {}
    for node in ast.walk(tree):
        if not isinstance(node, _SAFE_NODES):
            raise ValueError("unsupported")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name)
                                               and node.func.id in _SAFE_CALLS):
            raise ValueError("unsupported call")
        if isinstance(node, ast.Name) and node.id not in _SAFE_CALLS and node.id not in (
                "True", "False", "None"):
            if node.id not in env:
                raise KeyError(node.id)
            value, ok = _value(env[node.id])
            if not ok:
                raise ValueError("not a literal")
            names[node.id] = value
    return eval(compile(tree, "<claim>", "eval"), {"__builtins__": {}, **_SAFE_CALLS}, names)


def _fmt(vals: list[str], n: int = 3) -> str:
    out: list[str] = []
    for v in vals:
        if v not in out:
            out.append(v)
    return ", ".join(out[:n]) + (", ..." if len(out) > n else "")


def _check(claim: dict, tr: _Trace, source_lines: dict[str, list[str]]) -> tuple[str, str]:
    """('ok' | 'contradicted' | 'unchecked', message)."""
    kind, at = claim["kind"], claim.get("line")
    if kind == "value":
        name, value = claim["name"], claim["value"]
        obs = tr.values.get(name)
        if not obs:
            return "unchecked", "name not in the trace"
        scoped = [v for ln, v in obs if ln == at] if at else []
        pool = scoped or [v for _ln, v in obs]
        verdicts = [_same(value, v) for v in pool]
        if any(v is True for v in verdicts):
            return "ok", ""
        lines_of_name = {ln for ln, _v in obs}
        if any(v is None for v in verdicts) or tr.incomplete or (lines_of_name & tr.compressed_lines):
            return "unchecked", "the trace cannot settle it"
        where = f" at line {at}" if at else ""
        if scoped:
            return "contradicted", f"you said `{name} = {value}`{where}; it was {_fmt(scoped)}"
        return "contradicted", f"you said `{name} = {value}`{where}; in the trace {name} was {_fmt(pool)}"
    if kind == "returns":
        if not tr.returns:
            return "unchecked", "no traced return"
        verdicts = [_same(claim["value"], v) for v in tr.returns]
        if any(v is True for v in verdicts):
            return "ok", ""
        if any(v is None for v in verdicts) or tr.incomplete:
            return "unchecked", "the trace cannot settle it"
        return "contradicted", f"you said it returns {claim['value']}; it returned {_fmt(tr.returns)}"
    if kind == "condition":
        expr, truth = claim["expr"], claim["truth"]
        norm = re.sub(r"\s+", "", expr)
        lines = {(f, i + 1) for f, src in source_lines.items() for i, t in enumerate(src)
                 if norm in re.sub(r"\s+", "", t)}
        results = set()
        for file, line, env in tr.states:
            if at and line != at:
                continue
            if lines and (file, line) not in lines:
                continue
            try:
                results.add(bool(_eval(expr, env)))
            except Exception:
                continue
        if not results:
            return "unchecked", "could not evaluate the condition on the trace"
        if truth in results:
            return "ok", ""
        if tr.incomplete or (at in tr.compressed_lines if at else bool(tr.compressed)):
            return "unchecked", "the trace cannot settle it"
        where = f" at line {at}" if at else ""
        return "contradicted", f"you said `{expr}` is {truth}{where}; it was {not truth}"
    if kind == "fails":
        if not tr.exceptions:
            return "unchecked", "no exception in the traced functions"
        if any(ln == claim["line"] for ln, _e in tr.exceptions):
            return "ok", ""
        ln, exc = tr.exceptions[0]
        return "contradicted", (f"you said it fails at line {claim['line']}; "
                                f"the exception {exc} was raised at line {ln}")
    return "unchecked", ""


def check_monologue(text: str, steps: list[dict], repo_dir: Path | None = None,
                    max_contradictions: int = 3) -> dict:
    """Score the monologue's execution-simulation claims against the trace steps."""
    claims = parse_claims(text)
    tr = _Trace(steps)
    source_lines: dict[str, list[str]] = {}
    if repo_dir is not None:
        for f in {s.get("file") for s in steps if s.get("file")}:
            try:
                source_lines[f] = (Path(repo_dir) / f).read_text(errors="replace").splitlines()
            except OSError:
                pass
    checked = contradicted = 0
    contradictions: list[str] = []
    items = []
    for c in claims:
        verdict, msg = _check(c, tr, source_lines)
        items.append({**c, "verdict": verdict, **({"note": msg} if msg else {})})
        if verdict == "unchecked":
            continue
        checked += 1
        if verdict == "contradicted":
            contradicted += 1
            if len(contradictions) < max_contradictions:
                contradictions.append(msg)
    score = None if checked == 0 else round(1 - contradicted / checked, 4)
    return {"claims": len(claims), "checked": checked, "contradicted": contradicted, "score": score,
            "contradictions": contradictions, "items": items}


# -- an explanation's words: names, the changed expression, echoes of the prompt ---------------------
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(r"^[\w./-]+\.py(?::\d+)?$")
# `math.gcd(` written without backticks; not a file name (`gcd.py (line 5)`)
_PROSE_CALL = re.compile(r"(?<![\w./])([A-Za-z_]\w*(?:\.(?!py\b)[A-Za-z_]\w*)+)\s*\(")
_PLACEHOLDER = re.compile(r"^\([^()`]{3,80}\)\.?$")  # `(one or two sentences)`: a template's blank handed back
_IDENT = re.compile(r"[A-Za-z_]\w*")


def _builtin_names() -> set[str]:
    import builtins
    import keyword

    names = set(dir(builtins)) | set(keyword.kwlist) | set(keyword.softkwlist)
    for t in (str, list, dict, set, tuple, int, float, bytes, object):
        names |= set(dir(t))
    return names


def code_names(text: str) -> list[str]:
    """The code names an answer uses: every name and attribute in its backticked code (file paths
    aside) and dotted calls in its prose, e.g. `math.gcd` -> ['math', 'gcd']."""
    found: list[str] = []
    spans = [s.strip() for s in _CODE_SPAN.findall(text or "")]
    for span in spans:
        if _PATH.match(span):
            continue
        try:
            tree = ast.parse(span.rstrip(":"))
        except SyntaxError:
            found += [n for m in _PROSE_CALL.finditer(span) for n in m[1].split(".")]
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                found.append(node.id)
            elif isinstance(node, ast.Attribute):
                found.append(node.attr)
    prose = _CODE_SPAN.sub(" ", text or "")
    found += [n for m in _PROSE_CALL.finditer(prose) for n in m[1].split(".")]
    return list(dict.fromkeys(found))


def alien_names(text: str, known_code: str) -> list[str]:
    """Names the answer uses that exist in neither `known_code` (the program, its test, the fix)
    nor Python's builtins: code that exists nowhere."""
    known = set(_IDENT.findall(known_code or "")) | _builtin_names()
    return [n for n in code_names(text) if n not in known]


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text or "").replace("`", "")


def names_change(text: str, expressions: list[str]) -> bool:
    """Does the text quote the changed expression (before or after the fix), spaces aside?"""
    flat = _squash(text)
    return any(e and _squash(e) in flat for e in expressions)


def echoes(text: str, prompt_chunks: list[str], cause: str = "") -> list[str]:
    """The prompt's own words handed back: its instruction sentences (`prompt_chunks`, the template's
    fixed text) found in the answer's words, and a root cause that is only a placeholder in
    parentheses, as templates write them (`(one or two sentences)`)."""
    flat = " ".join((text or "").split()).lower()
    found = [c for c in prompt_chunks if c and " ".join(c.split()).lower() in flat]
    return found + ([cause.strip()] if _PLACEHOLDER.match(" ".join(cause.split())) else [])


def check_explanation(text: str, cause: str, before: list[dict], after: list[dict], repo_dir: Path | None,
                      known_code: str, changed: list[str], prompt_chunks: list[str]) -> dict:
    """Every checkable claim of an explanation: the monologue's values against the trace before the
    fix (as `check_monologue`), the root cause's against both traces (it may speak of either), each
    code name against the program and the fix, and an echo of the prompt (one claim, false when
    found). `names_change`: the root cause quotes the changed expression (`changed`: before, after).
    Same keys as `check_monologue`, with `alien`, `echo`, `names_change` and `problems`: what to tell
    the model. A missing root cause, or one that never names the changed code, is a problem (asked
    again) but no contradiction: a vague cause is not a false one, and the score does not fall."""
    # the root cause's claims are checked once, on their own, against both traces
    sim = check_monologue(text.replace(cause, "") if cause.strip() else text, before, repo_dir)
    said = check_monologue(cause, before + after, repo_dir) if cause.strip() else \
        {"claims": 0, "checked": 0, "contradicted": 0, "contradictions": []}
    names = code_names(text)
    alien = alien_names(text, known_code)
    echo = echoes(text, prompt_chunks, cause)
    named = names_change(cause, changed)
    false = sim["contradictions"] + said["contradictions"] + \
        [f"`{n}` exists in neither the program nor the fix" for n in alien] + \
        [f"you repeated the prompt's words \"{c}\" instead of answering" for c in echo[:1]]
    vague = []
    if not cause.strip():
        vague = ["the answer gives no root cause"]
    elif not named and any(changed):
        vague = [f"the root cause does not name the changed code `{next(e for e in changed if e)}`"]
    checked = sim["checked"] + said["checked"] + len(names) + 1
    contradicted = sim["contradicted"] + said["contradicted"] + len(alien) + bool(echo)
    return {"claims": sim["claims"] + said["claims"] + len(names) + 1, "checked": checked,
            "contradicted": contradicted, "score": round(1 - contradicted / checked, 4),
            "contradictions": false[:5], "alien": alien, "echo": echo,
            "names_change": named, "problems": false + vague}


def values_at(steps: list[dict], file: str, line: int, expr: str) -> list:
    """The value of `expr` on the traced locals each time the code reached file:line (before the
    line ran), where the trace holds every name it needs."""
    out, last = [], None
    for f, ln, env in _Trace(steps).states:
        if (f, ln) == (file, line) and last != (f, ln):
            try:
                out.append(_eval(expr, env))
            except Exception:
                pass
        last = (f, ln)
    return out
