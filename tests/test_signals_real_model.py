"""Stopping `repair-agent bench` and `fix`: SIGINT and SIGTERM end the run at once, with the REAL
llama.cpp server (SmolLM2-135M) that the run started and the Docker sandbox; nothing of the run
stays behind, the finished tasks' summary is written, and a rerun into the same --out resumes. With
two workers there is one server for both."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import fixture_repo
from model_server import requires_llama_cpp, smollm_gguf  # noqa: F401 - a fixture

from repair_agent.llm.llamacpp import SERVER_MODULE

pytestmark = [pytest.mark.docker, requires_llama_cpp]
IDS = ["gcd", "flatten", "is_valid_parenthesization"]
QUEUED = "one embedded llama.cpp server; the requests of 2 worker(s) queue on it"


def bench(out: Path, tmp: Path) -> tuple[list[str], dict]:
    tmp.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "repair_agent", "bench", "quixbugs", "--ids", ",".join(IDS), "--workers", "2",
           "--model", "smollm2-135m", "--strategies", "refine", "--rounds", "1", "--samples", "1", "--no-trace",
           "--sandbox", "docker", "--out", str(out)]
    env = {**os.environ, "TMPDIR": str(tmp), "COLUMNS": "400", "REPAIR_AGENT_MAX_TOKENS": "128"}
    return cmd, env


def descendants(pid: int) -> set[int]:
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found.update(kids)
        todo += kids
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def containers(out: Path) -> list:
    from repair_agent.sandbox import LABEL, docker_client

    return [c for c in docker_client().containers.list(all=True, filters={"label": LABEL})
            if c.labels.get(f"{LABEL}.workdir", "").startswith(str(out.resolve()))]


def finished(out: Path) -> list[str]:
    """The task ids a rerun skips: recorded with any status but an error."""
    f = out / "records.jsonl"
    recs = [json.loads(x) for x in f.read_text().splitlines()] if f.exists() else []
    return [r["task_id"] for r in recs if r["status"] not in ("error", "env_error")]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_the_bench_and_its_real_llama_server_then_a_rerun_resumes(sig, code, tmp_path, smollm_gguf,
                                                                               docker_ready):
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    cmd, env = bench(out, tmp)
    with open(tmp_path / "err1", "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    servers: set[int] = set()
    try:
        deadline = time.monotonic() + 300
        while True:  # one task finished, another in its sandbox: then the signal comes
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "err1").read_text()
            mine = descendants(proc.pid)
            running = {p for p in mine if SERVER_MODULE in cmdline(p) and alive(p)}
            assert len(running) <= 1  # two workers, one server
            servers |= running
            if finished(out) and containers(out):
                break
            time.sleep(0.2)
        before = descendants(proc.pid)
        sent = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == code, (tmp_path / "err1").read_text()
        stopped_s = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    err1 = (tmp_path / "err1").read_text()
    name = "SIGINT" if sig == signal.SIGINT else "SIGTERM"
    assert f"interrupted by {name}" in err1 and "Traceback" not in err1, err1
    assert QUEUED in err1 and len(servers) == 1
    assert stopped_s < 15, stopped_s  # at once: not after the tasks in flight
    partial = json.loads((out / "summary.json").read_text())  # the finished tasks' summary is not lost
    recorded = (out / "records.jsonl").read_text().splitlines()  # the summary counts every record, errors too
    assert partial["interrupted"] is True and partial["tasks"] == len(recorded) >= len(finished(out)) >= 1
    assert "The run was interrupted" in (out / "report.md").read_text()
    print(f"{name}: stopped {stopped_s:.1f} s after the signal")
    assert [p for p in before if alive(p)] == [] and servers <= before  # the server and every other child
    assert containers(out) == [] and list(tmp.glob("repair-agent-*")) == []

    done = finished(out)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=480)
    assert again.returncode == 0, again.stderr
    assert f"3 tasks, {len(done)} already done, {3 - len(done)} to run" in again.stderr, again.stderr
    ids = [json.loads(x)["task_id"] for x in (out / "records.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(IDS) and ids[:len(done)] == done  # the finished tasks were not run again
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"] == 3 and summary["settings"]["model_server"] == QUEUED and not summary["interrupted"]
    assert QUEUED in again.stderr and "model server" in again.stdout  # the log and the printed summary
    assert containers(out) == []


def test_sigterm_stops_fix_and_its_real_llama_server_at_once(tmp_path, smollm_gguf, docker_ready):
    repo, runs = fixture_repo("wrong_index", tmp_path / "repo"), tmp_path / "runs"
    cmd = [sys.executable, "-m", "repair_agent", "fix", str(repo), "--model", "smollm2-135m", "--strategies", "refine",
           "--sandbox", "docker", "--no-trace", "--run-dir", str(runs)]
    with open(tmp_path / "err", "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "COLUMNS": "400"})
    try:
        deadline = time.monotonic() + 120
        while not (any(SERVER_MODULE in cmdline(p) for p in descendants(proc.pid)) and containers(runs)):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "err").read_text()
            time.sleep(0.2)
        before = descendants(proc.pid)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143, (tmp_path / "err").read_text()
        stopped_s = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"fix: stopped {stopped_s:.1f} s after SIGTERM")
    assert "interrupted by SIGTERM" in (tmp_path / "err").read_text() and stopped_s < 15
    assert [p for p in before if alive(p)] == [] and containers(runs) == []
