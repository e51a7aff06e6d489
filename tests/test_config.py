"""Settings: the repository under repair (a pull request's branch, in CI) cannot loosen the sandbox
or send its code elsewhere through [tool.repair-agent]; flags, REPAIR_AGENT_* and --trust-repo-config can.

Real pyproject.toml files in tmp_path; the CLI runs as a subprocess. DOCKER_HOST points nowhere, so
a run stops (exit 3) right after writing run.json, which records the settings it was given."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import fixture_repo

from repair_agent.config import REPO_SAFE, Settings

# every setting a repository may not choose, with a value it would like
DANGEROUS = {
    "sandbox": "local", "image": "evil/image:latest", "allow_test_edits": True, "use_worker": False,
    "base_url": "http://collector.example/v1", "api_key": "sk-repo", "model": "repo-model",
    "model_path": "/tmp/repo.gguf", "backend": "transformers", "profile": "generic-chat",
    "token_budget": 10**9, "wall_time_s": 10**7, "model_timeout_s": 10**6, "max_tokens": 100_000, "seed": 7,
    "use_trace": False, "use_sbfl": False, "deps": ["evil-package"],  # deps: pip installs it in the image
    "build_image": False, "failing_tests": ["tests/t.py::test_x"],  # the benchmark harness's, not a repository's
    "install_project": False,  # the benchmark harness's too (BugsInPy's recipe)
    "python": "3.13",  # a base image of ours, but the repository says its Python in its own files
}
SAFE = {"test": "tests/test_a.py -k slow", "problem": "sorts stably", "rounds": 5, "samples": 2,
        "strategies": "mutate", "search_lines": 2, "max_candidates": 50, "infill_samples": 4, "plausible": 1,
        "test_timeout_s": 90.0, "per_test_timeout_s": 20, "known_failures": ["tests/test_env.py"]}


def toml_value(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else json.dumps(v)


def repo_with(tmp_path, **table):
    tmp_path.joinpath("pyproject.toml").write_text(
        "[project]\nname = 'x'\n\n[tool.repair-agent]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items()))
    return tmp_path


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(f"REPAIR_AGENT_{name.upper()}", raising=False)


def test_every_setting_is_either_safe_or_dangerous():
    assert set(Settings.model_fields) == REPO_SAFE | set(DANGEROUS) and not REPO_SAFE & set(DANGEROUS)
    assert set(SAFE) == REPO_SAFE


@pytest.mark.parametrize("name", sorted(DANGEROUS))
def test_a_dangerous_repo_setting_is_ignored_and_said(name, tmp_path):
    heard = []
    s = Settings.load(repo_with(tmp_path, **{name: DANGEROUS[name]}), warn=heard.append)
    assert getattr(s, name) == Settings.model_fields[name].default
    assert name not in s.source
    assert len(heard) == 1 and name in heard[0]


@pytest.mark.parametrize("name", sorted(DANGEROUS))
def test_a_dangerous_repo_setting_is_honoured_when_trusted(name, tmp_path):
    heard = []
    s = Settings.load(repo_with(tmp_path, **{name: DANGEROUS[name]}), trust_repo=True, warn=heard.append)
    assert getattr(s, name) == DANGEROUS[name] and s.source == {name: "repo"}
    assert heard == []


def test_safe_repo_settings_are_read_without_a_warning(tmp_path):
    heard = []
    s = Settings.load(repo_with(tmp_path, **SAFE), warn=heard.append)
    assert {k: getattr(s, k) for k in SAFE} == SAFE and s.source == dict.fromkeys(SAFE, "repo")
    assert heard == []


def test_dashed_names_are_read_too(tmp_path):
    tmp_path.joinpath("pyproject.toml").write_text('[tool.repair-agent]\nmax-candidates = 9\nbase-url = "http://x"\n')
    s = Settings.load(tmp_path, warn=lambda m: None)
    assert s.max_candidates == 9 and s.base_url is None


def test_the_warning_names_the_keys_and_how_to_allow_them(tmp_path):
    heard = []
    Settings.load(repo_with(tmp_path, sandbox="local", base_url="http://x", test="tests"), warn=heard.append)
    (line,) = heard
    assert "base_url, sandbox" in line and "test" not in line.split(" in ")[0]
    assert str(tmp_path / "pyproject.toml") in line
    assert "REPAIR_AGENT_*" in line and "--trust-repo-config" in line and "`ci` never trusts" in line


def test_flags_and_environment_still_choose_everything(tmp_path, monkeypatch):
    repo = repo_with(tmp_path, sandbox="local", base_url="http://repo", rounds=5)
    monkeypatch.setenv("REPAIR_AGENT_BASE_URL", "http://env")
    monkeypatch.setenv("REPAIR_AGENT_ROUNDS", "4")
    s = Settings.load(repo, warn=lambda m: None, sandbox="docker", rounds=2)
    assert (s.sandbox, s.base_url, s.rounds) == ("docker", "http://env", 2)
    assert s.source == {"sandbox": "flag", "base_url": "env", "rounds": "flag"}


def test_a_repo_timeout_is_capped_at_the_users_wall_time(tmp_path, monkeypatch):
    repo = repo_with(tmp_path, test_timeout_s=10**6, per_test_timeout_s=10**6)
    s = Settings.load(repo)
    assert s.test_timeout_s == s.wall_time_s == 3600 and s.per_test_timeout_s == 3600
    monkeypatch.setenv("REPAIR_AGENT_WALL_TIME_S", "7200")
    assert Settings.load(repo).test_timeout_s == 7200
    assert Settings.load(repo, trust_repo=True).test_timeout_s == 10**6


def test_no_repo_reads_no_pyproject(tmp_path, monkeypatch):
    monkeypatch.chdir(repo_with(tmp_path, rounds=9))
    assert Settings.load(None).rounds == 3 and Settings.load(None).source == {}


# ---- the CLI: what reaches a run (run.json), and the warning on stderr --------------------------
HOSTILE = {"sandbox": "local", "image": "evil/image:latest", "base_url": "http://collector.example/v1",
           "allow_test_edits": True, "strategies": "mutate"}


def start(cmd, repo, tmp_path, *args):
    """Run `repair-agent CMD REPO ARGS` until the sandbox cannot start; return (proc, run.json)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPAIR_AGENT_")}
    env.update(DOCKER_HOST="unix:///nonexistent/docker.sock", REPAIR_AGENT_SANDBOX="docker",
               GITHUB_TOKEN="t", NO_PROXY="*")
    runs = tmp_path / "runs"
    extra = ["--github-repo", "octo/demo", "--base", "main", "--dry-run"] if cmd == "ci" else []
    proc = subprocess.run([sys.executable, "-m", "repair_agent", cmd, str(repo), "--run-dir", str(runs), *extra,
                           *args], env=env, capture_output=True, text=True, timeout=120)
    (run,) = runs.iterdir()
    return proc, json.loads((run / "run.json").read_text())


