"""Hardening, part 3: the run itself. Signals, no Docker engine, a full disk, two runs at once,
hostile candidates end to end, and a short soak (benchmarks/soak.py).

The model is a SCRIPTED server on loopback (tests/scripted_server.py). Every run must end with one
clear line and a defined exit code, the user's tree byte-identical, and no container, worktree or
temp dir left behind.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import FIXTURES, RIGHT, WRONG, error_lines, fix_command, git, leftovers, run_cli, tree_hash
from scripted_server import ScriptedServer, answer

pytestmark = pytest.mark.docker


def start_cli(repo: Path, runs_root: Path, tmp: Path, *args) -> subprocess.Popen:
    cmd, env = fix_command(repo, runs_root, tmp, *args)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(cond, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_cleans_up_then_resume_finishes(sig, code, guarded, runs_root, tmp_path):
    with ScriptedServer([[answer(RIGHT)]], delay=60) as srv:  # the model is slow: the signal comes meanwhile
        proc = start_cli(guarded, runs_root, tmp_path / "tmp", "--base-url", srv.base_url, "--sandbox", "docker",
                         "--no-sbfl")
        wait_for(lambda: srv.requests)
        (run_dir,) = runs_root.iterdir()
        containers_before = len([c for c in leftovers_containers(runs_root)])
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    assert containers_before == 1  # the warm sandbox was there when the signal came
    assert proc.returncode == code, err
    name = "SIGINT" if sig == signal.SIGINT else "SIGTERM"
    line = next(ln for ln in err.splitlines() if ln.startswith("interrupted"))
    assert f"interrupted by {name}" in line and f"--resume {run_dir.name}" in line, err
    assert "Traceback" not in err
    assert leftovers(tmp_path / "tmp", runs_root) == {"containers": 0, "temp": []}
    out = tmp_path / "r.json"
    with ScriptedServer([[answer(RIGHT)]]) as srv:
        proc = run_cli(guarded, runs_root, tmp_path / "tmp", "--base-url", srv.base_url, "--resume", run_dir.name,
                       "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "fixed" and result["run_id"] == run_dir.name
    assert len(srv.requests) == 1


def leftovers_containers(runs_root: Path) -> list:
    from repair_agent.sandbox import LABEL, docker_client

    return [c for c in docker_client().containers.list(all=True, filters={"label": LABEL})
            if c.labels.get(f"{LABEL}.workdir", "").startswith(str(runs_root))]


NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/repair-agent-test/docker.sock"}


def test_no_docker_engine_with_sandbox_docker_exits_3(guarded, runs_root, tmp_path):
    with ScriptedServer([[answer(RIGHT)]]) as srv:
        proc = run_cli(guarded, runs_root, tmp_path / "tmp", "--base-url", srv.base_url, "--sandbox", "docker",
                       env=NO_ENGINE)
    assert proc.returncode == 3, proc.stderr
    (line,) = error_lines(proc)
    assert "Docker engine not reachable" in line and "--sandbox local" in line
    assert "Traceback" not in proc.stderr and srv.requests == []


def test_no_docker_engine_with_sandbox_auto_falls_back_to_local(guarded, runs_root, tmp_path):
    out = tmp_path / "r.json"
    with ScriptedServer([[answer(RIGHT)]]) as srv:
        proc = run_cli(guarded, runs_root, tmp_path / "tmp", "--base-url", srv.base_url, "--sandbox", "auto",
                       "--json", str(out), env=NO_ENGINE)
    assert proc.returncode == 0, proc.stderr
    err = " ".join(proc.stderr.split())  # rich wraps long log lines
    assert "warning: Docker engine not reachable; falling back to the local sandbox" in err
    assert "does NOT isolate the network or the file system" in err
    assert json.loads(out.read_text())["status"] == "fixed"


@pytest.fixture
def tiny_disk(tmp_path):
    """A tmpfs mounted for the test (needs root); unmounted at the end."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        d = tmp_path / f"disk{len(mounted)}"
        d.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounted.append(d)
        return d

    yield mount
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_full_disk_before_the_run_exits_3(guarded, tmp_path, tiny_disk):
    disk = tiny_disk("1m")
    with ScriptedServer([[answer(RIGHT)]]) as srv:
        proc = run_cli(guarded, disk / "runs", tmp_path / "tmp", "--base-url", srv.base_url, "--sandbox", "docker")
    assert proc.returncode == 3, proc.stderr
    (line,) = error_lines(proc)
    assert "MiB free for the run directory" in line and "--run-dir" in line
    assert "Traceback" not in proc.stderr and not (disk / "runs").exists()


def test_disk_filling_up_mid_run_exits_3(guarded, tmp_path, tiny_disk):
    disk = tiny_disk("24m")
    runs = disk / "runs"
    with ScriptedServer([[answer(RIGHT)]], delay=3) as srv:
        proc = start_cli(guarded, runs, tmp_path / "tmp", "--base-url", srv.base_url, "--sandbox", "docker",
                         "--no-sbfl")
        wait_for(lambda: srv.requests)
        with open(disk / "ballast", "wb") as f:  # fill the disk while the model thinks
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "no space left on the device" in line and "--run-dir" in line
    assert "Traceback" not in err
    assert leftovers(tmp_path / "tmp", runs) == {"containers": 0, "temp": []}


