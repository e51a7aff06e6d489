"""Sandbox overhead: validating one candidate on the host, through `docker exec`, and through the
warm test worker, side by side and interleaved so that machine noise hits every way alike.

Cases:
  gcd    - QuixBugs gcd (buggy), its test file, --runs times each way: medians
  heavy  - a small repository whose test module imports numpy (installed into the env image)
  package - a package of 200 modules (0.6 MB of source) that the test imports: what the zygote's
           compiling ahead saves (worker against `--no-precompile`)
  batch  - --batch candidates for gcd (the buggy line rewritten in a dozen ways, each one distinct),
           run as validation runs them (`-x`, each candidate an overlay): candidates per second
  youtube-dl-utils - a real project: youtube-dl-1 as `bench bugsinpy` builds it (the buggy commit of
           the clone in --bugsinpy, the fixed commit's test file), its failing test, each run a
           candidate that changes one line inside a function of youtube_dl/utils.py (3,887 lines,
           imported by the package's 800 modules): `docker exec`, the worker, and the worker whose
           zygote imports none of the tree (`--no-preload`)
Ways:
  host         `python -m pytest` as a plain subprocess (LocalSandbox)
  docker exec  a fresh pytest through `docker exec` into the warm container (`fix --no-worker`)
  worker       the warm test worker in that container, each candidate a fork of a zygote that has
               read pytest's configuration for its selection, forked one request ahead as a spare
               that copies the zygote's memory while it waits (the default)
  no prefault  the same, but the spare copies nothing ahead (`--no-prefault`)
  no zygote    the same worker, each candidate a fork of the worker itself (`--no-zygotes`)
  no preload   the same, but the zygote imports none of the tree's modules (`--no-preload`)
  docker run   a fresh container per run (gcd only, with --docker-run)
Usage:
  .venv/bin/python benchmarks/sandbox_overhead.py [--program gcd] [--runs 10] [--batch 200]
      [--host-python PY] [--docker-run] [--bugsinpy DIR] [--cases gcd,heavy,package,youtube-dl-utils]
      [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from repair_agent.bench.bugsinpy import load_bugsinpy
from repair_agent.sandbox import DockerSandbox, LocalSandbox
from repair_agent.sandbox.releases import base_tag

QUIXBUGS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "quixbugs"
BUGSINPY = Path(__file__).resolve().parents[2] / "bugsinpy"  # data/ and repos/youtube-dl
UTILS = "youtube_dl/utils.py"  # youtube-dl-1's buggy line (in _match_one), and the candidates' change of it
UTILS_LINE = "        '': lambda v: v is not None,\n"
UTILS_CHANGE = "        '': lambda v: (v is True) if isinstance(v, bool) else (v is not None),  # candidate {}\n"
CASES = ("gcd", "heavy", "package", "youtube-dl-utils")
GCD_LINES = ["gcd(a % b, b)", "gcd(b, a % b)", "gcd(a, a % b)", "gcd(b % a, a)", "gcd(b, a // b)",
             "gcd(a - b, b)", "a % b", "gcd(b, a - b)", "gcd(a % b, a)", "b", "gcd(b, b % a)", "a"]
HEAVY = {  # a test module that imports a heavy library, and the code it tests
    "requirements.txt": "numpy\n",
    "stats.py": "import numpy as np\n\n\ndef mean(xs):\n    return float(np.mean(np.asarray(xs)))\n",
    "tests/test_stats.py": "import numpy as np\n\nfrom stats import mean\n\n\n"
                           "def test_mean():\n    assert mean([1, 2, 3]) == 2.0\n\n\n"
                           "def test_array():\n    assert np.arange(3).sum() == 3\n",
}


def package(modules: int = 200, functions: int = 40) -> dict[str, str]:
    """A package whose import compiles 0.6 MB of source, and a test that imports it."""
    body = "".join(f"def f{i}(x):\n    y = x + {i}\n    return [y * k for k in range(3) if k != {i % 3}]\n\n\n"
                   for i in range(functions))
    files = {f"pkg/m{m:03d}.py": body for m in range(modules)}
    files["pkg/__init__.py"] = "".join(f"from . import m{m:03d}\n" for m in range(modules))
    files["tests/test_pkg.py"] = "import pkg\n\n\ndef test_import():\n    assert pkg.m000.f1(1) == [2, 4]\n"
    return files


def build(program: str, dest: Path) -> list[str]:
    """The buggy program's folder, as the benchmark's README describes (no fixed code)."""
    support = json.loads((QUIXBUGS / "support_files.json").read_text())
    rec = next(json.loads(line) for line in (QUIXBUGS / "quixbugs_python.jsonl").open()
               if json.loads(line)["id"] == program)
    files = {k: v for k, v in support.items() if not k.startswith("correct_python_programs")}
    files[rec["buggy_path"]] = rec["buggy_source"]
    files[rec["test_path"]] = rec["test_source"]
    if rec["json_testcases_path"]:
        files[rec["json_testcases_path"]] = rec["json_testcases"]
    write(dest, files)
    return [rec["test_path"]]


def write(dest: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)


def gcd_candidates(dest: Path, n: int) -> list[dict[str, str]]:
    path = "python_programs/gcd.py"
    source = (dest / path).read_text()
    return [{path: source.replace("gcd(a % b, b)", GCD_LINES[i % len(GCD_LINES)], 1) + f"\n# candidate {i}\n"}
            for i in range(n)]


WORKER_FLAGS = {"no prefault": ["--no-prefault"], "no zygote": ["--no-zygotes"]}  # the worker's other ways
SECONDS = {"host": "host_s", "docker exec": "exec_s", "worker": "worker_s", "no prefault": "worker_no_prefault_s",
           "no zygote": "worker_no_zygote_s", "no precompile": "worker_no_precompile_s",
           "no preload": "worker_no_preload_s", "worker cpu": "worker_cpu_s"}


def ways(work: Path, host_python: str, docker_run: bool, more: dict[str, list[str]] | None = None) -> dict:
    """The sandboxes, one per way; `more`: other worker ways, by name and worker flags."""
    quiet = lambda m: None  # noqa: E731
    boxes = {"host": LocalSandbox(work, python=host_python),
             "docker exec": DockerSandbox(work, log=quiet, use_worker=False),
             "worker": DockerSandbox(work, log=quiet)}
    for name, flags in {**WORKER_FLAGS, **(more or {})}.items():
        boxes[name] = DockerSandbox(work, log=quiet)
        boxes[name].worker_flags = flags
    if docker_run:
        boxes["docker run"] = DockerSandbox(work, reuse=False, log=quiet)
    return boxes


def in_seconds(meds: dict[str, float]) -> dict[str, float]:
    """The medians under their JSON names (`docker run` is shown only)."""
    return {SECONDS[name]: med for name, med in meds.items() if name in SECONDS}


def repo_case(work: Path, files: dict[str, str], host_python: str, runs: int, title, more=None) -> dict:
    """A small repository's whole test run, each way `runs` times: its medians shown (`title(boxes)`
    heads them) and returned in seconds."""
    work.mkdir()
    write(work, files)
    boxes = ways(work, host_python, False, more)
    try:
        meds = medians(boxes, [], runs)
        show(title(boxes), meds)
    finally:
        for box in boxes.values():
            box.close()
    return in_seconds(meds)


def medians(boxes: dict, args: list[str], runs: int) -> dict[str, float]:
    """Median seconds per way, and "worker cpu": the CPU time of the worker's child alone, which
    machine load inflates far less than wall time."""
    times: dict[str, list[float]] = {k: [] for k in boxes}
    cpu: list[float] = []
    for box in boxes.values():  # warm-up: env image, first container, the worker's imports
        box.run_tests(args)
    for _ in range(runs):
        for name, box in boxes.items():
            start = time.perf_counter()
            run = box.run_tests(args)
            times[name].append(time.perf_counter() - start)
            assert run["cases"], f"{name}: no test results: {run['output_tail'][-300:]}"
            assert run.get("runner", "exec") == ("exec" if name in ("host", "docker exec", "docker run")
                                                 else "worker"), run.get("fallback")
            if name == "worker":
                cpu.append(box.last["cpu_s"])
    return {**{k: statistics.median(v) for k, v in times.items()}, "worker cpu": statistics.median(cpu)}


def batch(boxes: dict, args: list[str], candidates: list[dict[str, str]]) -> dict[str, float]:
    spent = {k: 0.0 for k in boxes}
    for overlay in candidates:
        for name, box in boxes.items():
            start = time.perf_counter()
            run = box.run_tests(["-x", *args], overlay=overlay)
            spent[name] += time.perf_counter() - start
            assert run["cases"] or run["output_tail"], name
    return {k: len(candidates) / s for k, s in spent.items()}


def youtube_dl_case(tmp: Path, bugsinpy: Path, runs: int) -> dict:
    """youtube-dl-1's failing test, `runs` candidates (each a one-line change inside a function of
    utils.py) through each way, interleaved; the ways must agree on each candidate's outcomes."""
    (task,) = load_bugsinpy(bugsinpy / "data", bugsinpy / "repos", ids=["youtube-dl-1"])
    work = task.materialize(tmp / "youtube-dl-1")
    source = (work / UTILS).read_text()
    assert UTILS_LINE in source, f"{UTILS} of youtube-dl-1 lacks the buggy line"
    candidates = [{UTILS: source.replace(UTILS_LINE, UTILS_CHANGE.format(i), 1)} for i in range(runs + 1)]
    opened = dict(image=base_tag(task.meta["release"]), deps=task.meta["deps"],
                  install_project=task.meta["install_project"], log=lambda m: None)
    boxes = {"docker exec": DockerSandbox(work, use_worker=False, **opened), "worker": DockerSandbox(work, **opened),
             "no preload": DockerSandbox(work, **opened)}
    boxes["no preload"].worker_flags = ["--no-preload"]
    times: dict[str, list[float]] = {k: [] for k in boxes}
    cpu: list[float] = []
    try:
        for box in boxes.values():  # warm-up: env image, container, the worker, the zygote
            box.run_tests(task.failing_tests, overlay=candidates[-1])
        for overlay in candidates[:-1]:
            seen = {}
            for name, box in boxes.items():
                start = time.perf_counter()
                run = box.run_tests(task.failing_tests, overlay=overlay)
                times[name].append(time.perf_counter() - start)
                assert run["runner"] == ("exec" if name == "docker exec" else "worker"), run.get("fallback")
                seen[name] = {c["id"]: c["outcome"] for c in run["cases"]}
                if name == "worker":
                    cpu.append(box.last["cpu_s"])
            assert len({json.dumps(o, sort_keys=True) for o in seen.values()}) == 1 and seen["worker"], seen
    finally:
        for box in boxes.values():
            box.close()
    meds = {k: statistics.median(v) for k, v in times.items()}
    print(f"youtube-dl-1, {task.failing_tests[0]}, a one-line change in a function of {UTILS}, "
          f"{runs} candidates each way, medians (outcome {seen['worker']}):")
    for name, med in meds.items():
        print(f"  {name:12s} {med:7.3f} s   x{meds['docker exec'] / med:.1f} faster than exec")
    print(f"  (the worker's child used {statistics.median(cpu):.3f} s of CPU; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return {"task": task.task_id, "tests": task.failing_tests, "runs": runs, "outcomes": seen["worker"],
            **in_seconds({**meds, "worker cpu": statistics.median(cpu)})}


