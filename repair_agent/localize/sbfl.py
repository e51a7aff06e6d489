"""Spectrum-based fault localization (Ochiai) from per-test coverage run in the sandbox.

`spectrum(sandbox, test_args, failing)` runs `sandbox/tools/coverage_contexts.py` (pytest in-process under
coverage, one coverage context per test node id) and returns, for each line a failing test ran,
how many failing (ef) and passing (ep) tests ran it. `rank_lines` scores lines with Ochiai
ef / sqrt(F * (ef + ep)); `rank_functions` rolls lines up to their enclosing function (the
function's score is its best line's, found with `ast` on the host). Test files are left out.
`sbfl(...)` does all three and returns ranked `Location`s. `covering_tests` reads the spectrum's
`covers` map (line -> the passing tests that ran it): the validator's test selection.
"""

from __future__ import annotations

import base64
import json
import math
import signal
import time
import zlib
from pathlib import Path
from typing import Callable, TypedDict

from ..errors import SandboxError
from ..state import Location
from .frames import function_at, is_test_file

BEGIN, END = "@@REPAIR_AGENT_SPECTRUM_BEGIN@@", "@@REPAIR_AGENT_SPECTRUM_END@@"
KILLED = (128 + signal.SIGKILL, -signal.SIGKILL)  # SIGKILL: Docker's wrapper (no exit code came back), a subprocess


class Spectrum(TypedDict):
    pytest_rc: int
    failing: list[str]  # node ids counted as failing
    n_failed: int
    n_passed: int
    n_tests: int
    lines: list[list]  # [file, line, ef, ep] for every line run by at least one failing test
    covers: dict | None  # {"tests", "sets", "files": {file: {set: [lines]}}}; None where too large


class SpectrumTimedOut(SandboxError):
    """The coverage run reached its time limit (a retry would too)."""


def ochiai(ef: int, ep: int, total_failed: int) -> float:
    if ef == 0 or total_failed == 0:
        return 0.0
    return ef / math.sqrt(total_failed * (ef + ep))


def parse_spectrum(output: str) -> Spectrum:
    i, j = output.rfind(BEGIN), output.rfind(END)
    if i < 0 or j < i:
        tail = output.strip().splitlines()[-5:]
        raise SandboxError("coverage run printed no spectrum: " + " | ".join(tail))
    text = output[i + len(BEGIN):j].strip()
    if text.startswith("z:"):
        text = zlib.decompress(base64.b64decode(text[2:])).decode()
    return json.loads(text)


def spectrum(sandbox, test_args: list[str] | None = None, failing: list[str] | None = None,
             timeout: float = 600, per_test_timeout: int | None = 60,
             log: Callable[[str], None] = lambda m: None) -> Spectrum:
    """Run the tests under coverage with per-test contexts in the sandbox. A run killed before its
    `timeout` runs once more (`log` says so); one that timed out does not."""
    cmd = [sandbox.python, sandbox.tool("coverage_contexts.py")]
    for f in failing or []:
        cmd += ["--failing", f]
    args = list(test_args or [])
    if per_test_timeout and not any(a.startswith("--timeout") for a in args):
        args = [f"--timeout={per_test_timeout}", *args]
    killed: list[float] = []  # the seconds at which each killed run ended
    while True:
        start = time.monotonic()
        rc, out = sandbox.run([*cmd, "--", *args], timeout=timeout)
        seconds = time.monotonic() - start
        if rc not in (124, *KILLED):
            return parse_spectrum(out)
        if rc == 124 or seconds >= timeout:  # a retry would time out again
            raise SpectrumTimedOut(f"coverage run timed out after {seconds:.0f}s (the limit: {timeout:.0f}s)")
        killed.append(seconds)
        after = " and ".join(f"{s:.0f}s" for s in killed)
        if getattr(sandbox, "last", {}).get("oom_killed"):  # the sandbox's own limit: it would again
            raise SandboxError(f"coverage run was killed after {after} of its {timeout:.0f}s: it hit the "
                               f"sandbox's memory limit")
        # killed before its time, not by its own limit (Docker's wrapper left no exit code): memory or
        # CPU pressure on the machine, which passes, so once more
        why = "not a timeout: killed, e.g. under memory or CPU pressure"
        if len(killed) == 2:
            raise SandboxError(f"coverage run was killed twice, after {after} of its {timeout:.0f}s ({why})")
        log(f"coverage run was killed after {after} of its {timeout:.0f}s ({why}); running it again")


def rank_lines(spec: Spectrum, include_tests: bool = False) -> list[Location]:
    """Lines by Ochiai score; ties go to the line fewer passing tests ran, then file order."""
    nf = spec["n_failed"]
    rows = [r for r in spec["lines"] if include_tests or not is_test_file(r[0])]
    rows.sort(key=lambda r: (-ochiai(r[2], r[3], nf), r[3], r[0], r[1]))
    return [Location(file=r[0], function="", line=int(r[1]), score=round(ochiai(r[2], r[3], nf), 6))
            for r in rows]


def rank_functions(lines: list[Location], repo_dir: Path) -> list[Location]:
    """Roll ranked lines up to functions: one Location per function at its best line."""
    best: dict[tuple[str, str], Location] = {}
    for loc in lines:
        func = loc["function"] or function_at(Path(repo_dir), loc["file"], loc["line"])
        key = (loc["file"], func)
        if key not in best:  # lines arrive best first
            best[key] = Location(file=loc["file"], function=func, line=loc["line"], score=loc["score"])
    return list(best.values())


def with_functions(lines: list[Location], repo_dir: Path) -> list[Location]:
    """The same lines, each named with its enclosing function."""
    return [Location(file=loc["file"], function=function_at(Path(repo_dir), loc["file"], loc["line"]),
                     line=loc["line"], score=loc["score"]) for loc in lines]


def covering_tests(covers: dict, changed: dict[str, set[int]]) -> list[str]:
    """The passing tests that ran any of the `changed` lines (file -> line numbers), in map order."""
    hit: set[int] = set()
    for file, lines in changed.items():
        for key, ran in covers["files"].get(file, {}).items():
            if lines.intersection(ran):
                hit.update(covers["sets"][int(key)])
    return [covers["tests"][i] for i in sorted(hit)]


def sbfl(sandbox, test_args: list[str] | None = None, failing: list[str] | None = None,
         repo_dir: Path | None = None, by_function: bool = True, timeout: float = 600,
         per_test_timeout: int | None = 60) -> list[Location]:
    """Ranked non-test `Location`s (functions by default, else lines) with Ochiai scores > 0."""
    spec = spectrum(sandbox, test_args, failing, timeout=timeout, per_test_timeout=per_test_timeout)
    repo = Path(repo_dir or sandbox.workdir)
    lines = rank_lines(spec)
    return rank_functions(lines, repo) if by_function else with_functions(lines, repo)
