"""`repair-agent bench ... --ray`: benchmark tasks on a real Ray cluster of two nodes, on loopback.

The cluster is Ray's own (ray.cluster_utils.Cluster: a head node and a second node, each its own raylet
on 127.0.0.1 with one "sandbox" slot); the benchmark runs through the real command line and the real
Docker sandbox. The model is a SCRIPTED server on loopback (tests/scripted_server.py): it answers every
request with text that holds no code, so each task's status comes from the mutation search alone and is
the same whichever node runs it, in whatever order.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import pytest
from scripted_server import ScriptedServer

from repair_agent.bench.runner import code_version
from repair_agent.cli import bare_ray_means_local

# Ray swaps 127.0.0.1 for this machine's outward address (for other machines to reach) unless this is "0",
# read when ray is imported: here (the cluster's processes inherit it), and in the CLI (cluster.import_ray)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
HAVE_RAY = bool(find_spec("ray") and find_spec("psutil"))  # the cluster extra
requires_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray not installed (pip install -e '.[cluster]')")
if HAVE_RAY:  # without it, the tests that need it are skipped; the others run
    import psutil
    import ray
    from ray.cluster_utils import Cluster

ROOT = Path(__file__).resolve().parents[1]

# six small repositories: four bugs that a one-line mutation fixes, two that it cannot (the scripted
# model has no fix either), so a run ends 4 fixed, 2 not fixed
TASKS = {
    "add": ("def add(a, b):\n    return a - b\n", "from m import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"),
    "adult": ("def is_adult(age):\n    return age > 18\n",
              "from m import is_adult\n\ndef test_adult():\n    assert is_adult(18) and not is_adult(17)\n"),
    "greet": ('def greet(name):\n    return "Hi " + name\n',
              'from m import greet\n\ndef test_greet():\n    assert greet("Ann") == "Hello, Ann!"\n'),
    "biggest": ("def biggest(xs):\n    return min(xs)\n",
                "from m import biggest\n\ndef test_biggest():\n    assert biggest([3, 9, 2]) == 9\n"),
    "words": ('def count_words(s):\n    return len(s.split(","))\n',
              'from m import count_words\n\ndef test_words():\n    assert count_words("a b c") == 3\n'),
    "halve": ("def halve(n):\n    return n * 2\n", "from m import halve\n\ndef test_halve():\n    assert halve(8) == 4\n"),
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray-tasks")
    lines = []
    for name, (code, test) in TASKS.items():
        (root / name).mkdir()
        (root / name / "m.py").write_text(code)
        (root / name / "test_m.py").write_text(test)
        lines.append(json.dumps({"task_id": name, "repo": name, "test_command": "test_m.py"}))
    (root / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    return root / "tasks.jsonl"


@pytest.fixture(scope="module")
def scripted():
    with ScriptedServer([]) as srv:  # no replies queued: every answer is "(no more scripted replies)"
        yield srv


@pytest.fixture(autouse=True)
def this_checkout_everywhere(monkeypatch):
    """The cluster's workers and the CLI import repair_agent from this checkout (a shared venv may hold
    another one); they inherit the environment of the process that starts them."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def bench(dataset: Path, out: Path, url: str, *flags: str) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "from repair_agent.cli import app; app()", "bench", "repos", "--data",
           str(dataset), "--out", str(out), "--base-url", url, "--strategies", "mutate,refine", "--rounds", "1",
           "--samples", "1", "--sandbox", "docker", *flags]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 420) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out + err


def records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def reference(dataset, scripted, tmp_path_factory) -> dict:
    """The statuses of a `--workers 1` run (threads, no Ray) of the same six tasks."""
    out = tmp_path_factory.mktemp("workers1")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", "from repair_agent.cli import app; app()", "bench", "repos",
                           "--data", str(dataset), "--out", str(out), "--base-url", scripted.base_url, "--strategies",
                           "mutate,refine", "--rounds", "1", "--samples", "1", "--sandbox", "docker", "--workers", "1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    statuses = {r["task_id"]: r["status"] for r in records(out)}
    assert sorted(statuses.values()) == ["fixed"] * 4 + ["not_fixed"] * 2, statuses
    return statuses


@pytest.fixture
def cluster():
    """Two Ray nodes on 127.0.0.1, one sandbox slot each, no dashboard; all their processes end after."""
    node = {"num_cpus": 1, "resources": {"sandbox": 1}, "node_ip_address": "127.0.0.1"}
    c = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        c.second = c.add_node(**node)
        yield c
    finally:
        c.shutdown()
        left = [p for p in psutil.Process().children(recursive=True) if is_ray(p)]
        assert not left, f"Ray processes left after the shutdown: {left}"


