"""`repair-agent fix`: set up a run (scratch copy, sandbox, model, checkpoints), run the graph
(graph.py: every step, the judge included), and shape its final state into the result that
`--json`, benchmarks and the CI bot share."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from langgraph.checkpoint.sqlite import SqliteSaver

from . import patching
from .config import Settings
from .deciding_test import deciding_test
from .errors import BadInput, RepairAgentError
from .graph import Deps, build_graph
from .llm.factory import open_model
from .llm.profiles import profile_for
from .runs import RunRecorder, default_runs_root, new_run_id
from .outcomes import counts, promise
from .sandbox import DockerSandbox, check_kind, open_sandbox, shell_args
from .sandbox.releases import check_python, local_python, sandbox_image
from .state import RepairState


def run_fix(repo: Path, settings: Settings, runs_root: Path | None = None, resume: str | None = None,
            log: Callable[[str], None] = print, model=None, diagnose_only: bool = False, progress=None) -> dict:
    """Run the repair loop on `repo` and return the result dict. The user's tree is not touched.
    `progress` (progress.Progress) is told the node, the model's tokens and the candidates as they go."""
    repo = Path(repo).resolve()
    patching.open_repo(repo)  # BadInput for a missing path or a non-git directory
    settings.strategy_list()  # BadInput for an unknown strategy, before anything is written
    check_kind(settings.sandbox)
    check_python(settings.python, settings.image)
    check_test_paths(repo, settings.test)
    runs_root = Path(runs_root or default_runs_root())
    check_space(runs_root)
    run_id = resume or new_run_id()
    run_dir = runs_root / run_id
    if resume:
        if not (run_dir / "run.json").exists():
            raise BadInput(f"no run {resume!r} under {runs_root}")
        saved = json.loads((run_dir / "run.json").read_text())
        # what was asked for now (e.g. a restarted server's new --base-url) wins over what was saved
        source = {**saved.get("settings_source", {}), **settings.source}
        settings = Settings.model_validate({**saved["settings"], **settings.model_dump(exclude_unset=True),
                                            "api_key": settings.api_key})
        settings._source = source
    else:
        run_dir.mkdir(parents=True, exist_ok=False)
        (run_dir / "run.json").write_text(json.dumps(
            {"run_id": run_id, "repo": str(repo), "settings": settings.model_dump(exclude={"api_key"}),
             "settings_source": settings.source}, indent=2))
    scratch = run_dir / "scratch"
    if not (scratch / ".git").exists():
        shutil.rmtree(scratch, ignore_errors=True)
        patching.make_scratch(repo, scratch)
    patching.reset(scratch)
    with ExitStack() as stack:
        # a reader gone (`| head`): the CLI exits quietly with no --resume hint, so the tree goes now
        stack.push(lambda et, exc, tb: shutil.rmtree(scratch, ignore_errors=True)
                   if isinstance(exc, BrokenPipeError) else None)
        stack.push(lambda et, exc, tb: setattr(exc, "run_id", run_id) if isinstance(exc, KeyboardInterrupt) else None)
        log(f"run {run_id} ({run_dir})")
        recorder = RunRecorder(run_dir, run_id)
        recorder.write("resume" if resume else "start", repo=str(repo))
        started = time.time()
        image, python, python_reason = sandbox_image(scratch, settings.python, settings.image)
        sandbox = open_sandbox(settings.sandbox, scratch, image=image, log=log,
                               use_worker=settings.use_worker, deps=settings.deps, build=settings.build_image,
                               install_project=settings.install_project)
        stack.callback(sandbox.close)
        kind = "docker" if isinstance(sandbox, DockerSandbox) else "local"
        if kind == "local":
            python, python_reason = local_python()
            if settings.python and settings.python.strip() != python:
                log(f"warning: --python {settings.python} is for the Docker sandbox; the local one runs {python}")
        log(f"python {python}: {python_reason}")  # which Python ran, and why: also in the record and result
        recorder.write("sandbox", kind=kind, image=image if kind == "docker" else None, python=python,
                       python_reason=python_reason)
        if model is None and (settings.needs_model() or diagnose_only):
            model = stack.enter_context(open_model(settings, log=log))  # `--strategies mutate`: none
        conn = sqlite3.connect(run_dir / "checkpoints.sqlite", check_same_thread=False)
        stack.callback(conn.close)
        profile = profile_for(getattr(model, "name", ""), settings.profile)
        if hasattr(model, "endpoint"):
            model.endpoint = profile.endpoint  # chat, or raw completions for SemCoder
        deps = Deps(settings=settings, sandbox=sandbox, model=model, workdir=scratch, recorder=recorder, log=log,
                    profile=profile,
                    diagnose_only=diagnose_only)
        if progress is not None:
            deps = progress.attach(deps)
        graph = build_graph(deps, checkpointer=SqliteSaver(conn), diagnose_only=diagnose_only)
        config = {"configurable": {"thread_id": run_id}, "recursion_limit": 12 + 4 * settings.rounds}
        start: RepairState | None = None if resume else RepairState(
            run_id=run_id, test_args=shell_args(settings.test), round=0, candidates=[], best=None,
            tokens={"prompt": 0, "completion": 0}, started_at=started, feedback="")
        final = graph.invoke(start, config)
    result = shape_result(final, model_name=getattr(model, "name", ""), duration=time.time() - started)
    # what actually ran (auto picks one) and who chose each setting: a repository cannot have loosened it unseen
    result.update(sandbox=kind, python=python, python_reason=python_reason, settings_source=settings.source)
    if diagnose_only:
        result = diagnosis(final, result)
    elif test := deciding_test(result, repo):  # the patches disagree: the input that decides, as a test
        written = run_dir / Path(test["path"]).name
        written.write_text(test["text"], encoding="utf-8")
        result["deciding_test"] = {"file": str(written), "path": test["path"]}
    (run_dir / "result.json").write_text(json.dumps(result, indent=2))
    recorder.write("result", result=result)
    shutil.rmtree(scratch, ignore_errors=True)  # the run ended; its record stays, its tree goes
    return result