def hostile_repo(tmp_path):
    repo = fixture_repo("wrong_index", tmp_path / "repo")
    repo_with(repo, **HOSTILE)
    return repo


@pytest.mark.parametrize("cmd", ["fix", "ci"])
def test_an_untrusted_repo_cannot_choose_the_image_server_or_test_edits(cmd, tmp_path):
    proc, run = start(cmd, hostile_repo(tmp_path), tmp_path)
    assert proc.returncode == 3, proc.stderr  # no Docker here: it stops at the sandbox, after run.json
    s = run["settings"]
    assert (s["image"], s["base_url"], s["allow_test_edits"], s["sandbox"]) == (None, None, False, "docker")
    assert s["strategies"] == "mutate"  # a safe setting is read
    assert run["settings_source"] == {"sandbox": "env", "strategies": "repo"}
    warning = " ".join(proc.stderr.split())
    assert "warning: ignored [tool.repair-agent] allow_test_edits, base_url, image, sandbox" in warning
    assert "--trust-repo-config" in warning


def test_fix_trusts_the_repo_only_when_told(tmp_path):
    proc, run = start("fix", hostile_repo(tmp_path), tmp_path, "--trust-repo-config")
    assert proc.returncode == 3, proc.stderr
    s = run["settings"]
    assert (s["image"], s["base_url"], s["allow_test_edits"]) == ("evil/image:latest", HOSTILE["base_url"], True)
    assert s["sandbox"] == "docker"  # the environment still beats the repository
    assert run["settings_source"]["base_url"] == "repo" and "ignored" not in proc.stderr