def test_two_runs_on_one_repo_at_once_do_not_mix(guarded, runs_root, tmp_path):
    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    with ScriptedServer([[answer(RIGHT)]]) as a, ScriptedServer([[answer(WRONG)], [answer(RIGHT)]]) as b:
        procs = [start_cli(guarded, runs_root, tmp_path / "tmp", "--base-url", srv.base_url, "--sandbox", "docker",
                           "--samples", "1", "--json", str(out), "--no-sbfl")
                 for srv, out in zip((a, b), outs)]
        errs = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    results = [json.loads(o.read_text()) for o in outs]
    assert results[0]["run_id"] != results[1]["run_id"]
    assert [r["fixed_round"] for r in results] == [0, 1]  # each run saw its own model's answers
    for r in results:
        assert "+    return items[1]" in r["patch"]
        run_dir = runs_root / r["run_id"]
        records = [json.loads(ln) for ln in (run_dir / "records.jsonl").read_text().splitlines()]
        assert {rec["run_id"] for rec in records} == {r["run_id"]}
        assert not (run_dir / "scratch").exists()


def test_hostile_candidate_deleting_its_workspace(guarded, runs_root, tmp_path):
    """Round 0's candidate empties the workspace (.git included) when it runs; round 1 fixes."""
    wipe = ("import os\nimport shutil\n\n\ndef second(items):\n    for name in os.listdir('.'):\n"
            "        shutil.rmtree(name, ignore_errors=True) if os.path.isdir(name) else os.remove(name)\n"
            "    return items[0]\n")
    out = tmp_path / "r.json"
    with ScriptedServer([[answer(wipe)], [answer(RIGHT)]]) as srv:
        proc = run_cli(guarded, runs_root, tmp_path / "tmp", "--base-url", srv.base_url, "--sandbox", "docker",
                       "--samples", "1", "--json", str(out), "--no-sbfl")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    first = result["rounds"][0]["candidates"][0]
    assert first["status"] == "failed", first
    assert result["status"] == "fixed" and result["fixed_round"] == 1
    assert "shutil" not in result["patch"]
    assert not list(runs_root.glob("*/scratch"))  # the scratch copy survived to be cleaned up


def test_memory_bomb_candidate_is_a_crash_not_a_timeout(guarded, runs_root, tmp_path):
    bomb = "def second(items):\n    hoard = []\n    while True:\n        hoard.append(b'x' * (64 << 20))\n"
    out = tmp_path / "r.json"
    with ScriptedServer([[answer(bomb)]]) as srv:
        proc = run_cli(guarded, runs_root, tmp_path / "tmp", "--base-url", srv.base_url, "--sandbox", "docker",
                       "--rounds", "1", "--json", str(out), "--no-sbfl")
    assert proc.returncode == 1, proc.stderr
    cand = json.loads(out.read_text())["rounds"][0]["candidates"][0]
    assert cand["status"] == "failed" and "out-of-memory killer" in cand["reason"], cand


def test_non_utf8_repository_is_fixed(make_repo, runs_root, tmp_path, docker_ready):
    """A latin-1 module and a test that prints bytes that are not UTF-8, beside the real bug."""
    repo = make_repo("wrong_index")
    shutil.copy(FIXTURES / "hostile" / "cases" / "latin.py", repo / "latin.py")
    (repo / "tests" / "test_latin.py").write_bytes(
        b"# -*- coding: latin-1 -*-\nimport sys\n\nfrom latin import greet\n\n\ndef test_greet():\n"
        b"    sys.stdout.buffer.write(b'\\xff\\xfe caf\\xe9')\n    assert greet() == 'caf\xe9'\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "latin-1")
    before = tree_hash(repo)
    out = tmp_path / "r.json"
    with ScriptedServer([[answer(RIGHT)]]) as srv:
        proc = run_cli(repo, runs_root, tmp_path / "tmp", "--base-url", srv.base_url, "--sandbox", "docker",
                       "--json", str(out), "--rounds", "1")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "fixed" and result["tests_after"]["passed"] == 5
    assert tree_hash(repo) == before
    assert leftovers(tmp_path / "tmp", runs_root) == {"containers": 0, "temp": []}


def load_soak():
    spec = importlib.util.spec_from_file_location("soak", Path(__file__).parent.parent / "benchmarks" / "soak.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_soak_three_runs_leave_nothing_behind(tmp_path, docker_ready):
    report = load_soak().soak(runs=3, work=tmp_path / "soak", log=lambda m: None)
    assert [o["status"] for o in report["outcomes"]] == ["fixed"] * 3
    assert [o["fixed_round"] for o in report["outcomes"]] == [1] * 3
    before, after = report["before"], report["after"]
    assert after["containers_soak"] == before["containers_soak"] == 0
    assert after["temp_dirs"] == before["temp_dirs"] == 0
    assert after["worktrees"] == before["worktrees"] == 1
    assert after["runs"] == before["runs"] + 3
    assert report["per_run_disk_mb"] < 5
