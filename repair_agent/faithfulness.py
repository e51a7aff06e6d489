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
