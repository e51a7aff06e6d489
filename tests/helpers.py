"""What the test modules share: fixture repositories, the CLI as a user runs it, the hostile
sandbox cases. Plain functions and constants; pytest fixtures live in conftest.py."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
CLI = [sys.executable, "-m", "repair_agent"]
# the wrong_index fixture's function, a wrong answer and the right one
WRONG = "def second(items):\n    return items[0]\n"
RIGHT = "def second(items):\n    \"\"\"Return the second element of a list.\"\"\"\n    return items[1]\n"


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def fixture_repo(name: str, repo: Path) -> Path:
    """Copy tests/fixtures/NAME to `repo`, a fresh git repository with one commit."""
    shutil.copytree(FIXTURES / name, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def tree_hash(root: Path) -> str:
    """A hash of every file under root, .git included: 'byte-identical' made checkable."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def outcomes(run) -> dict[str, str]:
    """A sandbox run's outcome per test name."""
    return {c["id"].split("::", 1)[1]: c["outcome"] for c in run["cases"]}


# -- the CLI, as a user runs it -------------------------------------------------------------------
def fix_command(repo: Path, runs_root: Path, tmp: Path, *args, env: dict | None = None) -> tuple[list, dict]:
    """`repair-agent fix` on `repo` with the model's loop (not the search), temp files under `tmp`."""
    tmp.mkdir(exist_ok=True)
    full_env = {**os.environ, "TMPDIR": str(tmp), "REPAIR_AGENT_PER_TEST_TIMEOUT_S": "10",
                "REPAIR_AGENT_STRATEGIES": "refine", **(env or {})}
    return [*CLI, "fix", str(repo), "--run-dir", str(runs_root), "--test-timeout", "60", *args], full_env


def run_cli(repo: Path, runs_root: Path, tmp: Path, *args, env: dict | None = None, timeout: float = 240):
    cmd, full_env = fix_command(repo, runs_root, tmp, *args, env=env)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)


def error_lines(proc) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]


def leftovers(tmp: Path, runs_root: Path) -> dict:
    """What a run may leave behind: its containers (by scratch path), temp dirs (TMPDIR=tmp)."""
    from repair_agent.sandbox import LABEL, docker_client

    mine = [c for c in docker_client().containers.list(all=True, filters={"label": LABEL})
            if c.labels.get(f"{LABEL}.workdir", "").startswith(str(runs_root))]
    return {"containers": len(mine), "temp": sorted(p.name for p in tmp.glob("repair-agent-*"))}


# -- the sandbox ----------------------------------------------------------------------------------
def hostile_repo(tmp_path: Path, case: str, extra: dict[str, str] | None = None) -> Path:
    """The `hostile/box` fixture plus tests/test_CASE.py, as a git repository."""
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "hostile" / "box", repo)
    shutil.copy(FIXTURES / "hostile" / "cases" / f"{case}.py", repo / "tests" / f"test_{case}.py")
    for rel, text in (extra or {}).items():
        (repo / rel).write_bytes(text.encode("latin-1") if isinstance(text, str) else text)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hostile")
    return repo


def containers_for(workdir: Path) -> list:
    from repair_agent.sandbox import LABEL, docker_client

    return docker_client().containers.list(
        all=True, filters={"label": f"{LABEL}.workdir={Path(workdir).resolve()}"})


def stateful_repo(tmp_path: Path) -> Path:
    """A test that leaves a global list, a monkeypatched function of a module the worker itself
    imported (pytest imports json), an environment variable and a file in the temporary folder."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "state.py").write_text("SEEN = []\n")
    (repo / "tests" / "test_state.py").write_text(textwrap.dedent("""\
        import json
        import os
        import tempfile

        import state

        def test_starts_clean():
            assert state.SEEN == []
            state.SEEN.append(1)
            assert json.dumps([1]) == "[1]"
            json.dumps = lambda *a, **k: "patched"
            assert "LEAK" not in os.environ
            os.environ["LEAK"] = "1"
            leak = os.path.join(tempfile.gettempdir(), "leak")
            assert not os.path.exists(leak)
            open(leak, "w").write("x")
        """))
    git(repo, "init", "-q")
    return repo


def assert_each_candidate_starts_clean(sb) -> None:
    for i in range(3):
        run = sb.run_tests([], timeout=60, per_test_timeout=20, overlay={"state.py": f"SEEN = []  # {i}\n"})
        assert run["runner"] == "worker", run.get("fallback")
        assert outcomes(run) == {"test_starts_clean": "passed"}, run["output_tail"][-800:]


def write_repo(root: Path, files: dict[str, str]) -> Path:
    """A tree of small files (relative path -> text, dedented) under `root`."""
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root
