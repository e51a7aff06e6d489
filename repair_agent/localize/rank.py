"""Functions first, then lines: one ranking from the spectrum, the tracebacks and the data-flow slice.

- `rank(spec, failures, repo_dir, failing, trace=None)`: the ranked line `Location`s. Functions are
  ranked first, by their best line (its Ochiai score plus half its traceback frame score, as the
  line ranking had it; ties in file order). Lines come by that score; among equal scores, the
  lines the failure depended on first (the slice: where its values came from; the traceback's
  lines), then one line of each function per round (each function's best, then its second...), in
  the functions' order: a tie among many lines becomes a choice among few functions. A line's
  `score` is its place. (Ochiai over whole functions, and the slice or the frames deciding between
  functions, ranked the fixed function lower on the BugsInPy dev bugs: a failure's own reporting
  code, such as an exception's constructor, runs in the failing test alone.)
- `missing_name(failures, repo_dir)`: a name the failing test imports and the code lacks
  (`ImportError: cannot import name ...`), as `(name, module, file)`; `rank` then ranks that module
  alone and never a `def` line, and `missing_text` says it plainly.
- `trace_targets(locations)`: the functions to trace for the slice.
"""

from __future__ import annotations

import ast
import difflib
import re
from pathlib import Path

from ..state import Location
from . import frames, sbfl
from .slice import dynamic_slice

# py3.7+: "cannot import name 'X' from 'pkg.mod' (/path/pkg/mod.py)"; py3.6: "cannot import name 'X'"
_CANNOT_IMPORT = re.compile(r"ImportError: cannot import name '?(?P<name>\w+)'?(?: from '(?P<module>[\w.]+)')?")
_NO_ATTRIBUTE = re.compile(r"AttributeError: module '(?P<module>[\w.]+)' has no attribute '(?P<name>\w+)'")
TRACED = 3  # functions traced for the slice


def _module_file(repo_dir: Path, module: str) -> str | None:
    for rel in (module.replace(".", "/") + ".py", module.replace(".", "/") + "/__init__.py",
                "src/" + module.replace(".", "/") + ".py", "src/" + module.replace(".", "/") + "/__init__.py"):
        if (repo_dir / rel).is_file() and not frames.is_test_file(rel):
            return rel
    return None