NO_VALUE = ("-x", "-q", "-v", "-s", "-l", "--lf", "--ff", "--sw", "--exitfirst", "--quiet", "--verbose")


def check_test_paths(repo: Path, test: str) -> None:
    """A test path the repository lacks is bad input: pytest itself would only say that it
    collected no tests. Only sure paths are checked (a `/` or `.py`, no `=`), and none that may be
    the value of the option before it (`--ignore gone/`, `-o cache_dir=/x`)."""
    args = shell_args(test)
    for prev, arg in zip(["", *args], args):
        path = arg.split("::")[0]
        a_value = prev.startswith("-") and "=" not in prev and prev not in NO_VALUE
        if (not arg.startswith("-") and not a_value and "=" not in path and ("/" in path or path.endswith(".py"))
                and not (repo / path).exists()):
            raise BadInput(f"no such file or directory in the repository: {path} (from the test arguments)")


MIN_FREE = 8 << 20  # bytes a run directory needs to start: records, checkpoints, the scratch copy


def check_space(runs_root: Path) -> None:
    """Refuse to start (exit 3, one line) where the runs root has no room, before writing anything."""
    probe = runs_root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < MIN_FREE:
        raise RepairAgentError(f"only {free / 2**20:.1f} MiB free for the run directory under {runs_root} "
                               f"(need {MIN_FREE >> 20} MiB); free some space, or pass --run-dir DIR or set "
                               "REPAIR_AGENT_HOME")


