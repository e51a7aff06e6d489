"""The CI bot's last step: turn a validated fix into a pushed branch and a pull request (the texts
are ci/pr_text.py's).

``publish_fix`` takes the result dict of ``fix`` (the same as ``repair-agent fix --json``) and

* with ``status == "fixed"`` and the overfitting guard's ``confidence`` at or above
  ``min_confidence`` (low < unknown < high): commits the patch on a fresh branch
  ``repair-agent/<short base sha>-<slug of the first failing test>`` built in a temporary
  ``git worktree`` (the user's checkout, index and branches are never touched), pushes it, and
  opens a pull request -- or, when an open pull request from repair-agent for the same base and
  the same failing tests already exists, force-pushes its branch and updates its body;
* with a fix below that confidence: pushes nothing, opens nothing, and writes the diagnosis and the
  candidates (every plausible patch, with the input on which they disagree) to the log and to
  ``$GITHUB_STEP_SUMMARY`` when that is set;
* otherwise: pushes nothing, opens nothing, and writes a diagnosis (markdown) to the log and to
  ``$GITHUB_STEP_SUMMARY`` when that is set.

Every text that leaves the process (log lines, error messages, the commit message, the PR title
and body) goes through :func:`repair_agent.redact.redact`; the token is never put on a command
line. A failure while pushing or talking to GitHub raises :class:`RepairAgentError` with a
one-line message, after undoing what was done (a branch pushed for a pull request that could not
be opened is deleted again).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import git

from repair_agent.ci.pr_text import (BRANCH_PREFIX, branch_name, candidates_markdown, commit_message,
                                     diagnosis_markdown, failing_tests, marker, pr_body, pr_title,
                                     published_markdown)
from repair_agent.errors import BadInput, RepairAgentError
from repair_agent.judge.guard import CONFIDENCE, at_least
from repair_agent.redact import redact, secrets_from_env

AUTHOR_NAME = "repair-agent"
AUTHOR_EMAIL = "repair-agent@users.noreply.github.com"


# ----------------------------------------------------------------------------------------------
# git helpers
# ----------------------------------------------------------------------------------------------
def _git_env(config: dict[str, str] | None = None, extra: dict[str, str] | None = None) -> dict:
    """Environment for git: config passed via GIT_CONFIG_* (never argv), hooks off, no prompts."""
    cfg = {"core.hooksPath": os.devnull, "commit.gpgsign": "false"}
    cfg.update(config or {})
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_COUNT": str(len(cfg))}
    for i, (k, v) in enumerate(cfg.items()):
        env[f"GIT_CONFIG_KEY_{i}"] = k
        env[f"GIT_CONFIG_VALUE_{i}"] = v
    env.update(extra or {})
    return env


def _one_line(exc: BaseException) -> str:
    """The most telling single line of an error (git's last stderr line, or the message)."""
    if isinstance(exc, git.GitCommandError):
        text = exc.stderr if isinstance(exc.stderr, str) else str(exc.stderr or "")
        text = text.strip().removeprefix("stderr:").strip().strip("'").strip()
        lines = [
            ln.strip() for ln in text.splitlines()
            if ln.strip() and not ln.strip().lower().startswith(("hint:", "to "))
        ]
        fatal = [ln for ln in lines if ln.lower().startswith(("fatal:", "error:", "!"))]
        pick = (fatal or lines or [f"exit status {exc.status}"])[-1 if not fatal else 0]
        return pick
    try:
        from github import GithubException

        if isinstance(exc, GithubException):
            data = exc.data if isinstance(exc.data, dict) else {}
            msg = str(data.get("message") or exc.data or "")
            errs = [
                str(e.get("message") or e) if isinstance(e, dict) else str(e)
                for e in (data.get("errors") or [])
            ]
            if errs:
                msg += ": " + "; ".join(errs)
            return f"HTTP {exc.status} {msg}".strip()
    except ImportError:  # pragma: no cover
        pass
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def _remote_url(repo: git.Repo, remote: str) -> str:
    if remote in [r.name for r in repo.remotes]:
        try:
            return repo.git.remote("get-url", "--push", remote)
        except git.GitCommandError:
            return repo.remote(remote).url
    return remote


def _push_auth(repo: git.Repo, remote: str, token: str | None) -> tuple[dict[str, str], list[str]]:
    """git config that lets a push to an https remote use the token, plus the values to redact.

    Only used when the remote is https without credentials and no ``http.*.extraheader`` is
    configured already (actions/checkout sets one; sending two Authorization headers fails).
    """
    if not token:
        return {}, []
    parts = urlsplit(_remote_url(repo, remote))
    if parts.scheme != "https" or not parts.hostname or "@" in parts.netloc:
        return {}, []
    try:
        existing = repo.git.config("--get-regexp", r"^http\..*extraheader$")
    except git.GitCommandError:
        existing = ""
    if existing.strip():
        return {}, []
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    key = f"http.https://{parts.netloc}/.extraheader"
    return {key: f"AUTHORIZATION: basic {basic}"}, [basic]


@contextmanager
def _temporary_worktree(repo: git.Repo, base_sha: str, env: dict) -> Iterator[Path]:
    """A detached worktree at ``base_sha`` outside the repository, always removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="repair-agent-pr-"))
    path = tmp / "worktree"
    added = False
    try:
        repo.git.worktree("add", "--detach", "--quiet", str(path), base_sha, env=env)
        added = True
        yield path
    finally:
        if added:
            try:
                repo.git.worktree("remove", "--force", str(path), env=env)
            except git.GitCommandError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            repo.git.worktree("prune", env=env)
        except git.GitCommandError:
            pass


def _commit_patch(repo: git.Repo, base_sha: str, patch: str, message: str, env: dict) -> str:
    """Apply ``patch`` on ``base_sha`` in a temporary worktree and commit it; the commit's sha."""
    commit_env = dict(env)
    commit_env.update(
        GIT_AUTHOR_NAME=AUTHOR_NAME, GIT_AUTHOR_EMAIL=AUTHOR_EMAIL,
        GIT_COMMITTER_NAME=AUTHOR_NAME, GIT_COMMITTER_EMAIL=AUTHOR_EMAIL,
    )
    with _temporary_worktree(repo, base_sha, env) as path:
        patch_file = path.parent / "fix.patch"
        msg_file = path.parent / "COMMIT_MSG"
        patch_file.write_text(patch if patch.endswith("\n") else patch + "\n", encoding="utf-8")
        msg_file.write_text(message, encoding="utf-8")
        wt = git.Repo(path)
        try:
            wt.git.apply("--index", "--whitespace=nowarn", str(patch_file), env=env)
        except git.GitCommandError as exc:
            raise RepairAgentError(
                f"the patch does not apply to {base_sha[:12]}: {_one_line(exc)}"
            ) from None
        if not wt.git.diff("--cached", "--name-only", env=env).strip():
            raise RepairAgentError("the patch changes nothing; there is nothing to commit")
        try:
            wt.git.commit("--no-verify", "--quiet", "-F", str(msg_file), env=commit_env)
        except git.GitCommandError as exc:
            raise RepairAgentError(f"committing the fix failed: {_one_line(exc)}") from None
        return wt.head.commit.hexsha


def _check_patch_applies(repo: git.Repo, base_sha: str, patch: str) -> None:
    """``git apply --check`` against ``base_sha`` in a throw-away index: changes nothing."""
    with tempfile.TemporaryDirectory(prefix="repair-agent-dry-") as tmp:
        index = Path(tmp) / "index"
        patch_file = Path(tmp) / "fix.patch"
        patch_file.write_text(patch if patch.endswith("\n") else patch + "\n", encoding="utf-8")
        env = _git_env(extra={"GIT_INDEX_FILE": str(index)})
        try:
            repo.git.read_tree(base_sha, env=env)
            repo.git.apply("--cached", "--check", str(patch_file), env=env)
        except git.GitCommandError as exc:
            raise RepairAgentError(
                f"the patch does not apply to {base_sha[:12]}: {_one_line(exc)}"
            ) from None


def _default_base(repo: git.Repo, remote: str) -> str | None:
    """The current branch, else the remote's HEAD branch, else None (ask GitHub)."""
    try:
        if not repo.head.is_detached:
            return repo.active_branch.name
    except (TypeError, ValueError):
        pass
    if remote in [r.name for r in repo.remotes]:
        try:
            ref = repo.git.symbolic_ref("--short", f"refs/remotes/{remote}/HEAD")
            return ref.split("/", 1)[1] if "/" in ref else None
        except git.GitCommandError:
            pass
    return None


def _github_repo_from_url(url: str) -> str | None:
    m = re.search(r"github\.com[:/]+([^/\s]+)/([^/\s]+?)(?:\.git)?/?$", url)
    return f"{m.group(1)}/{m.group(2)}" if m else None


def _write_step_summary(text: str, log: Callable[[str], Any]) -> str | None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text.rstrip("\n") + "\n\n")
    except OSError as exc:
        log(f"repair-agent: could not write the step summary: {exc.strerror or exc}")
        return None
    return path


