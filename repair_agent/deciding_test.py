"""A disagreement becomes a test. When the plausible patches disagree on an input that no test
tried, the tests could not choose between them; the guard chose one. The input and the chosen
patch's outcome become a pytest file (the other patches' outcomes in its comments) that the user
checks, corrects if the chosen outcome is wrong, and keeps (`fix --apply --add-tests`): run again
with it, the patches no longer tie.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

from .judge.differential import outcome_text, show


def deciding_test(result: dict, repo: Path) -> dict | None:
    """`{"path": where the test goes in the repository, "text": the pytest file}` for a fix whose
    plausible patches disagree on an input written with literals only; else None."""
    d = result.get("disagreement") or {}
    fn, plausible = d.get("function") or "", (result.get("search") or {}).get("plausible") or []
    chosen = (d.get("outcomes") or {}).get("patch #1")
    call = literal_call(fn, d.get("input") or {})
    if d.get("kind") != "patches disagree" or not chosen or not plausible or not fn.isidentifier() or not call:
        return None
    check = assertion(call, chosen)
    if not check:
        return None
    failing = [t.split("::")[0] for t in (result.get("tests_before") or {}).get("failing") or []]
    folder = Path(failing[0]).parent if failing else Path(".")
    path = free_name(repo, folder, f"test_{fn}_deciding_input")
    others = [f"#   {who} ({describe(plausible, who)}) {outcome_text(o)}" for who, o in d["outcomes"].items()
              if who != "patch #1"]
    text = "\n".join([
        f'"""Written by repair-agent (run {result.get("run_id", "")}): the {len(plausible)} plausible patches '
        "disagree on this input,",
        f"which no test tried. The chosen patch ({describe(plausible, 'patch #1')}) {outcome_text(chosen)}.",
        f"Check that this is what `{fn}` should do (correct the test if not), then keep the test.",
        '"""',
        *(["", "import pytest"] if chosen["kind"] == "raise" else []),
        "",
        import_line(repo, failing, fn, plausible[0].get("file") or ""),
        "",
        "# the other plausible patches:",
        *others,
        "",
        "",
        f"def test_{fn}_on_the_deciding_input():",
        *check,
        ""])
    return {"path": path.as_posix(), "text": text}


def literal(value) -> str | None:
    """`value` (as the guard records it) as Python source that evaluates to it, or None."""
    text = show(value)
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return text


def literal_call(fn: str, call: dict) -> str | None:
    if call.get("objects"):  # objects of the program's own classes: no literal writes them
        return None
    args = [literal(a) for a in call.get("args") or []]
    kwargs = [f"{k}={v}" for k, x in (call.get("kwargs") or {}).items() if (v := literal(x)) is not None]
    if None in args or len(kwargs) != len(call.get("kwargs") or {}):
        return None
    return f"{fn}({', '.join([*args, *kwargs])})"


def assertion(call: str, outcome: dict) -> list[str] | None:
    """The test's body: the call returns the chosen patch's value, or raises its (builtin) exception."""
    if outcome.get("leaves"):  # the patches differ in what the call left behind, not in what it returned
        return None
    if outcome.get("kind") == "ok" and not outcome.get("objects") and (value := literal(outcome.get("value"))):
        return [f"    assert {call} == {value}"]
    error = getattr(builtins, outcome.get("type") or "", None) if outcome.get("kind") == "raise" else None
    if isinstance(error, type) and issubclass(error, BaseException):
        return [f"    with pytest.raises({error.__name__}):", f"        {call}"]
    return None


def describe(plausible: list[dict], who: str) -> str:
    """`patch #2` -> "`+` -> `-` at stats.py:10"."""
    f = plausible[int(who.removeprefix("patch #")) - 1] if who.startswith("patch #") else {}
    return f"{f.get('note', '')} at {f.get('file', '')}:{f.get('line', '')}".strip() if f else who


def import_line(repo: Path, test_files: list[str], fn: str, fixed_file: str) -> str:
    """The import the failing tests use for `fn`, else one from the fixed file's path."""
    for rel in test_files:
        try:
            tree = ast.parse((Path(repo) / rel).read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level and any(
                    a.name == fn and not a.asname for a in node.names):
                return f"from {node.module} import {fn}"
    module = Path(fixed_file).with_suffix("").as_posix().removeprefix("src/").replace("/", ".")
    return f"from {module.removesuffix('.__init__')} import {fn}"


def free_name(repo: Path, folder: Path, stem: str) -> Path:
    n, path = 1, folder / f"{stem}.py"
    while (Path(repo) / path).exists():
        n += 1
        path = folder / f"{stem}_{n}.py"
    return path


def as_new_file(path: str, text: str) -> str:
    """A unified diff that adds `path` with `text` (for git apply, after the fix's own diff)."""
    body = text.splitlines()
    return (f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
            f"@@ -0,0 +1,{len(body)} @@\n" + "".join(f"+{line}\n" for line in body))