def _importing_module(repo_dir: Path, test_file: str, name: str) -> str | None:
    """The module that the test file's `from M import ... name` names."""
    try:
        tree = ast.parse((repo_dir / test_file).read_text(errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and any(a.name == name for a in node.names):
            return node.module
    return None


def missing_name(failures: list[str], repo_dir: Path, failing: list[str] | None = None) -> tuple[str, str, str] | None:
    """(NAME, MODULE, file of MODULE) when a failure says the test cannot import NAME from a module
    of this repository, else None."""
    repo_dir = Path(repo_dir)
    for text in failures:
        for rx in (_CANNOT_IMPORT, _NO_ATTRIBUTE):
            for m in rx.finditer(text or ""):
                name, module = m["name"], m["module"]
                if not module:
                    for test_id in failing or []:
                        module = _importing_module(repo_dir, test_id.split("::")[0], name)
                        if module:
                            break
                file = _module_file(repo_dir, module) if module else None
                if file:
                    return name, module, file
    return None


def missing_text(missing: tuple[str, str, str], repo_dir: Path | None = None) -> str:
    name, module, file = missing
    text = (f"The failing test imports `{name}` from `{module}`, which does not define it: "
            f"the fix must add `{name}` to `{module}` ({file}).")
    like = [q for q, _ in _similar(missing, repo_dir)] if repo_dir else []
    return text + (f" A similar name there: `{like[0]}` (renamed?)." if like else "")


def _similar(missing: tuple[str, str, str], repo_dir: Path) -> list[tuple[str, tuple[int, int, int]]]:
    """Top-level functions of the module whose names are close to the missing one: (name, (start, end, def line))."""
    name, _module, file = missing
    spans = {q: (s, e, d) for s, e, d, q in frames.function_spans(Path(repo_dir), file) if "." not in q}
    return [(q, spans[q]) for q in difflib.get_close_matches(name, list(spans), n=2, cutoff=0.75)]


def _def_lines(repo_dir: Path, file: str) -> set[int]:
    return {d for _s, _e, d, _q in frames.function_spans(repo_dir, file)}


def missing_ranking(missing: tuple[str, str, str], lines: list[Location], repo_dir: Path) -> list[Location]:
    """The module's end first (where a new name goes), then the bodies of functions with a similar name
    (a rename), then the module's ranked lines; never a `def` line."""
    _name, _module, file = missing
    text = (Path(repo_dir) / file).read_text(errors="replace").splitlines()
    last = max((i + 1 for i, t in enumerate(text) if t.strip()), default=1)
    defs = _def_lines(repo_dir, file)
    out = [Location(file=file, function="<module>", line=last, score=1.0)]
    out += [Location(file=file, function=q, line=line, score=0.0) for q, (_s, end, d) in _similar(missing, repo_dir)
            for line in range(d + 1, end + 1) if line != last]
    out += [loc for loc in lines if loc["file"] == file and loc["line"] not in defs]
    return by_place(list({(loc["file"], loc["line"]): loc for loc in reversed(out)}.values())[::-1])


def rank(spec: sbfl.Spectrum, failures: list[str], repo_dir: Path, failing: list[str] | None = None,
         trace: list[dict] | None = None) -> list[Location]:
    """Ranked lines (non-test files), the top functions' lines first; see the module docstring."""
    repo_dir = Path(repo_dir)
    lines = sbfl.with_functions(sbfl.rank_lines(spec), repo_dir)
    if missing := missing_name(failures, repo_dir, failing):
        return missing_ranking(missing, lines, repo_dir)
    frame_score = {(loc["file"], loc["line"]): loc["score"] for loc in frames.rank_frames(failures, repo_dir)}
    in_slice = dynamic_slice(trace or [], repo_dir)
    by_func: dict[tuple[str, str], list[Location]] = {}
    known = set()
    for loc in lines:
        by_func.setdefault((loc["file"], loc["function"]), []).append(loc)
        known.add((loc["file"], loc["line"]))
    for (file, line), s in frame_score.items():  # a frame the spectrum missed (coverage off, a crash)
        if (file, line) not in known:
            func = frames.function_at(repo_dir, file, line)
            by_func.setdefault((file, func), []).append(Location(file=file, function=func, line=line, score=0.0))

    depends = in_slice | set(frame_score)  # lines the failure depended on: its data flow, its traceback

    def line_score(loc: Location) -> float:
        return loc["score"] + frame_score.get((loc["file"], loc["line"]), 0.0) / 2

    def line_key(loc: Location):
        return (-line_score(loc), -((loc["file"], loc["line"]) in depends), loc["line"])

    def func_key(key):  # ties in file order, as the line ranking had them
        own = by_func[key]
        return (-max(line_score(loc) for loc in own), key[0], min(loc["line"] for loc in own))

    placed = []  # (score, the slice or frames, round, function's place): one line per function per round
    for place, key in enumerate(sorted(by_func, key=func_key)):
        for i, loc in enumerate(sorted(by_func[key], key=line_key)):
            placed.append(((*line_key(loc)[:2], i, place), loc))
    out = [loc for _, loc in sorted(placed, key=lambda p: p[0])]
    return by_place(out)


def by_place(locations: list[Location]) -> list[Location]:
    """The same locations scored by their place (1 for the first, falling evenly): later steps that
    sort by score (the search's line order) keep this order."""
    n = len(locations)
    return [{**loc, "score": round((n - i) / n, 6)} for i, loc in enumerate(locations)]


def trace_targets(locations: list[Location], n: int = TRACED) -> list[tuple[str, str]]:
    """The first `n` distinct functions of a ranking (module level left out): what to trace."""
    out: list[tuple[str, str]] = []
    for loc in locations:
        key = (loc["file"], loc["function"])
        if loc["function"] and loc["function"] != "<module>" and key not in out:
            out.append(key)
    return out[:n]