def show(title: str, meds: dict[str, float]) -> None:
    host = meds["host"]
    print(title)
    for name, med in meds.items():
        if name != "worker cpu":
            print(f"  {name:12s} {med:7.3f} s   x{med / host:.2f} of host   x{meds['docker exec'] / med:.1f} faster than exec")
    print(f"  (the worker's child used {meds['worker cpu']:.3f} s of CPU, with what it copied ahead as a spare; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


def code_commit() -> str:
    """The commit of the repair_agent package measured, "+dirty" where its tree has changes."""
    import repair_agent

    here = Path(repair_agent.__file__).parent
    head = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


def gcd_case(work: Path, args, host_python: str) -> dict:
    """QuixBugs' program (gcd): its test file each way, then the batch of candidates."""
    work.mkdir()
    test = build(args.program, work)
    boxes = ways(work, host_python, args.docker_run)
    try:
        gcd = medians(boxes, test, args.runs)
        show(f"QuixBugs {args.program}, {args.runs} runs each, medians:", gcd)
        result = in_seconds(gcd)
        boxes.pop("docker run", None)
        if args.batch and args.program == "gcd":
            cps = batch(boxes, test, gcd_candidates(work, args.batch))
            print(f"batch of {args.batch} gcd candidates (-x, overlay), candidates per second:")
            for name, rate in cps.items():
                print(f"  {name:12s} {rate:7.1f} /s")
            result.update(candidates_per_s=cps["worker"], batch={"size": args.batch, **cps})
    finally:
        for box in boxes.values():
            box.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--program", default="gcd")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=200, help="candidates in the batch case (0: skip it)")
    ap.add_argument("--host-python", default=None,
                    help="interpreter for the host run (default: this one); a venv with only pytest, "
                         "pytest-timeout and coverage matches what the sandbox image holds")
    ap.add_argument("--docker-run", action="store_true", help="also a fresh container per run (gcd)")
    ap.add_argument("--bugsinpy", type=Path, default=BUGSINPY,
                    help="a BugsInPy checkout (data/) with its clones (repos/youtube-dl), for youtube-dl-utils")
    ap.add_argument("--cases", default=",".join(CASES), help=f"which of {', '.join(CASES)} (comma-separated)")
    ap.add_argument("--json", type=Path, default=None, help="write the medians (seconds) to FILE")
    args = ap.parse_args()
    cases = set(args.cases.split(","))
    host_python = args.host_python or sys.executable
    result: dict = {"program": args.program, "runs": args.runs, "code": code_commit()}
    with tempfile.TemporaryDirectory() as tmp:
        if "gcd" in cases:
            result.update(gcd_case(Path(tmp) / "quixbugs", args, host_python))
        if "heavy" in cases:
            result["heavy"] = repo_case(
                Path(tmp) / "heavy", HEAVY, host_python, args.runs,
                lambda boxes: f"a test module importing numpy, {args.runs} runs each, medians "
                              f"(the worker preloaded {', '.join(boxes['worker']._worker.hello['preloaded'])}):")
        if "package" in cases:
            result["package"] = repo_case(
                Path(tmp) / "package", package(), host_python, args.runs,
                lambda boxes: f"a test importing a package of 200 modules, {args.runs} runs each, medians:",
                more={"no precompile": ["--no-precompile"]})
        if "youtube-dl-utils" in cases:
            result["youtube-dl-utils"] = youtube_dl_case(Path(tmp), args.bugsinpy, args.runs)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
