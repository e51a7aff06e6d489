"""Per-test line coverage, summarised as a spectrum, printed as JSON between marker lines.

Runs inside the sandbox with the interpreter that has pytest + coverage, cwd = the repository:

    python coverage_contexts.py [--failing NODEID ...] [--max-lines N] -- PYTEST_ARGS...

pytest runs in-process under `coverage.Coverage(data_file=None)` (no file is written anywhere) and
a small plugin switches the coverage context to each test's node id for its setup, call and
teardown, so parametrized cases stay apart (coverage's own `dynamic_context = test_function`
would merge them). The output is not the raw context map, which can be larger than the sandbox's
64 KiB console tail, but per line the number of failing and passing tests that ran it (only lines
that a failing test ran: the others score 0 under Ochiai anyway), plus the totals. The failing set
is `--failing` where given (the ids of a prior run), else this run's own outcomes.

`covers` maps each measured line to the passing tests that ran it, for the validator's test
selection: `{"tests": [ids], "sets": [[test index, ...]], "files": {file: {set index: [lines]}}}`
(lines that the same tests ran share a set; `passing`: how many passing tests there were). Where it
would not fit the console tail, only the lines that a failing test ran are mapped (a big project's
suite); where even that would not fit, it is null.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
import zlib

BEGIN, END = "@@REPAIR_AGENT_SPECTRUM_BEGIN@@", "@@REPAIR_AGENT_SPECTRUM_END@@"
MAX_JSON = 48 * 1024  # above this the JSON goes zlib+base64
MAX_OUT = 56 * 1024  # the printed text must fit the sandbox's 64 KiB console tail


class ContextPlugin:
    def __init__(self, cov):
        self.cov = cov
        self.outcomes: dict[str, str] = {}
        self.failures: dict[str, str] = {}

    def _switch(self, name: str) -> None:
        self.cov.switch_context(name)

    def pytest_runtest_setup(self, item):
        self._switch(item.nodeid)

    def pytest_runtest_call(self, item):
        self._switch(item.nodeid)

    def pytest_runtest_teardown(self, item):
        self._switch(item.nodeid)

    def pytest_runtest_logreport(self, report):
        prev = self.outcomes.get(report.nodeid)
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.skipped and prev is None:
            self.outcomes[report.nodeid] = "skipped"
        elif prev is None:
            self.outcomes[report.nodeid] = "passed"
        if report.when == "teardown":
            self._switch("")


def encode(out: dict) -> str:
    text = json.dumps(out, separators=(",", ":"))
    if len(text) > MAX_JSON:
        text = "z:" + base64.b64encode(zlib.compress(text.encode(), 9)).decode()
    return text


def covers_map(measured: dict[str, dict], passing: set[str], only: set | None = None) -> dict:
    """The passing tests that ran each line (of `only`'s (file, line) pairs, where given); `passing`:
    how many passing tests there were, whether or not the map names them all."""
    keep = {rel: {n: ctx & passing for n, ctx in by_line.items() if only is None or (rel, n) in only}
            for rel, by_line in measured.items()}
    tests = sorted(passing) if only is None else sorted({t for by_line in keep.values() for ctx in by_line.values()
                                                         for t in ctx})
    index, sets, files = {t: i for i, t in enumerate(tests)}, {}, {}
    for rel, by_line in keep.items():
        for lineno, ctx in by_line.items():
            ran = tuple(sorted(index[t] for t in ctx))
            if ran:
                key = str(sets.setdefault(ran, len(sets)))
                files.setdefault(rel, {}).setdefault(key, []).append(lineno)
    return {"tests": tests, "sets": [list(s) for s in sets], "files": files, "passing": len(passing)}


def main(argv: list[str]) -> int:
    if "--" in argv:
        i = argv.index("--")
        own, pytest_args = argv[:i], argv[i + 1:]
    else:
        own, pytest_args = argv, []
    ap = argparse.ArgumentParser()
    ap.add_argument("--failing", action="append", default=[])
    ap.add_argument("--max-lines", type=int, default=3000)
    opts = ap.parse_args(own)

    import coverage

    root = os.getcwd()
    sys.path.insert(0, root)  # as `python -m pytest` would
    omit = [os.path.abspath(__file__), "*/site-packages/*", "*/.venv/*", "*/venv/*", "*/.tox/*", "*/.nox/*"]
    cov = coverage.Coverage(data_file=None, source=[root], branch=False, omit=omit)
    plugin = ContextPlugin(cov)
    real_stdout = os.fdopen(os.dup(1), "w")
    cov.start()
    try:
        import pytest

        rc = pytest.main(["-p", "no:cacheprovider", "-q", *pytest_args], plugins=[plugin])
    finally:
        cov.stop()
    data = cov.get_data()

    seen = set(plugin.outcomes)
    failing = {f for f in opts.failing if f in seen}
    if not failing:
        failing = {t for t, o in plugin.outcomes.items() if o == "failed"}
    passing = {t for t, o in plugin.outcomes.items() if o == "passed" and t not in failing}

    lines: list[list] = []  # [file, line, failed_count, passed_count]
    measured: dict[str, dict] = {}  # file -> line -> the tests that ran it
    for path in sorted(data.measured_files()):
        rel = os.path.relpath(path, root)
        if rel.startswith(".."):
            continue
        measured[rel] = {lineno: set(contexts) for lineno, contexts in data.contexts_by_lineno(path).items()}
        for lineno, ctx in measured[rel].items():
            ef = len(ctx & failing)
            if ef:
                lines.append([rel, lineno, ef, len(ctx & passing)])
    nf = len(failing)
    if len(lines) > opts.max_lines:  # keep the most suspicious
        lines.sort(key=lambda r: -(r[2] / math.sqrt(nf * (r[2] + r[3])) if nf else 0))
        lines = lines[:opts.max_lines]
    out = {"pytest_rc": int(rc), "failing": sorted(failing), "n_failed": nf, "n_passed": len(passing),
           "n_tests": len(plugin.outcomes), "lines": lines, "covers": covers_map(measured, passing)}
    text = encode(out)
    if len(text) > MAX_OUT:  # the map is a saving, not a need: a big suite's map keeps the lines that a
        # failing test ran (where a fix goes); then none, before the spectrum breaks
        out["covers"] = covers_map(measured, passing, {(r[0], r[1]) for r in lines})
        text = encode(out)
    if len(text) > MAX_OUT:
        out["covers"] = None
        text = encode(out)
    real_stdout.write(f"\n{BEGIN}\n{text}\n{END}\n")
    real_stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