def shape_result(state: RepairState, model_name: str, duration: float) -> dict:
    best = state.get("best")
    rounds: dict[int, list] = {}
    for c in state.get("candidates", []):
        tests = c.get("tests") or {}
        rounds.setdefault(c["round"], []).append({
            "index": c["index"], "status": c["status"], "reason": c["reason"], "patch": c["patch"],
            "finish_reason": c["finish_reason"], "faithfulness": c.get("faithfulness"),
            "tests": {k: counts(v) for k, v in tests.items() if v}})
    return {
        "status": state.get("status") or ("fixed" if best else "not_fixed"),
        "patch": best["patch"] if best else "",
        "root_cause": state.get("root_cause", ""),
        "rounds": [{"round": r, "candidates": cs} for r, cs in sorted(rounds.items())],
        "fixed_round": best["round"] if best else None,
        "tests_before": counts(state.get("tests_before")),
        "baseline": state.get("baseline") or [],  # failing before, not asked about: not the fix's concern
        "test_args": state.get("test_args") or [],  # the suite that ran (reproduce narrows one that hangs)
        "tests_after": counts((best.get("tests") or {}).get("suite")) if best else counts(state.get("tests_before")),
        "tokens": state.get("tokens") or {"prompt": 0, "completion": 0},
        "duration_s": round(duration, 2),
        "run_id": state.get("run_id", ""),
        "model": model_name,
        "stop_reason": state.get("stop_reason", ""),
        # the model's loop: the mean over its candidates; a search fix: its explanation's check
        "faithfulness": mean_faithfulness(state.get("candidates", []) or ([best] if best else [])),
        "evidence": (best or {}).get("evidence"),  # what the traces showed the fix changed (evidence.py)
        "explanation": {**best["explanation"], "check": best.get("faithfulness")} if best and best.get(
            "explanation") else None,
        "source": (best.get("source") or "refine") if best else None,  # which search source found the fix
        "search": state.get("search") or {},
        "candidates_tried": (state.get("search") or {}).get("tried", 0) + len(state.get("candidates", [])),
        "best_attempt": None if best else best_attempt(state),
        **confidence(best, state.get("search") or {}),
    }


def best_attempt(state: RepairState) -> dict | None:
    """When nothing fixed: the candidate, from the search or the model, that came closest (see
    outcomes.promise), with its diff and test counts; None when none passed a failing test."""
    found = [state["attempt"]] if state.get("attempt") else []
    for c in state.get("candidates", []):
        tests = {k: counts(v) for k, v in (c.get("tests") or {}).items() if v}
        if c["status"] != "fixed" and tests.get("failing", {}).get("passed"):
            found.append({"source": "refine", "round": c["round"], "index": c["index"], "status": c["status"],
                          "reason": c["reason"], "patch": c["patch"], "tests": tests})
    if not found:
        return None
    return {**max(found, key=lambda a: promise(a["tests"], a["patch"])), "failing_total": len(state["failing"])}


def confidence(best, search: dict) -> dict:
    """How sure the overfitting guard (judge/guard.py) is of the fix: `confidence` high | low |
    unknown (None without a fix), why, and the first input on which the plausible patches disagree."""
    if not best:
        return {"confidence": None, "confidence_reason": "", "disagreement": None}
    if not search.get("confidence"):
        return {"confidence": "unknown", "confidence_reason": "the overfitting guard did not run", "disagreement": None}
    return {"confidence": search["confidence"], "confidence_reason": search.get("confidence_reason", ""),
            "disagreement": search.get("disagreement")}


def diagnosis(state: RepairState, result: dict) -> dict:
    """What `explain` reports: ranked locations, the real trace, the model's root cause, and how
    faithful its execution simulation was to that trace."""
    first = (state.get("candidates") or [{}])[0]
    faith = first.get("faithfulness") or {}
    return {"status": result["status"], "run_id": result["run_id"], "model": result["model"],
            "tests_before": result["tests_before"], "locations": state.get("locations", []),
            "trace": list(state.get("trace", [])),  # whole steps: the function, the return value, the outcome
            "root_cause": result["root_cause"], "response": first.get("response", ""),
            "faithfulness": {k: faith.get(k) for k in ("claims", "checked", "contradicted", "score",
                                                        "contradictions")},
            "tokens": result["tokens"], "duration_s": result["duration_s"], "sandbox": result["sandbox"],
            "python": result["python"], "python_reason": result["python_reason"],
            "settings_source": result["settings_source"]}


def mean_faithfulness(candidates: list) -> float | None:
    scores = [f["score"] for c in candidates if (f := c.get("faithfulness")) and f.get("score") is not None]
    return round(sum(scores) / len(scores), 4) if scores else None
