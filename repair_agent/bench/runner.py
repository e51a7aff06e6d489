"""Run a benchmark through the very same graph as `repair-agent fix`, one task per sandbox (solve.py).

Records go to OUT/records.jsonl as each task ends, so a rerun into the same OUT skips finished
tasks. Tasks run on daemon threads: a signal (or a fatal model error) stops the run at once, the
model server it started goes, and so do its containers; the tasks in flight leave no record.
With `ray=`, the tasks run on a Ray cluster instead (cluster.py), through the same run_task.
`rescore` checks the plausible fixes of an earlier run for correctness again.
"""

from __future__ import annotations

import json
import queue
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import git

from .. import __version__
from ..config import Settings
from ..errors import BadInput, ModelError
from ..llm.factory import open_model
from ..sandbox import clear_containers_under
from .cluster import run_on_ray
from .correctness import score
from .datasets import load_dataset
from .reproducibility import task_settings
from .solve import failed_result, failure_status, run_task
from .summary import RECORDS_FILE, SUMMARY_FILE, load_records, write_summary
from .tasks import Task


def code_version() -> str:
    """The commit of this checkout (`+dirty` with uncommitted changes), else the package version."""
    try:
        repo = git.Repo(Path(__file__).resolve().parents[2])
        return repo.head.commit.hexsha[:12] + ("+dirty" if repo.is_dirty() else "")
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return __version__


def single_shot(settings: Settings) -> Settings:
    """The plainest use of the same model: one greedy request, no loop, no trace, no SBFL."""
    return settings.model_copy(update={"rounds": 1, "samples": 1, "use_trace": False, "use_sbfl": False,
                                       "strategies": "refine"})