def _github_client(api_url: str, token: str):
    import github
    from github.GithubRetry import GithubRetry

    # Retry reads only: a retried POST could open two pull requests.
    retry = GithubRetry(total=3, allowed_methods=frozenset({"GET", "HEAD"}))
    return github.Github(
        base_url=api_url.rstrip("/"), auth=github.Auth.Token(token), retry=retry, timeout=30
    )


# ----------------------------------------------------------------------------------------------
# The entry point
# ----------------------------------------------------------------------------------------------
def publish_fix(
    repo_path: Path,
    result: dict,
    *,
    remote: str = "origin",
    base: str | None = None,
    github_repo: str | None = None,
    api_url: str = "https://api.github.com",
    token: str | None = None,
    dry_run: bool = False,
    log: Callable[[str], Any] = print,
    min_confidence: str = "low",
) -> dict:
    """Push the fix in ``result`` to a branch and open (or update) its pull request, when the
    overfitting guard's ``confidence`` is at least ``min_confidence`` (``low`` always opens).

    Returns what was done: ``{"action": "opened"|"updated"|"dry-run"|"none", "branch",
    "commit", "pr_number", "pr_url", "base", "base_sha", "remote", "github_repo", "status",
    "summary_path", "held"}`` (``held``: why a fix got no pull request). Raises :class:`BadInput`
    for a wrong path or missing configuration and :class:`RepairAgentError` when pushing or
    talking to GitHub fails.
    """
    if min_confidence not in CONFIDENCE:
        raise BadInput(f"unknown confidence {min_confidence!r}; use {', '.join(reversed(CONFIDENCE))}")
    secrets = secrets_from_env()
    if token:
        secrets.append(token)

    def clean(text: str) -> str:
        return redact(str(text), secrets)

    def say(text: str) -> None:
        log(clean(text))

    def fail(message: str, cls: type[RepairAgentError] = RepairAgentError) -> RepairAgentError:
        return cls(clean(" ".join(message.split())))

    try:
        repo = git.Repo(Path(repo_path), search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise fail(f"not a git repository: {repo_path}", BadInput) from None
    try:
        base_sha = repo.head.commit.hexsha
    except ValueError:
        raise fail(f"the repository at {repo_path} has no commits", BadInput) from None

    status = result.get("status")
    patch = result.get("patch") or ""
    out: dict[str, Any] = {
        "action": "none", "status": status, "branch": None, "commit": None,
        "pr_number": None, "pr_url": None, "base": base, "base_sha": base_sha,
        "remote": clean(remote), "github_repo": github_repo, "summary_path": None, "held": None,
    }

    # -- no fix: explain, push nothing ---------------------------------------------------------
    if status != "fixed" or not patch.strip():
        if status == "fixed":
            raise fail("the result says 'fixed' but carries no patch")
        text = clean(diagnosis_markdown(result))
        say(text)
        if not dry_run:
            out["summary_path"] = _write_step_summary(text, say)
        return out

    # -- a fix the guard is not sure enough of: show the candidates, push nothing ---------------------
    if not at_least(result.get("confidence"), min_confidence):
        out["held"] = (f"confidence {result.get('confidence') or 'unknown'} is below --min-confidence "
                       f"{min_confidence}")
        text = clean(candidates_markdown(result, min_confidence))
        say(text)
        if not dry_run:
            out["summary_path"] = _write_step_summary(text, say)
        return out

    failing = failing_tests(result)
    branch = branch_name(base_sha, failing)
    mark = marker(base_sha, failing)
    base = base or _default_base(repo, remote)
    if not github_repo:
        github_repo = os.environ.get("GITHUB_REPOSITORY") or _github_repo_from_url(
            _remote_url(repo, remote)
        )
    out.update(branch=branch, base=base, github_repo=github_repo)
    message = clean(commit_message(result))
    title = clean(pr_title(result))

    # -- dry run: say what would happen, touch nothing -------------------------------------------
    if dry_run:
        _check_patch_applies(repo, base_sha, patch)
        body = clean(pr_body(result, base_sha, base))
        say(
            "repair-agent (dry run): would\n"
            f"  commit the patch on {base_sha[:12]} as branch {branch}\n"
            f"  force-push it to {remote}\n"
            f"  open a pull request on {github_repo or '<unknown GitHub repository>'} "
            f"into {base or '<the default branch>'} (or update the open one with the same marker)\n"
            f"commit message:\n{message}\n"
            f"pull request title: {title}\n"
            f"pull request body:\n{body}"
        )
        out["action"] = "dry-run"
        return out

    _check_patch_applies(repo, base_sha, patch)  # before any network: a bad patch fails fast
    if not token:
        raise fail("no GitHub token: set GITHUB_TOKEN to open a pull request", BadInput)
    if not github_repo or "/" not in github_repo:
        raise fail(
            "unknown GitHub repository: pass --github-repo OWNER/NAME or set GITHUB_REPOSITORY",
            BadInput,
        )
    owner = github_repo.split("/", 1)[0]

    # -- GitHub: the repository, the base branch, an open pull request to update -----------------
    try:
        gh = _github_client(api_url, token)
        gh_repo = gh.get_repo(github_repo)
        default_branch = gh_repo.default_branch
    except Exception as exc:
        raise fail(f"cannot reach GitHub repository {github_repo}: {_one_line(exc)}") from None
    base = base or default_branch
    out["base"] = base

    try:
        existing = None
        for pr in gh_repo.get_pulls(state="open", head=f"{owner}:{branch}"):
            existing = pr
            break
        if existing is None:
            for pr in gh_repo.get_pulls(state="open"):
                if mark in (pr.body or ""):
                    existing = pr
                    break
    except Exception as exc:
        raise fail(f"listing open pull requests on {github_repo} failed: {_one_line(exc)}") from None
    if existing is not None:
        ref = existing.head.ref
        if ref != branch and ref.startswith(BRANCH_PREFIX):
            branch = ref
        out["branch"] = branch

    if branch in {base, default_branch} or not branch.startswith(BRANCH_PREFIX):
        raise fail(f"refusing to push to {branch!r}: it is the base branch or not a repair-agent branch")

    body = clean(pr_body(result, base_sha, base))
    auth_cfg, auth_secrets = _push_auth(repo, remote, token)
    secrets.extend(auth_secrets)
    env = _git_env()
    push_env = _git_env(auth_cfg)

    # -- the commit, in a temporary worktree --------------------------------------------------
    commit = _commit_patch(repo, base_sha, patch, message, env)
    out["commit"] = commit
    say(f"repair-agent: committed {commit[:12]} on {base_sha[:12]} for branch {branch}")

    # -- the push ------------------------------------------------------------------------------
    previous: str | None = None
    try:
        listed = repo.git.ls_remote(remote, f"refs/heads/{branch}", env=push_env).split()
        previous = listed[0] if listed else None
        if previous and previous != commit:
            # keep the old tip's objects so that it can be restored if the PR update fails
            repo.git.fetch("--quiet", "--no-tags", remote, f"refs/heads/{branch}", env=push_env)
        repo.git.push("--quiet", "--no-verify", remote, f"+{commit}:refs/heads/{branch}", env=push_env)
    except git.GitCommandError as exc:
        raise fail(f"pushing {branch} to {remote} failed: {_one_line(exc)}") from None
    say(f"repair-agent: pushed {branch} to {remote}")

    def undo_push() -> str:
        spec = f"+{previous}:refs/heads/{branch}" if previous else f":refs/heads/{branch}"
        try:
            repo.git.push("--quiet", "--no-verify", remote, spec, env=push_env)
            return "restored the branch" if previous else "deleted the pushed branch"
        except git.GitCommandError as exc:
            return f"could not undo the push ({_one_line(exc)})"

    # -- the pull request ----------------------------------------------------------------------
    if existing is not None:
        try:
            existing.edit(title=title, body=body)
        except Exception as exc:
            undone = undo_push()
            raise fail(
                f"updating pull request #{existing.number} failed: {_one_line(exc)}; {undone}"
            ) from None
        pr, out["action"] = existing, "updated"
    else:
        try:
            pr = gh_repo.create_pull(base=base, head=branch, title=title, body=body)
        except Exception as exc:
            undone = undo_push()
            raise fail(f"opening the pull request failed: {_one_line(exc)}; {undone}") from None
        out["action"] = "opened"
    out["pr_number"] = pr.number
    out["pr_url"] = pr.html_url
    say(f"repair-agent: {out['action']} pull request #{pr.number}: {pr.html_url}")

    summary = clean(published_markdown(result, out))
    out["summary_path"] = _write_step_summary(summary, say)
    return out