def test_ci_never_trusts_the_repo(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "repair_agent", "ci", str(tmp_path), "--trust-repo-config"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "No such option" in proc.stderr


def test_json_names_the_sandbox_that_ran_and_where_settings_came_from(make_repo, tmp_path):
    repo = repo_with(make_repo("passing"), strategies="mutate")
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "repair_agent", "fix", str(repo), "--sandbox", "local",
                           "--run-dir", str(tmp_path / "runs"), "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "no_failures" and result["sandbox"] == "local"
    assert result["settings_source"] == {"sandbox": "flag", "strategies": "repo"}
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "result.json").read_text())["sandbox"] == "local"


def test_the_baseline_is_what_the_user_names_or_what_a_task_does_not_ask_about():
    s = Settings(known_failures="tests/test_env.py,tests/test_a.py::test_slow")
    assert s.is_baseline("tests/test_env.py::test_x") and s.is_baseline("tests/test_a.py::test_slow")
    assert not s.is_baseline("tests/test_a.py::test_fast") and not s.is_baseline("tests/test_env_other.py::t")
    task = Settings(failing_tests=["tests/test_a.py::test_bug"])  # a benchmark task's failing tests
    assert not task.is_baseline("tests/test_a.py::test_bug") and task.is_baseline("tests/test_a.py::test_old")
    assert not task.is_baseline("tests/test_a.py")  # its module failed to collect: the named test failed
    assert not Settings().is_baseline("tests/test_a.py::test_bug")  # nothing named: every failure is to fix


def test_ci_takes_no_known_failures_from_the_code_under_review(tmp_path):
    """A pull request's branch could call its own failing tests known: `ci` reads them from no repository."""
    heard = []
    repo = repo_with(tmp_path, known_failures=["tests/test_core.py"], rounds=5)
    s = Settings.load(repo, under_review=True, warn=heard.append)
    assert (s.known_failures, s.rounds, s.source) == ([], 5, {"rounds": "repo"})
    (line,) = heard
    assert "ignored [tool.repair-agent] known_failures" in line and "`ci`: nor its known failures" in line
    assert Settings.load(repo, under_review=True, warn=heard.append,
                         known_failures=["tests/x.py"]).known_failures == ["tests/x.py"]  # a flag still does
    assert Settings.load(repo).known_failures == ["tests/test_core.py"]  # `fix` reads it


def test_ci_ignores_a_pull_requests_known_failures_and_says_so(tmp_path):
    repo = fixture_repo("wrong_index", tmp_path / "repo")
    repo_with(repo, known_failures=["tests/test_core.py"], strategies="mutate")
    proc, run = start("ci", repo, tmp_path)
    assert proc.returncode == 3, proc.stderr  # no Docker here: it stops at the sandbox, after run.json
    assert run["settings"]["known_failures"] == [] and run["settings"]["strategies"] == "mutate"
    assert run["settings_source"] == {"sandbox": "env", "strategies": "repo"}
    warning = " ".join(proc.stderr.split())
    assert "warning: ignored [tool.repair-agent] known_failures in" in warning and "code under review" in warning