def append_record(out: Path, record: dict) -> None:
    with open(out / RECORDS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def log_task(i: int, n: int, rec: dict, log: Callable[[str], None]) -> None:
    """The progress line of a finished task (threads and Ray alike)."""
    verdict = {True: "correct", False: "NOT correct"}.get(rec.get("correct"), "correctness unknown")
    mark = f"fixed, {verdict}" if rec["verified"] else rec["status"]
    mark += f": {rec['error']}" if rec["status"] in ("env_error", "error", "not_reproduced") else ""
    where = f" on {rec['node']}" + (f", attempt {rec['attempts']}" if rec.get("attempts", 1) > 1 else "") \
        if rec.get("node") else ""
    log(f"[{i}/{n}] {rec['task_id']}: {mark} ({rec['duration_s']}s{where})")


def run_benchmark(tasks: list[Task], settings: Settings, out: Path, mode: str = "agent", workers: int = 1,
                  log: Callable[[str], None] = print, model=None, data: Path | None = None,
                  ray: str | None = None) -> dict:
    """`data`: the dataset file, where HumanEvalFix's reference solutions are read from. `ray`: run the
    tasks on a Ray cluster instead of threads: its address, "auto" (RAY_ADDRESS) or "local" (a Ray
    started for this run, with `workers` sandbox slots); see cluster.py."""
    out = Path(out).resolve()  # the Ray tasks get this path: their working directory is not ours
    out.mkdir(parents=True, exist_ok=True)
    # finished = any outcome but an error: a rerun retries the tasks that errored (or lacked a dependency)
    done = {r["task_id"] for r in load_records(out) if r["status"] not in ("error", "env_error")} \
        if (out / RECORDS_FILE).exists() else set()
    todo = [t for t in tasks if t.task_id not in done]
    if mode == "single-shot":
        settings = single_shot(settings)
    where = f"on Ray ({ray})" if ray is not None else f"{workers} worker(s)"
    log(f"{len(tasks)} tasks, {len(done)} already done, {len(todo)} to run, {where}")
    lock = threading.Lock()
    stop = threading.Event()  # set when the run ends early: no more tasks start, no more records
    code = code_version()
    clear_containers_under(out, stopping=False)  # what a killed earlier run into this OUT left behind

    def one(task: Task, model) -> dict:
        record = isolated(task, lambda: run_task(task, settings, out, mode, model, code, data, log=log),
                          getattr(model, "name", ""), mode, code)
        with lock:
            if not stop.is_set():  # a task cut short by a stop is not recorded: the rerun does it again
                append_record(out, record)
        return record

    started = time.time()
    name = ""  # the model's, once it is open

    def summary(**extra) -> dict:
        return write_summary(out, settings={"rounds": settings.rounds, "samples": settings.samples,
                                            "trace": settings.use_trace, "sbfl": settings.use_sbfl,
                                            "max_tokens": settings.max_tokens, "workers": workers,
                                            "strategies": settings.strategies,
                                            "max_candidates": settings.max_candidates,
                                            **({"model_server": server} if server else {}),
                                            **({"ray": ray} if ray is not None else {})},
                             dataset=tasks[0].dataset if tasks else "", model=name, mode=mode,
                             wall_clock_s=None if done else round(time.time() - started, 1),  # a resumed run's
                             **extra)  # clock would miss the tasks that earlier runs did

    needs_model = model is None and (settings.needs_model() or mode == "single-shot")
    embedded = needs_model and not settings.base_url and settings.backend != "transformers"
    server = f"one embedded llama.cpp server; the requests of {workers} worker(s) queue on it" if embedded else None
    if ray is not None and model is not None:
        raise BadInput("with ray=, each task opens the model on its node from the settings: pass no model object")
    if ray is not None and embedded:
        raise BadInput("--ray needs the model as --base-url URL: one server for the whole cluster, or a loopback "
                       "URL that each node's own server answers (`repair-agent serve` on every node)")
    try:
        if ray is not None:  # each task opens the model on its own node (cluster.py)
            results = run_on_ray(todo, settings, out, mode, code, data, address=ray, slots=workers,
                                 needs_model=needs_model, log=log)
            for i, rec in enumerate(results, 1):
                append_record(out, rec)  # as each task ends, from whichever node
                log_task(i, len(todo), rec, log)
                name = name or rec.get("model") or ""
        else:
            with open_model(settings, log=log) if needs_model else nullcontext(model) as shared_model:
                name = getattr(shared_model, "name", "")
                if server:
                    log(server)
                for i, rec in enumerate(run_threads(todo, lambda t: one(t, shared_model), workers, stop), 1):
                    log_task(i, len(todo), rec, log)
    except BaseException:  # a signal (KeyboardInterrupt) or a fatal error; the model server is stopped by now
        stop.set()
        clear_containers_under(out, stopping=True)  # and no new one: the threads in flight may still try
        if (out / RECORDS_FILE).exists():  # the finished tasks' summary: an interrupted run loses nothing
            try:
                summary(interrupted=True)
            except Exception as exc:  # the exception that stopped the run is the one to report
                log(f"no summary of the finished tasks: {exc}")
        raise
    clear_containers_under(out, stopping=False)  # on this machine, the containers of a Ray attempt that was killed
    return summary()


def isolated(task: Task, run: Callable[[], dict], model: str, mode: str, code: str) -> dict:
    """`run()`'s record of `task`; where it raised (a task its dataset could not describe, a step
    before run_task's own guard), that task's error record instead: the others go on. A model that
    failed still ends the run (every later task would fail the same way). A record that ended
    before the agent ran (its 0.0 s) gets the task's wall time."""
    started = time.monotonic()
    try:
        record = run()
        return {**record, "duration_s": record.get("duration_s") or round(time.monotonic() - started, 1)}
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - one task's failure is its record, not the run's end
        return {**failed_result(*failure_status(exc), seconds=time.monotonic() - started),
                "task_id": task.task_id, "dataset": task.dataset, "model": model, "mode": mode, "verified": False,
                **score(task, {"status": "error"}, Path()), "code": code}


def run_threads(todo: list[Task], work: Callable[[Task], dict], workers: int, stop: threading.Event):
    """Yield `work(task)` for each task as it ends, from `workers` daemon threads. A worker's exception
    is raised here. Daemon threads, not a ThreadPoolExecutor: the interpreter waits for the pool's
    threads at exit, so a signal could not end the run before the tasks in flight had finished."""
    tasks: queue.Queue = queue.Queue()
    results: queue.Queue = queue.Queue()
    for t in todo:
        tasks.put(t)

    def loop() -> None:
        while not stop.is_set():
            try:
                task = tasks.get_nowait()
            except queue.Empty:
                return
            try:
                results.put(work(task))
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                results.put(exc)

    for _ in range(max(1, min(workers, len(todo)))):
        threading.Thread(target=loop, daemon=True, name="bench-worker").start()
    for _ in todo:
        got = results.get()  # a signal interrupts this wait
        if isinstance(got, BaseException):
            raise got
        yield got


def rescore(out: Path, data: Path | None = None, sandbox: str = "docker", image: str | None = None,
            log: Callable[[str], None] = print, repos: Path | None = None) -> dict:
    """Check the plausible fixes of an earlier run for correctness, from its records (task id and
    patch), and rewrite records.jsonl, the summary, the report and the plot. `repos`: BugsInPy's
    clones (default DATA/repos)."""
    lines = [json.loads(x) for x in (out / RECORDS_FILE).read_text(encoding="utf-8").splitlines() if x.strip()]
    last = {str(r.get("task_id")): i for i, r in enumerate(lines)}  # a resumed run: the last one counts
    tasks = {}
    for dataset in sorted({lines[i].get("dataset") or "" for i in last.values()}):
        ids = [t for t, i in last.items() if lines[i].get("dataset") == dataset]
        extra = {"repos": repos} if dataset == "bugsinpy" else {}
        tasks.update({t.task_id: t for t in load_dataset(dataset, data, ids=ids, **extra)})
    base = Settings(sandbox=sandbox, image=image)  # each task's own environment comes from it
    with tempfile.TemporaryDirectory(prefix="repair-agent-rescore-") as tmp:
        for task_id, i in last.items():
            task = tasks[task_id]
            lines[i].update(score(task, lines[i], Path(tmp) / "correct", sandbox=sandbox, image=image, data=data,
                                  settings=task_settings(task, base)))
            if lines[i]["plausible"]:
                log(f"{out.name} {task_id}: correct={lines[i]['correct']} ({lines[i]['correct_reason']})")
    tmp_file = out / (RECORDS_FILE + ".tmp")
    tmp_file.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    tmp_file.replace(out / RECORDS_FILE)
    old = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8")) if (out / SUMMARY_FILE).is_file() else {}
    labels = {k: old[k] for k in ("dataset", "model", "mode", "wall_clock_s", "interrupted") if old.get(k) is not None}
    return write_summary(out, settings=old.get("settings"), **labels)
