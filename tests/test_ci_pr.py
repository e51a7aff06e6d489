"""publish_fix against a real bare git remote on disk and the loopback GitHub stand-in."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import github
import pytest
from github_standin import GitHubStandIn

from repair_agent.ci.pr_text import BRANCH_PREFIX, MACHINE_MADE, branch_name, failing_digest, marker, slug_for_test
from repair_agent.ci.publish import AUTHOR_EMAIL, AUTHOR_NAME, publish_fix
from repair_agent.errors import BadInput, RepairAgentError

TOKEN = "tok_Zq81Secret0123456789abcdef"
REPO = "octo/demo"
FAILING = ["tests/test_calc.py::test_add", "tests/test_calc.py::test_add_negative"]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for name in ("GITHUB_STEP_SUMMARY", "GITHUB_REPOSITORY", "GH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def world(tmp_path):
    """A work repo on ``main`` pushed to a bare remote, and a real patch that fixes it."""
    bare = tmp_path / "remote.git"
    work = tmp_path / "work"
    _git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    _git(tmp_path, "init", "--quiet", "--initial-branch=main", str(work))
    _git(work, "config", "user.name", "Dev")
    _git(work, "config", "user.email", "dev@example.invalid")
    (work / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (work / "tests").mkdir()
    (work / "tests" / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\n"
        "def test_add_negative():\n    assert add(-1, -2) == -3\n"
    )
    _git(work, "add", "-A")
    _git(work, "commit", "--quiet", "-m", "calc with a bug")
    _git(work, "remote", "add", "origin", str(bare))
    _git(work, "push", "--quiet", "origin", "main")
    base_sha = _git(work, "rev-parse", "HEAD")

    (work / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    patch = subprocess.run(
        ["git", "diff"], cwd=work, check=True, capture_output=True, text=True
    ).stdout
    _git(work, "checkout", "--", "calc.py")
    assert patch.startswith("diff --git")

    result = {
        "status": "fixed",
        "patch": patch,
        "root_cause": "add() subtracts b instead of adding it.",
        "rounds": [{"round": 0, "candidates": [{"index": 0, "status": "passed", "reason": ""}]}],
        "tests_before": {"passed": 0, "failed": 2, "errors": 0, "skipped": 0,
                         "failing": list(reversed(FAILING))},
        "tests_after": {"passed": 2, "failed": 0, "errors": 0, "skipped": 0, "failing": []},
        "tokens": {"prompt": 1234, "completion": 321},
        "duration_s": 12.5,
        "run_id": "run-abc123",
        "model": "semcoder/semcoder_s_1030",
    }
    return {"bare": bare, "work": work, "base_sha": base_sha, "result": result}


@pytest.fixture
def gh():
    with GitHubStandIn() as standin:
        standin.add_repo(REPO, default_branch="main")
        yield standin


def _publish(world, gh, *, result=None, remote=None, **kw):
    kw.setdefault("base", "main")
    kw.setdefault("github_repo", REPO)
    kw.setdefault("token", TOKEN)
    kw.setdefault("dry_run", False)
    return publish_fix(
        world["work"], result or world["result"], remote=remote or str(world["bare"]),
        api_url=gh.api_url, **kw,
    )


def _remote_branches(bare: Path) -> list[str]:
    out = _git(bare, "for-each-ref", "--format=%(refname:short)", "refs/heads")
    return sorted(out.split())


def _all_request_text(gh: GitHubStandIn) -> str:
    return "\n".join(r.raw_body + json.dumps(r.query) + r.path for r in gh.requests)


def _assert_user_tree_untouched(world):
    work = world["work"]
    assert _git(work, "rev-parse", "HEAD") == world["base_sha"]
    assert _git(work, "symbolic-ref", "--short", "HEAD") == "main"
    assert _git(work, "status", "--porcelain") == ""
    assert _git(work, "branch", "--list", f"{BRANCH_PREFIX}*") == ""
    assert len(_git(work, "worktree", "list").splitlines()) == 1
    assert "a - b" in (work / "calc.py").read_text()


# ------------------------------------------------------------------------------------------------
def test_names_and_marker_are_stable():
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert slug_for_test("tests/unit/test_calc.py::TestAdd::test_two[1-2]") == (
        "test-calc-testadd-test-two-1-2"
    )
    assert branch_name(sha, sorted(FAILING)) == "repair-agent/0123456-test-calc-test-add"
    assert marker(sha, FAILING) == marker(sha, list(reversed(FAILING)))
    assert failing_digest(FAILING) in marker(sha, FAILING)
    long = slug_for_test("tests/test_x.py::" + "very_long_name_" * 10)
    assert len(long) <= 40 and not long.endswith("-")


def test_opens_pull_request_with_one_commit_on_a_new_branch(world, gh, capsys):
    out = _publish(world, gh)
    branch = branch_name(world["base_sha"], sorted(FAILING))
    assert out["action"] == "opened"
    assert out["branch"] == branch
    assert out["pr_number"] == 1 and out["pr_url"].endswith("/pull/1")

    bare = world["bare"]
    assert _remote_branches(bare) == sorted(["main", branch])
    assert _git(bare, "rev-list", "--count", f"main..{branch}") == "1"
    assert _git(bare, "rev-parse", f"{branch}^") == world["base_sha"]
    assert _git(bare, "rev-parse", branch) == out["commit"]
    assert _git(bare, "show", f"{branch}:calc.py") == "def add(a, b):\n    return a + b"
    assert _git(bare, "log", "-1", "--format=%an <%ae>", branch) == f"{AUTHOR_NAME} <{AUTHOR_EMAIL}>"
    message = _git(bare, "log", "-1", "--format=%B", branch)
    subject = message.splitlines()[0]
    assert subject == "Fix failing test tests/test_calc.py::test_add (+1 more)"
    assert "subtracts b instead of adding it" in message
    for t in FAILING:
        assert t in message

    posts = gh.requests_to("POST", r"/repos/octo/demo/pulls$")
    assert len(posts) == 1
    sent = posts[0].json
    assert sent["head"] == branch and sent["base"] == "main"
    assert sent["title"] == subject
    body = sent["body"]
    assert "subtracts b instead of adding it" in body
    assert "-    return a - b" in body and "+    return a + b" in body
    assert "```diff" in body
    assert MACHINE_MADE in body
    assert "semcoder/semcoder_s_1030" in body and "1234" in body and "321" in body
    assert "- rounds: 1" in body and "run-abc123" in body
    assert "| before | 0 | 2 | 0 | 0 |" in body and "| after | 2 | 0 | 0 | 0 |" in body
    assert marker(world["base_sha"], FAILING) in body
    # the token goes only where it belongs: the Authorization header
    assert posts[0].headers.get("Authorization", "").endswith(TOKEN)
    assert TOKEN not in _all_request_text(gh)
    assert TOKEN not in message
    assert TOKEN not in capsys.readouterr().out

    assert [p["number"] for p in gh.pulls(REPO, "open")] == [1]
    _assert_user_tree_untouched(world)


def test_second_run_updates_the_open_pull_request(world, gh):
    first = _publish(world, gh)
    result = dict(world["result"], root_cause="add() used '-' where '+' was meant.", run_id="run-2")
    second = _publish(world, gh, result=result)

    assert first["action"] == "opened" and second["action"] == "updated"
    assert second["pr_number"] == first["pr_number"]
    assert len(gh.requests_to("POST", r"/pulls$")) == 1
    patches = gh.requests_to("PATCH", rf"/pulls/{first['pr_number']}$")
    assert len(patches) == 1
    assert "used '-' where '+' was meant" in patches[0].json["body"]
    open_prs = gh.pulls(REPO, "open")
    assert len(open_prs) == 1 and "run-2" in open_prs[0]["body"]
    branch = first["branch"]
    assert _git(world["bare"], "rev-list", "--count", f"main..{branch}") == "1"
    assert _git(world["bare"], "rev-parse", branch) == second["commit"]
    _assert_user_tree_untouched(world)


def test_finds_its_pull_request_by_marker(world, gh):
    # an earlier run pushed under another branch name; its PR carries the same marker
    other = BRANCH_PREFIX + "older-name"
    _git(world["work"], "push", "--quiet", str(world["bare"]), f"main:refs/heads/{other}")
    client = github.Github(base_url=gh.api_url, auth=github.Auth.Token("x" * 10))
    client.get_repo(REPO).create_pull(
        base="main", head=other, title="old",
        body="old body\n" + marker(world["base_sha"], FAILING),
    )
    out = _publish(world, gh)
    assert out["action"] == "updated" and out["pr_number"] == 1 and out["branch"] == other
    assert _git(world["bare"], "rev-parse", other) == out["commit"]
    assert len(gh.pulls(REPO, "open")) == 1


def test_no_fix_pushes_nothing_and_writes_the_step_summary(world, gh, tmp_path, monkeypatch, capsys):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = dict(world["result"], status="not_fixed", patch="",
                  root_cause="The sum is computed with subtraction; no candidate passed.")
    out = _publish(world, gh, result=result)

    assert out["action"] == "none" and out["branch"] is None and out["pr_number"] is None
    assert gh.requests == []
    assert _remote_branches(world["bare"]) == ["main"]
    text = summary.read_text()
    assert "no fix" in text and "not_fixed" in text
    assert "computed with subtraction" in text
    assert FAILING[0] in text
    printed = capsys.readouterr().out
    assert "computed with subtraction" in printed
    assert TOKEN not in text and TOKEN not in printed
    _assert_user_tree_untouched(world)


def test_push_failure_raises_and_opens_nothing(world, gh, tmp_path, capsys):
    with pytest.raises(RepairAgentError) as err:
        _publish(world, gh, remote=str(tmp_path / "no-such-remote.git"))
    msg = str(err.value)
    assert err.value.exit_code == 3
    assert "\n" not in msg and "push" in msg
    assert TOKEN not in msg and TOKEN not in capsys.readouterr().out
    assert gh.requests_to("POST") == [] and gh.pulls(REPO, "open") == []
    assert _remote_branches(world["bare"]) == ["main"]
    _assert_user_tree_untouched(world)


def test_pull_request_failure_deletes_the_pushed_branch(world, gh, capsys):
    gh.fail("POST", r"/repos/octo/demo/pulls$", 500)
    with pytest.raises(RepairAgentError) as err:
        _publish(world, gh)
    msg = str(err.value)
    assert "\n" not in msg and "500" in msg and "deleted the pushed branch" in msg
    assert TOKEN not in msg and TOKEN not in capsys.readouterr().out
    assert len(gh.requests_to("POST", r"/pulls$")) == 1  # not retried
    assert gh.pulls(REPO, "open") == []
    assert _remote_branches(world["bare"]) == ["main"]
    _assert_user_tree_untouched(world)


def test_failed_update_restores_the_branch(world, gh):
    first = _publish(world, gh)
    gh.fail("PATCH", r"/pulls/\d+$", 500)
    # a new explanation gives a new commit (the message differs), force-pushed over the first
    result = dict(world["result"], root_cause="a different explanation")
    with pytest.raises(RepairAgentError) as err:
        _publish(world, gh, result=result)
    assert "restored the branch" in str(err.value) and "\n" not in str(err.value)
    assert _git(world["bare"], "rev-parse", first["branch"]) == first["commit"]
    assert len(gh.pulls(REPO, "open")) == 1


def test_token_is_redacted_even_when_the_model_echoes_it(world, gh, capsys):
    result = dict(world["result"], root_cause=f"The env had GITHUB_TOKEN={TOKEN} in it.")
    out = _publish(world, gh, result=result)
    message = _git(world["bare"], "log", "-1", "--format=%B", out["branch"])
    body = gh.requests_to("POST", r"/pulls$")[0].json["body"]
    assert TOKEN not in message and "GITHUB_TOKEN=***" in message
    assert TOKEN not in body and "GITHUB_TOKEN=***" in body
    assert TOKEN not in _all_request_text(gh)
    assert TOKEN not in capsys.readouterr().out


def test_dry_run_changes_nothing(world, gh, tmp_path, monkeypatch, capsys):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    objects_before = _git(world["work"], "count-objects", "-v")
    out = _publish(world, gh, dry_run=True)
    assert out["action"] == "dry-run" and out["commit"] is None
    printed = capsys.readouterr().out
    assert out["branch"] in printed and "would" in printed and "Fix failing test" in printed
    assert gh.requests == []
    assert _remote_branches(world["bare"]) == ["main"]
    assert not summary.exists()
    assert _git(world["work"], "count-objects", "-v") == objects_before
    _assert_user_tree_untouched(world)


def test_dry_run_reports_a_patch_that_does_not_apply(world, gh):
    result = dict(world["result"], patch=world["result"]["patch"].replace("a - b", "a * b"))
    with pytest.raises(RepairAgentError, match="does not apply"):
        _publish(world, gh, result=result, dry_run=True)


def test_missing_token_is_bad_input(world, gh):
    with pytest.raises(BadInput):
        _publish(world, gh, token=None)
    assert gh.requests == [] and _remote_branches(world["bare"]) == ["main"]


def test_refuses_to_push_to_the_base_branch(world, gh):
    branch = branch_name(world["base_sha"], sorted(FAILING))
    with pytest.raises(RepairAgentError, match="refusing"):
        _publish(world, gh, base=branch)
    assert _remote_branches(world["bare"]) == ["main"]


def test_remote_name_and_default_base(world, gh):
    """``remote`` may be a configured remote name; the base defaults to the current branch."""
    out = _publish(world, gh, remote="origin", base=None)
    assert out["action"] == "opened" and out["base"] == "main"
    assert gh.requests_to("POST", r"/pulls$")[0].json["base"] == "main"
    assert out["branch"] in _remote_branches(world["bare"])
