"""Soak: many `fix` runs in a row on one fixture; does anything pile up?

Each run is the real loop in this process (`run_fix`, so that this process's RSS shows leaks),
with the Docker sandbox and a SCRIPTED model server on loopback (tests/scripted_server.py): round 0
answers a wrong fix, round 1 the right one, and the fix is committed on a new branch through a
temporary `git worktree`. Before and after the runs it counts:

- containers labelled `repair-agent`: all of them, and those of this soak (by scratch path);
- images named `repair-agent/*`;
- git worktrees of the fixture repository;
- temp dirs `repair-agent-*` in this soak's own TMPDIR (and, for information, in /tmp, which
  other processes share);
- the disk use of the runs root, and this process's RSS (after one warm-up run, so that imports
  and caches are not counted as growth).

    .venv/bin/python benchmarks/soak.py [--runs 20] [--sandbox docker] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from scripted_server import ScriptedServer, answer  # noqa: E402

from repair_agent.config import Settings  # noqa: E402
from repair_agent.fix import run_fix  # noqa: E402
from repair_agent.patching import commit_on_branch  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "wrong_index"
WRONG = "def second(items):\n    return items[0]\n"
RIGHT = "def second(items):\n    \"\"\"Return the second element of a list.\"\"\"\n    return items[1]\n"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def du_mb(path: Path) -> float:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0
    return round(total / 2**20, 3)


def snapshot(work: Path, repo: Path, runs: Path, tmp: Path) -> dict:
    from repair_agent.sandbox import LABEL, docker_available, docker_client

    out: dict = {"rss_mb": rss_mb(), "runs_root_mb": du_mb(runs), "runs": len(list(runs.glob("*"))) if runs.exists() else 0,
                 "temp_dirs": len(list(tmp.glob("repair-agent-*"))),
                 "temp_dirs_global_tmp": len(list(Path("/tmp").glob("repair-agent-*"))),
                 "worktrees": subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=repo, capture_output=True,
                                             text=True).stdout.count("worktree ")}
    if docker_available():
        client = docker_client()
        everyone = client.containers.list(all=True, filters={"label": LABEL})
        out["containers_all"] = len(everyone)
        out["containers_soak"] = sum(c.labels.get(f"{LABEL}.workdir", "").startswith(str(work)) for c in everyone)
        out["images"] = sum(any(t.startswith("repair-agent/") for t in img.tags) for img in client.images.list())
    return out


def make_repo(dest: Path) -> Path:
    shutil.copytree(FIXTURE, dest)
    env = {"GIT_AUTHOR_NAME": "soak", "GIT_AUTHOR_EMAIL": "soak@example.invalid", "GIT_COMMITTER_NAME": "soak",
           "GIT_COMMITTER_EMAIL": "soak@example.invalid", "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(dest)}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "initial"]):
        subprocess.run(["git", *args], cwd=dest, env=env, check=True, capture_output=True)
    return dest


def soak(runs: int = 20, sandbox: str = "docker", work: Path | None = None, log=print) -> dict:
    """`runs` fix runs after one warm-up; returns the snapshots before/after and each run's outcome."""
    own = work is None
    work = Path(work or tempfile.mkdtemp(prefix="soak-")).resolve()
    tmp = work / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    old_tempdir = tempfile.tempdir
    tempfile.tempdir = str(tmp)  # this soak's temp dirs are countable apart from everyone else's
    repo, root = make_repo(work / "repo"), work / "runs"
    outcomes: list[dict] = []
    try:
        with ScriptedServer([[answer(WRONG)], [answer(RIGHT)]] * (runs + 1)) as srv:
            settings = Settings(base_url=srv.base_url, sandbox=sandbox, rounds=2, samples=1, test_timeout_s=120,
                                strategies="refine",  # the scripted model's loop: a failed round, then the fix
                                per_test_timeout_s=10)

            def one(i: int) -> dict:
                start = time.monotonic()
                result = run_fix(repo, settings, runs_root=root, log=lambda m: None)
                if result["status"] == "fixed":
                    commit_on_branch(repo, result["patch"], f"soak-{i}", "soak fix\n")
                return {"status": result["status"], "fixed_round": result["fixed_round"],
                        "seconds": round(time.monotonic() - start, 2)}

            cold = snapshot(work, repo, root, tmp)
            warm_up = one(0)
            before = snapshot(work, repo, root, tmp)
            for i in range(1, runs + 1):
                outcomes.append(one(i))
                log(f"run {i}/{runs}: {outcomes[-1]}")
            after = snapshot(work, repo, root, tmp)
    finally:
        tempfile.tempdir = old_tempdir
    report = {"runs": runs, "sandbox": sandbox, "cold": cold, "warm_up": warm_up, "before": before,
              "after": after, "outcomes": outcomes,
              "growth": {k: round(after[k] - before[k], 3) for k in after if isinstance(after[k], (int, float))},
              "per_run_disk_mb": round((after["runs_root_mb"] - before["runs_root_mb"]) / max(runs, 1), 3),
              "seconds_per_run": round(sum(o["seconds"] for o in outcomes) / max(len(outcomes), 1), 2)}
    if own:
        shutil.rmtree(work, ignore_errors=True)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--sandbox", default="docker")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    report = soak(args.runs, args.sandbox)
    print(json.dumps({k: v for k, v in report.items() if k != "outcomes"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