def is_ray(p) -> bool:
    try:
        return any(k in " ".join(p.cmdline()[:2]) for k in ("raylet", "gcs_server", "ray::", "ray/_private"))
    except psutil.Error:
        return False


def ray_pids() -> set[int]:
    """Every Ray process on this machine (a local Ray's outlive the CLI that started them if not stopped)."""
    return {p.pid for p in psutil.process_iter() if is_ray(p)}


def stopped(before: set[int]) -> bool:
    end = time.time() + 15
    while ray_pids() - before and time.time() < end:
        time.sleep(0.5)
    return not ray_pids() - before


def non_loopback_listeners() -> list[str]:
    """Listening sockets of this test's processes (the cluster, its workers, the CLI) that are bound to
    anything but loopback."""
    mine = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    bad = []
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN and c.pid in mine:
            ip = ipaddress.ip_address(c.laddr.ip)
            ip = ip.ipv4_mapped or ip if ip.version == 6 else ip
            if not ip.is_loopback:
                bad.append(f"{psutil.Process(c.pid).name()} (pid {c.pid}) on {c.laddr.ip}:{c.laddr.port}")
    return bad


def running_tasks(node) -> list:
    """The worker processes of this node's raylet that run a benchmark task right now."""
    raylet = node.all_processes[ray._private.ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    try:
        kids = psutil.Process(raylet).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for k in kids:
        try:
            if " ".join(k.cmdline()[:1]).startswith("ray::run_remote"):
                found.append(k)
        except psutil.Error:
            pass
    return found


def wait_for(cond, timeout: float, what: str) -> None:
    end = time.time() + timeout
    while not cond():
        assert time.time() < end, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
@requires_ray
def test_six_tasks_on_two_nodes_match_a_one_worker_run(dataset, scripted, reference, cluster, tmp_path, docker_ready):
    out = tmp_path / "ray"
    proc = bench(dataset, out, scripted.base_url, "--ray", cluster.address)
    wait_for(lambda: running_tasks(cluster.second) or proc.poll() is not None, 300, "a task on the second node")
    listening = non_loopback_listeners()  # the cluster and its workers are all up now
    text = finish(proc)
    assert listening == []
    recs = records(out)
    assert sorted(r["task_id"] for r in recs) == sorted(TASKS)  # each task once
    assert {r["task_id"]: r["status"] for r in recs} == reference
    nodes = {r["node"] for r in recs}
    assert len(nodes) == 2, nodes  # both nodes ran tasks
    assert all(r["attempts"] == 1 for r in recs) and all(r["code"] == code_version() for r in recs)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["nodes"]) == nodes and sum(n["tasks"] for n in summary["nodes"].values()) == 6
    assert summary["settings"]["ray"] == cluster.address
    assert "[6/6]" in text and "nodes used (Ray)" in text and "wall time per node" in text

    # a rerun into the same OUT skips the finished tasks: one record removed, one task runs again, here on
    # a local Ray that the bare `--ray` starts for the run (and stops)
    kept = [json.dumps(r) for r in recs if r["task_id"] != "greet"]
    (out / "records.jsonl").write_text("\n".join(kept) + "\n")
    before, seen = ray_pids(), []
    proc = bench(dataset, out, scripted.base_url, "--ray")  # bare, last: `--ray local`
    while proc.poll() is None:  # the local Ray's processes are the CLI's children: nothing beyond loopback
        seen += non_loopback_listeners()
        time.sleep(0.5)
    text = finish(proc)
    assert seen == [] and stopped(before), (seen, "or the local Ray that the run started is still there")
    assert "5 already done, 1 to run" in text and "[1/1] greet: not_fixed" in text
    again = records(out)
    assert len(again) == 6 and again[-1]["task_id"] == "greet" and again[-1]["node"] not in nodes


