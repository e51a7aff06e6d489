"""The wheel is the product: build it, install it into a fresh venv (no editable install, no source
tree on the path) and run `repair-agent fix` from it end to end. The prompts and the scripts that
run inside the sandbox are package data; a wheel without them cannot fix anything."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers import fixture_repo

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def sh(*cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel; the dependencies come from this venv's site-packages."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Build from a copy: an in-tree build leaves build/ behind, whose stale files end up in the next wheel.
    src = tmp / "src"
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("repair_agent", "train"):
        shutil.copytree(ROOT / name, src / name, ignore=junk)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", tmp / "dist", src)
    wheel = next((tmp / "dist").glob("repair_agent-*.whl"))

    venv = tmp / "venv"
    sh(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    # `--python`: the console script's shebang names the fresh venv's interpreter, not this one.
    sh(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--no-compile", wheel)
    site = Path(sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    # A plain path line: that directory's own .pth files (the editable install's finder) stay unread.
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def clean_env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("REPAIR_AGENT_")}
    return {**env, "REPAIR_AGENT_HOME": str(tmp / "home")}


def test_the_wheel_holds_its_data_and_reads_it_from_the_installed_copy(installed, tmp_path):
    probe = ("import json, repair_agent\n"
             "from repair_agent import prompts\n"
             "from repair_agent.llm import profiles\n"
             "from repair_agent.sandbox import TOOLS_DIR\n"
             "from importlib.util import find_spec\n"
             "print(json.dumps({'package': repair_agent.__file__, 'tools': str(TOOLS_DIR),\n"
             "  'standin': find_spec('repair_agent.ci.github_standin') is not None,\n"
             "  'scripts': sorted(p.name for p in TOOLS_DIR.glob('*.py')),\n"
             "  'profiles': sorted(profiles.available()), 'system': prompts.text('system.txt'),\n"
             "  'feedback': prompts.render('feedback.j2', code='x = 1', reason='boom', failure='', contradictions=[])}))\n")
    out = json.loads(sh(installed / "bin" / "python", "-c", probe, cwd=tmp_path, env=clean_env(tmp_path)).stdout)
    assert Path(out["package"]).is_relative_to(installed) and Path(out["tools"]).is_relative_to(installed)
    assert out["scripts"] == ["call_runner.py", "coverage_contexts.py", "reasoning_runner.py", "tracer.py",
                              "warm_worker.py"]
    assert {"semcoder", "qwen2.5-coder", "generic-chat"} <= set(out["profiles"])
    assert out["system"].strip() and "boom" in out["feedback"]
    assert not out["standin"]  # a test double, not the product


def test_fix_runs_end_to_end_from_the_installed_wheel(installed, tmp_path, docker_ready):
    repo = fixture_repo("wrong_index", tmp_path / "repo")
    script = installed / "bin" / "repair-agent"
    assert script.read_text().splitlines()[0] == f"#!{installed / 'bin' / 'python'}"
    result = tmp_path / "result.json"
    proc = subprocess.run([str(script), "fix", str(repo), "--strategies", "mutate", "--sandbox", "docker",
                           "--json", str(result), "--run-dir", str(tmp_path / "runs")],
                          cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(result.read_text())
    assert out["status"] == "fixed" and out["source"] == "mutate"
    assert "+    return items[1]\n" in out["patch"]
