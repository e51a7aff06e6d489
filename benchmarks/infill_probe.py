"""How often the infill source proposes the right fix when it is told the buggy line (QuixBugs).

    .venv/bin/python benchmarks/infill_probe.py [--model qwen2.5-coder-0.5b | --base-url URL]
        [--samples 12] [--ids gcd,bitcount] [--limit N] [--tests] [--evidence off|on|both] [--json OUT]

A probe, not the agent: the location is the KNOWN buggy line (repair_agent.bench.datasets.
quixbugs_bug_lines, ground truth that the agent never sees), and repair_agent.search.infill
proposes candidates exactly as in a run (same masks, prompts, sampling; seed 0). A candidate is
*exact* when its code (docstrings aside) has the syntax tree of QuixBugs' correct program; with
`--tests` it is *plausible* when the program's tests pass with it (pytest in a temporary folder,
at most --max-tests candidates per program). Per program and mask: samples, distinct candidates,
the rank of the first exact / plausible one, tokens and seconds. Without --base-url the GGUF is
served by llama.cpp on loopback with all cores, as `repair-agent fix` does.
--evidence on: the prompt opens with how the program's tests fail (outcomes.failure_lines, from one
run of its tests, as the search's prompt does); both: each program probed without, then with it,
side by side, and a summary for each.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from repair_agent.bench.datasets import _quixbugs_raw, load_quixbugs, quixbugs_bug_lines  # noqa: E402
from repair_agent.bench.runner import code_version  # noqa: E402
from repair_agent.llm.client import OpenAIModel, Sampling  # noqa: E402
from repair_agent.llm.profiles import profile_for  # noqa: E402
from repair_agent.outcomes import failure_lines  # noqa: E402
from repair_agent.sandbox.base import pytest_command, read_junit  # noqa: E402
from repair_agent.search import SearchContext, infill  # noqa: E402


class Recorder:
    """The model, with every call's Generation kept, by mask: a mask's prompt is asked once or twice
    (the search's second batch), and a new prompt is the next mask."""

    def __init__(self, model):
        self.model, self.name, self.calls, self.prompts = model, model.name, [], []

    def _keep(self, prompt, gen):
        if not self.prompts or self.prompts[-1] != prompt:
            self.prompts.append(prompt)
        self.calls.append((len(self.prompts) - 1, gen))
        return gen

    def complete(self, prompt, sampling, logprobs=False):
        return self._keep(prompt, self.model.complete(prompt, sampling, logprobs=logprobs))

    def generate(self, messages, sampling):
        return self._keep(messages, self.model.generate(messages, sampling))


def code_dump(text: str) -> str:
    """The syntax tree without module-level strings (QuixBugs' docstrings differ between versions)."""
    tree = ast.parse(text)
    tree.body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    return ast.dump(tree)


@contextmanager
def program_tree(task, program: str, text: str):
    """A temporary folder holding the task's files with `text` as the program."""
    with tempfile.TemporaryDirectory(prefix=f"infill-{task.task_id}-") as tmp:
        for rel, content in {**task.files, program: text}.items():
            (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / rel).write_text(content)
        yield Path(tmp)


def passes(task, program: str, text: str) -> bool:
    """The program's tests pass with `text` (2 s per test: candidates that loop must not cost much)."""
    with program_tree(task, program, text) as tmp:
        try:
            run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                  "--timeout=2", *task.test_args], cwd=tmp, capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            return False
        return run.returncode == 0


def failure_of(task, program: str, text: str) -> str:
    """How the program's tests fail with `text`, as the search tells the model (the sandbox's pytest command)."""
    with program_tree(task, program, text) as tmp:
        try:
            run = subprocess.run([sys.executable, *pytest_command(task.test_args, "junit.xml", 2)], cwd=tmp,
                                 capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return "the test run timed out (an infinite loop or very slow code)"
        if not (tmp / "junit.xml").is_file():
            return ""
        return failure_lines(read_junit(tmp / "junit.xml", run.returncode, False, 0.0, run.stdout))


def probe(pid: str, bug: dict, fixed: str, task, model, profile, args, failure: str = "") -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"infill-probe-{pid}-"))
    text = task.files[bug["file"]]
    (root / bug["file"]).parent.mkdir(parents=True)
    (root / bug["file"]).write_text(text)
    line = bug["lines"][0]
    rec = Recorder(model)
    ctx = SearchContext(root=root, settings=SimpleNamespace(seed=0, infill_samples=args.samples), model=rec,
                        profile=profile, log=lambda msg: None, failure=failure)
    kinds = [m.kind for m in infill.masks(text, line, ast.parse(text))]
    masks = [{"kind": k, "candidates": 0, "exact": None, "plausible": None, "notes": []} for k in kinds]
    want, tested, first = code_dump(fixed), 0, {}
    for edit in infill.candidates({"file": bug["file"], "function": pid, "line": line, "score": 1.0}, ctx):
        m = masks[len(rec.prompts) - 1]  # the edits of a mask come after its calls and before the next
        m["candidates"] += 1
        m["notes"].append(edit["note"])
        exact = code_dump(edit["text"]) == want
        if exact and m["exact"] is None:
            m["exact"] = m["candidates"]
            first.setdefault("exact", edit["note"])
        if args.tests and m["plausible"] is None and (exact or tested < args.max_tests):
            tested += not exact  # the correct program passes its tests: no run needed
            if exact or passes(task, bug["file"], edit["text"]):
                m["plausible"] = m["candidates"]
                first.setdefault("plausible", edit["note"])
    for i, m in enumerate(masks):
        gens = [gen for no, gen in rec.calls if no == i]
        m.update(samples=sum(len(g.completions) for g in gens),
                 prompt_tokens=gens[0].prompt_tokens // max(gens[0].requests, 1) if gens else 0,
                 completion_tokens=sum(g.completion_tokens for g in gens), seconds=round(sum(g.seconds for g in gens), 2))
    return {"id": pid, "evidence": bool(failure), "line": line, "buggy": text.splitlines()[line - 1].strip(), "masks": masks,
            "exact": any(m["exact"] for m in masks), "exact_line_mask": bool(masks and masks[0]["exact"]),
            "plausible": any(m["plausible"] for m in masks), "first": first, "tested": tested}