@pytest.mark.slow
@requires_ray
def test_a_node_lost_mid_run_its_task_runs_again_and_every_task_is_recorded_once(
        dataset, scripted, reference, cluster, tmp_path, docker_ready):
    out = tmp_path / "ray"
    proc = bench(dataset, out, scripted.base_url, "--ray", cluster.address)
    second = "/" + cluster.second.node_id[:8]

    def second_task_under_way() -> bool:  # its worker has one task done (imports made), and runs another
        done = (out / "records.jsonl").is_file() and any(r["node"].endswith(second) for r in records(out))
        return proc.poll() is not None or (done and bool(running_tasks(cluster.second)))

    wait_for(second_task_under_way, 300, "a second task on the second node")
    first = running_tasks(cluster.second)
    time.sleep(1)  # well into the task (they take 4 to 10 s here): it has counted its attempt
    assert proc.poll() is None and running_tasks(cluster.second) == first, "the task there ended too soon"
    assert non_loopback_listeners() == []
    # the node is lost: the worker that runs a task there first (a worker can outlive its raylet long
    # enough to hand its result in), then the raylet and the rest of the node
    for worker in running_tasks(cluster.second):
        worker.kill()
    cluster.remove_node(cluster.second, allow_graceful=False)
    finish(proc)
    recs = records(out)
    assert sorted(r["task_id"] for r in recs) == sorted(TASKS)  # every task once, none lost, none twice
    assert {r["task_id"]: r["status"] for r in recs} == reference
    retried = [r for r in recs if r["attempts"] > 1]
    assert retried, "the task the lost node was running ran again"
    assert all(r["node"].endswith("/" + cluster.head_node.node_id[:8]) for r in retried)  # on the node left
    summary = json.loads((out / "summary.json").read_text())
    assert summary["retried"] == len(retried)
    # the containers of the killed attempt went too
    from repair_agent.sandbox import LABEL, docker_client

    left = [c for c in docker_client().containers.list(all=True, filters={"label": LABEL})
            if c.labels.get(f"{LABEL}.workdir", "").startswith(str(out))]
    assert left == []


@pytest.mark.slow
@requires_ray
def test_a_model_outage_on_ray_stops_the_run_and_leaves_no_error_record(dataset, tmp_path, docker_ready):
    """A task whose model fails (every request: HTTP 500) raises ModelError on its node; the driver stops
    the run with it, as with threads (exit 3), and records nothing for it: a rerun does it again."""
    out = tmp_path / "out"
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"task_id": "greet", "repo": str(dataset.parent / "greet"),
                               "test_command": "test_m.py"}) + "\n")
    before = ray_pids()
    with ScriptedServer([], status=500) as srv:
        proc = bench(one, out, srv.base_url, "--ray")
        _, err = proc.communicate(timeout=300)
        assert srv.requests, "the task reached the model"
    assert proc.returncode == 3, err[-2000:]
    assert "error:" in err and "Traceback" not in err
    assert not (out / "records.jsonl").exists() or records(out) == []
    assert stopped(before), "the local Ray that the run started is still there"


def test_a_bare_ray_flag_means_a_local_ray():
    assert bare_ray_means_local(["bench", "quixbugs", "--ray"]) == ["bench", "quixbugs", "--ray", "local"]
    assert bare_ray_means_local(["--ray", "--workers", "2"]) == ["--ray", "local", "--workers", "2"]
    assert bare_ray_means_local(["--ray", "auto"]) == ["--ray", "auto"]


@pytest.mark.slow
@requires_ray
def test_a_task_lost_on_every_attempt_records_the_time_it_ran(tmp_path, docker_ready):
    """A local Ray, no retries: the worker that runs the task is killed 4 s into it (a node lost). Its
    error record holds the time the task ran, not 0.0."""
    from repair_agent.bench.cluster import run_on_ray
    from repair_agent.bench.datasets import load_repos
    from repair_agent.config import Settings
    from repair_agent.sandbox import clear_containers_under

    root = tmp_path / "slow"
    root.mkdir()
    (root / "m.py").write_text("def one():\n    return 2\n")
    (root / "test_m.py").write_text("import time\nfrom m import one\n\n\ndef test_one():\n"
                                    "    time.sleep(120)  # the kill comes first\n    assert one() == 1\n")
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"task_id": "slow", "repo": "slow", "test_command": "test_m.py"}) + "\n")
    out, killed = tmp_path / "out", []
    before = ray_pids()

    def kill_its_worker():
        end = time.time() + 240
        while time.time() < end and not killed:
            workers = [p for p in psutil.process_iter() if p.pid not in before and is_task(p)]
            if workers:
                time.sleep(4)
                for w in workers:
                    w.kill()
                killed.append(time.time())
            time.sleep(0.2)

    import threading

    killer = threading.Thread(target=kill_its_worker, daemon=True)
    killer.start()
    started = time.time()
    try:
        recs = list(run_on_ray(load_repos(data), Settings(sandbox="docker", test_timeout_s=300, strategies="mutate"),
                               out, "agent", code_version(), None, address="local", slots=1, needs_model=False,
                               log=lambda m: None, max_retries=0))
    finally:
        killer.join(timeout=5)
        clear_containers_under(out, stopping=False)
    took = time.time() - started
    assert killed, "the task's worker never ran"
    [rec] = recs
    assert rec["status"] == "error" and rec["error"].startswith("lost on the Ray cluster after 1 attempt(s)"), rec
    assert 3.0 <= rec["duration_s"] <= took, (rec["duration_s"], took)
    assert stopped(before)


def is_task(p) -> bool:
    try:
        return " ".join(p.cmdline()[:1]).startswith("ray::run_remote")
    except psutil.Error:
        return False
