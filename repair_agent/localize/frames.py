"""Traceback frames from pytest failure text, source mapping, and the code context for prompts.

- `frames(details, repo_dir)`: the frames inside the repository from one failure text, in the
  order they appear (outermost first).
- `rank_frames(failures, repo_dir)`: `Location`s for the non-test frames of one or more failures,
  the deepest frame first (line granularity; `by_function=True` rolls up to functions).
- `function_at(repo_dir, file, line)` / `function_span(...)`: the enclosing function of a line
  (qualified name, e.g. `Stack.push`), found with `ast` on the host.
- `context_for(repo_dir, locations, budget_tokens)`: the top-ranked functions' source with line
  numbers, within a token budget (tokens approximated as chars / 4).
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

from ..state import Location
from ..syntax import first_line, functions

# pytest long/short/auto: "pkg/mod.py:12: in func" and, for the last entry, "pkg/mod.py:12: ValueError"
_PYTEST_FRAME = re.compile(r"^(?P<file>[^\s:][^:\n]*?\.py):(?P<line>\d+):(?: (?P<rest>.*))?$", re.M)
# native tracebacks: '  File "pkg/mod.py", line 12, in func'
_NATIVE_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+\.py)", line (?P<line>\d+), in (?P<func>\S+)', re.M)
CONTAINER_ROOT = "/workspace"


def is_test_file(path: str) -> bool:
    """Test modules and test folders: test_*.py, *_test.py, conftest.py, tests/, testing/, *testcases/."""
    parts = Path(path).parts
    name = parts[-1] if parts else ""
    if name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py" or name == "tests.py":
        return True
    for d in parts[:-1]:
        d = d.lower()
        if d in ("test", "tests", "testing") or d.startswith("test_") or d.endswith("_tests") \
                or "testcase" in d:
            return True
    return False


def _relative(path: str, repo_dir: Path) -> str | None:
    """The path relative to the repository, or None when it lies outside."""
    p = path.strip()
    if p.startswith(CONTAINER_ROOT + "/"):
        p = p[len(CONTAINER_ROOT) + 1:]
    pp = Path(p)
    if pp.is_absolute():
        try:
            pp = pp.resolve().relative_to(repo_dir.resolve())
        except (ValueError, OSError):
            return None
    rel = pp.as_posix()
    if rel.startswith("../") or not (repo_dir / rel).is_file():
        return None
    return rel


# -- source mapping ------------------------------------------------------------------------------
@lru_cache(maxsize=512)
def _spans(path: str, mtime: float) -> tuple[tuple[int, int, int, str], ...]:
    """(start, end, def_line, qualname) of every function in a file; start includes decorators."""
    try:
        tree = ast.parse(Path(path).read_text(errors="replace"))
    except (SyntaxError, ValueError, OSError):
        return ()
    return tuple((first_line(fn), fn.end_lineno or fn.lineno, fn.lineno, name) for name, fn, _ in functions(tree))


def function_spans(repo_dir: Path, file: str) -> tuple[tuple[int, int, int, str], ...]:
    p = Path(repo_dir) / file
    try:
        return _spans(str(p), p.stat().st_mtime)
    except OSError:
        return ()


def function_span(repo_dir: Path, file: str, line: int) -> tuple[int, int, str] | None:
    """(start, end, qualname) of the innermost function holding `line`, or None (module level)."""
    best = None
    for start, end, _def, q in function_spans(repo_dir, file):
        if start <= line <= end and (best is None or start >= best[0]):
            best = (start, end, q)
    return best


def function_at(repo_dir: Path, file: str, line: int) -> str:
    span = function_span(repo_dir, file, line)
    return span[2] if span else "<module>"


# -- frames --------------------------------------------------------------------------------------
def frames(details: str, repo_dir: Path) -> list[dict]:
    """Frames inside the repository, outermost first: {file, line, function, test}."""
    repo_dir = Path(repo_dir)
    found: list[tuple[int, dict]] = []
    for rx in (_PYTEST_FRAME, _NATIVE_FRAME):
        for m in rx.finditer(details or ""):
            rel = _relative(m.group("file"), repo_dir)
            if rel is None:
                continue
            line = int(m.group("line"))
            func = m.groupdict().get("func")
            rest = m.groupdict().get("rest") or ""
            if not func and rest.startswith("in "):
                func = rest[3:].strip()
            func = function_at(repo_dir, rel, line) if not func or func == "<module>" else \
                _qualify(repo_dir, rel, line, func)
            found.append((m.start(), {"file": rel, "line": line, "function": func,
                                      "test": is_test_file(rel)}))
    found.sort(key=lambda t: t[0])
    out: list[dict] = []
    for _, f in found:  # pytest repeats the last frame in some layouts; drop exact repeats in a row
        if not out or (out[-1]["file"], out[-1]["line"]) != (f["file"], f["line"]):
            out.append(f)
    return out


def _qualify(repo_dir: Path, file: str, line: int, name: str) -> str:
    q = function_at(repo_dir, file, line)
    return q if q.split(".")[-1] == name else name


def rank_frames(failures: list[str] | str, repo_dir: Path, by_function: bool = False,
                include_tests: bool = False) -> list[Location]:
    """Rank the non-test frames of the failure texts: deepest first.

    Within one failure the deepest non-test frame scores 1, the next 1/2, 1/3, ...; scores add up
    over failures and are divided by their number, so a frame deep in every failure scores 1.
    """
    if isinstance(failures, str):
        failures = [failures]
    failures = [f for f in failures if f]
    scores: dict[tuple[str, str, int], float] = {}
    best_line: dict[tuple[str, str, int], tuple[float, int]] = {}  # function -> (score, line)
    for text in failures:
        fr = [f for f in frames(text, repo_dir) if include_tests or not f["test"]]
        seen: set[tuple] = set()
        for f in reversed(fr):
            key = (f["file"], f["function"], 0 if by_function else f["line"])
            if key in seen:
                continue  # recursion: count a frame once per failure, at its deepest
            seen.add(key)
            s = 1.0 / len(seen)
            scores[key] = scores.get(key, 0.0) + s
            if best_line.get(key, (-1.0, 0))[0] < s:
                best_line[key] = (s, f["line"])
    n = max(1, len(failures))
    out: list[Location] = []
    for key, s in scores.items():
        file, func, line = key
        out.append(Location(file=file, function=func, line=line or best_line[key][1],
                            score=round(s / n, 6)))
    out.sort(key=lambda loc: -loc["score"])
    return out


# -- context for the prompt ----------------------------------------------------------------------
def _numbered(lines: list[str], start: int, end: int, mark: set[int]) -> str:
    width = len(str(end))
    return "\n".join(f"{'>' if i in mark else ' '}{i:>{width}} | {lines[i - 1].rstrip()}"
                     for i in range(start, end + 1))


def _outermost(order: list[tuple[str, int, int, str]], marks: dict) -> list[tuple[str, int, int, str]]:
    """A function nested in another listed one is shown once, inside it, at the rank of the
    first of the two; its marks move to the enclosing function."""
    out: list[tuple[str, int, int, str]] = []
    for entry in order:
        file, start, end, _ = entry
        outer = min((o for o in order if o[0] == file and o[1] <= start and end <= o[2]),
                    key=lambda o: o[1] - o[2])  # the widest one holding it (itself at least)
        if outer is not entry:
            marks[outer[:3]] |= marks[entry[:3]]
        if outer not in out:
            out.append(outer)
    return out


def context_for(repo_dir: Path, locations: list[Location], budget_tokens: int = 1500,
                window: int = 8) -> str:
    """Source of the top-ranked functions with line numbers ('>' marks the ranked lines).

    Functions come in rank order, each once; a module-level location shows `window` lines around
    it. A function that does not fit in what is left of the budget is cut to a window around its
    ranked line; the text never exceeds budget_tokens * 4 characters.
    """
    repo_dir = Path(repo_dir)
    budget = max(0, int(budget_tokens) * 4)
    marks: dict[tuple[str, int, int], set[int]] = {}
    order: list[tuple[str, int, int, str]] = []
    for loc in locations:
        file, line = loc.get("file", ""), int(loc.get("line") or 0)
        path = repo_dir / file
        if not file or not path.is_file():
            continue
        span = function_span(repo_dir, file, line) if line else None
        if span is None:
            if not line:
                continue
            key = (file, max(1, line - window), line + window)
            name = "<module>"
        else:
            key, name = (file, span[0], span[1]), span[2]
        if key not in marks:
            marks[key] = set()
            order.append((*key, name))
        if line:
            marks[key].add(line)
    order = _outermost(order, marks)
    parts: list[str] = []
    used = 0
    for file, start, end, name in order:
        lines = (repo_dir / file).read_text(errors="replace").splitlines()
        end = min(end, len(lines))
        if start > end:
            continue
        header = f"# {file}:{start}-{end} ({name})"
        block = header + "\n" + _numbered(lines, start, end, marks[(file, start, end)])
        sep = 2 if parts else 0
        if used + sep + len(block) > budget:
            # cut to a window around the ranked line(s), shrinking until it fits
            centre = min(marks[(file, start, end)] or {start})
            for w in (window * 2, window, window // 2, 2, 0):
                s, e = max(start, centre - w), min(end, centre + w)
                header = f"# {file}:{s}-{e} ({name}, cut)"
                block = header + "\n" + _numbered(lines, s, e, marks[(file, start, end)])
                if used + sep + len(block) <= budget:
                    break
            else:
                break
        parts.append(block)
        used += sep + len(block)
    return "\n\n".join(parts)[:budget]