def cache_check(model, prompt: str) -> list[float]:
    """Seconds of three one-token requests with the same prompt: the first fills llama.cpp's cache."""
    out = []
    for seed in range(3):
        start = time.monotonic()
        model.complete(prompt, Sampling(n=1, temperature=0.8, top_p=0.95, max_tokens=1, seed=seed))
        out.append(round(time.monotonic() - start, 3))
    return out


def summarize(results: list[dict], model: str, profile: str, args, cache: list[float], wall: float) -> dict:
    masks = [m for r in results for m in r["masks"]]
    samples = sum(m["samples"] for m in masks)
    return {
        "model": model, "profile": profile, "samples_per_mask": args.samples, "programs": len(results),
        "exact_line_mask": sum(r["exact_line_mask"] for r in results),
        "exact_any_mask": sum(r["exact"] for r in results),
        "plausible_any_mask": sum(r["plausible"] for r in results) if args.tests else None,
        "masks": len(masks), "samples": samples,
        "completion_tokens_per_sample": round(sum(m["completion_tokens"] for m in masks) / max(samples, 1), 1),
        "prompt_tokens_per_mask": round(sum(m["prompt_tokens"] for m in masks) / max(len(masks), 1), 1),
        "seconds_per_sample": round(sum(m["seconds"] for m in masks) / max(samples, 1), 3),
        "cache_check_s": cache, "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b", help="a registry name or GGUF path")
    ap.add_argument("--base-url", help="an OpenAI-compatible server instead of serving --model")
    ap.add_argument("--samples", type=int, default=12)
    ap.add_argument("--ids", default="", help="comma-separated program ids (default: all 40)")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--tests", action="store_true", help="also run each program's tests on candidates")
    ap.add_argument("--max-tests", type=int, default=20, help="test runs per program at most")
    ap.add_argument("--evidence", choices=["off", "on", "both"], default="off",
                    help="the failing tests' evidence in the prompt: without, with, or both side by side")
    ap.add_argument("--json", type=Path, help="write the per-program results here")
    args = ap.parse_args(argv)

    ids = [s for s in args.ids.split(",") if s] or None
    bugs = quixbugs_bug_lines(ids)
    fixed = {r["id"]: r["fixed_source"] for r in _quixbugs_raw()}  # the reference, for scoring only
    tasks = {t.task_id: t for t in load_quixbugs(ids, args.limit)}
    server = None
    if args.base_url:
        model = OpenAIModel(args.base_url)
    else:
        from repair_agent.llm.llamacpp import start_llama_server

        server = start_llama_server(args.model, n_threads=os.cpu_count())
        model = OpenAIModel(server.base_url, None)  # the agent's server takes `n`: a hole's samples decoded together
    profile = profile_for(model.name)
    results, start = [], time.monotonic()
    try:
        first = next(iter(tasks.values()))
        bug = bugs[first.task_id]
        text = first.files[bug["file"]]
        mask = infill.masks(text, bug["lines"][0], ast.parse(text))[0]
        prefix, suffix = infill.context(text.splitlines(keepends=True), ast.parse(text), mask, 4096)
        cache = cache_check(model, infill.fim_prompt(profile.infill.fim, prefix, suffix)) if profile.infill.fim else []
        ways = {"off": [False], "on": [True], "both": [False, True]}[args.evidence]
        for pid, task, told in ((p, t, w) for p, t in tasks.items() for w in ways):
            t0 = time.monotonic()
            failure = failure_of(task, bugs[pid]["file"], task.files[bugs[pid]["file"]]) if told else ""
            r = probe(pid, bugs[pid], fixed[pid], task, model, profile, args, failure)
            r["seconds"] = round(time.monotonic() - t0, 1)
            results.append(r)
            kinds = " ".join(f"{m['kind']}:{m['candidates']}{'*' if m['exact'] else ''}" for m in r["masks"])
            print(f"{pid:<28} {'EXACT' if r['exact'] else '     '} {'PLAUS' if r['plausible'] else '     '} "
                  f"{kinds:<34} {r['seconds']:>6} s  {(r['first'].get('exact') or r['first'].get('plausible') or '')!r}",
                  flush=True)
            if args.json:  # after every program: a long run stopped halfway still tells
                args.json.write_text(json.dumps(report(results, model, profile, args, cache, start), indent=1))
    finally:
        if server:
            server.stop()
    out = report(results, model, profile, args, cache, start)
    print(json.dumps({k: v for k, v in out.items() if k != "results"}, indent=1))
    return 0


def report(results: list[dict], model, profile, args, cache: list[float], start: float) -> dict:
    """{"summary"} for one way; with --evidence both, {"summary" (without), "summary_evidence"} too."""
    wall = time.monotonic() - start
    out = {"summary": summarize([r for r in results if not r["evidence"] or args.evidence == "on"],
                                model.name, profile.name, args, cache, wall)}
    if args.evidence == "both":
        out["summary_evidence"] = summarize([r for r in results if r["evidence"]], model.name, profile.name, args,
                                            cache, wall)
    return {**out, "code": code_version(), "results": results}


if __name__ == "__main__":
    raise SystemExit(main())
