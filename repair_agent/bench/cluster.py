"""Benchmark tasks as Ray tasks, for a benchmark that outgrows one machine (`bench ... --ray`).

Each task is one Ray task that needs one unit of the custom resource "sandbox": a node offers as many
units as it can run sandboxes at once (`ray start ... --resources '{"sandbox": 2}'`), and has Docker and
the base image (`repair-agent sandbox build-base`) and this package installed. The task runs the very
function that a worker thread runs (solve.run_task) and returns its record; the driver writes it into
OUT/records.jsonl as it arrives, so resuming works as with threads.

The model: each task opens `--base-url` on its own node. One URL reachable from every node serves
the whole cluster; a loopback URL (http://127.0.0.1:PORT/v1) reaches each node's own server instead.

A node (or a worker process) lost mid-task: Ray runs the task again elsewhere (`max_retries`); an
actor on the driver's node counts the attempts, and the record keeps the count (`attempts`). An
attempt lost before it reached the counter (a fresh worker still importing the package) is not
counted. Ray's own attempt number is not public API.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Iterator

from ..config import Settings
from ..errors import BadInput, ModelError
from ..llm.factory import open_model
from ..llm.llamacpp import MissingExtra
from ..sandbox import clear_containers_under
from .correctness import score
from .solve import failed_result, run_task
from .tasks import Task

SANDBOX = "sandbox"  # the custom resource: one unit per sandbox a node can run at once
MAX_RETRIES = 3  # attempts after the first when a node or worker dies (not when the task raises)
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray keeps 127.0.0.1 as the node's address


def on_loopback(address: str) -> bool:
    """A Ray started here, or a cluster whose address is a loopback one (all its nodes on this machine)."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
    if address == "local":
        return True
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def import_ray(address: str):
    """Ray, imported so that a loopback run stays on loopback. Ray swaps a loopback address for this
    machine's outward one (so that other machines can reach it) unless multi-node clusters are off,
    a setting it reads once, at import: on a loopback address there are no other machines to reach."""
    if on_loopback(address):
        os.environ.setdefault(LOOPBACK_ONLY, "0")
    try:
        import ray
    except ImportError:
        raise MissingExtra("--ray needs Ray: pip install 'repair-agent[cluster]'") from None
    return ray


def connect(address: str, slots: int, log: Callable[[str], None]):
    """Join the cluster at `address` ("auto": RAY_ADDRESS, or the one started on this machine), or
    with "local" start a Ray for this run with `slots` sandboxes, on loopback, without a dashboard."""
    ray = import_ray(address)
    previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    if address == "local":
        ray.init(address="local", num_cpus=slots, resources={SANDBOX: slots}, include_dashboard=False,
                 _node_ip_address="127.0.0.1", log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    if previous is not None:  # ray.init puts its own SIGTERM handler in; ours cleans up first (cli.on_signals)
        signal.signal(signal.SIGTERM, previous)
    slots_found = ray.cluster_resources().get(SANDBOX, 0)
    if not slots_found:
        ray.shutdown()
        raise BadInput(f'no node of the Ray cluster at {address} offers the "{SANDBOX}" resource: start each node '
                       f"that has Docker and the base image with --resources '{{\"{SANDBOX}\": N}}'")
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(SANDBOX)]
    log(f"Ray: {len(nodes)} node(s) with {slots_found:g} sandbox slot(s)")
    return ray


def node_name() -> str:
    """The node this runs on: its address, and its id's start (nodes can share an address)."""
    import ray

    return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"


def run_on_ray(todo: list[Task], settings: Settings, out: Path, mode: str, code: str, data: Path | None,
               address: str, slots: int, needs_model: bool, log: Callable[[str], None],
               max_retries: int = MAX_RETRIES) -> Iterator[dict]:
    """Yield each task's record as it ends, on whichever node ran it. A local Ray started here stops
    at the end; from a cluster, the driver only disconnects."""
    ray = connect(address, slots, log)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    pending: dict = {}
    submitted: dict = {}  # ref -> when it was handed to Ray (time.time())
    try:
        here = ray.get_runtime_context().get_node_id()
        # the attempt counter lives with the driver: if that node goes, the run goes with it anyway
        attempts = ray.remote(Attempts).options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            here, soft=False)).remote()
        ray.get(attempts.ready.remote())  # up before the first task asks it: a task killed early still counts
        # num_cpus=0: the "sandbox" slots alone say how many tasks a node runs at once
        remote = ray.remote(run_remote).options(num_cpus=0, resources={SANDBOX: 1}, max_retries=max_retries)
        for task in todo:
            ref = remote.remote(task, settings, str(out), mode, code, data, needs_model, attempts)
            pending[ref] = task
            submitted[ref] = time.time()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ready[0])
            yield receive(ray, ready[0], task, mode, code, max_retries, attempts, submitted.pop(ready[0]))
    finally:
        for ref in pending:  # a signal or a fatal error: the tasks in flight stop and leave no record
            ray.cancel(ref, force=True)
        ray.shutdown()


def receive(ray, ref, task: Task, mode: str, code: str, max_retries: int, attempts, submitted: float) -> dict:
    """The record of a finished Ray task; a task lost on every attempt is recorded as an error (a rerun
    into the same OUT tries it again), with the time from its first start (from its submission where
    no attempt reached the counter)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # the task raised: only a ModelError escapes run_task
        if isinstance(exc.cause, ModelError):
            raise exc.cause from None  # the model is gone: stop as the threads do
        error = f"{type(exc.cause).__name__}: {exc.cause}"
    except ray.exceptions.RayError as exc:  # its node or worker died on every attempt
        error = f"lost on the Ray cluster after {max_retries + 1} attempt(s): {type(exc).__name__}"
    try:
        began = ray.get(attempts.began.remote(task.task_id)) or submitted
    except ray.exceptions.RayError:  # the counter went with the driver's node
        began = submitted
    result = failed_result("error", error, seconds=time.time() - began)
    return {**result, "task_id": task.task_id, "dataset": task.dataset, "model": "", "mode": mode,
            "verified": False, **score(task, result, Path("unused")), "code": code}


class Attempts:
    """How many times each task has started; a retried task's record says so (a Ray actor)."""

    def __init__(self):
        self.started: dict[str, int] = {}
        self.first: dict[str, float] = {}  # when each task's first attempt began (this node's clock)

    def ready(self) -> bool:
        return True

    def begin(self, task_id: str) -> int:
        self.started[task_id] = self.started.get(task_id, 0) + 1
        self.first.setdefault(task_id, time.time())
        return self.started[task_id]

    def began(self, task_id: str) -> float | None:
        return self.first.get(task_id)


def run_remote(task: Task, settings: Settings, out: str, mode: str, code: str, data: Path | None,
               needs_model: bool, attempts) -> dict:
    """One task on a cluster node (a Ray task): solve.run_task with the model opened here."""
    import ray

    begun = time.time()
    attempt = ray.get(attempts.begin.remote(task.task_id))
    # an earlier attempt killed on this machine may have left its containers
    clear_containers_under(Path(out) / "work" / task.task_id.replace("/", "_"), stopping=False)
    with open_model(settings, log=lambda m: None) if needs_model else nullcontext(None) as model:
        record = run_task(task, settings, Path(out), mode, model, code, data)
    return {**record, "node": node_name(), "attempts": attempt, "task_wall_s": round(time.time() - begun, 3),
            "task_started": begun, "task_ended": time.time()}
