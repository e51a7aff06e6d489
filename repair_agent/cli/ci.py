"""`ci`: repair, then open (or update) a pull request, or say why not (ci/publish.py does the publishing)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..errors import RepairAgentError
from .console import EXIT, PipeConsole, console, fail, interrupted, log, on_signals, warn
from .options import (AllowTestEdits, Backend, BaseUrl, Deps, FindLinks, Image, IndexUrl, InfillSamples,
                      KnownFailures, MaxCandidates, Model, ModelPath, NoBuild, NoSbfl, NoTrace, NoWorker, Plausible,
                      Profile, Python, Rounds, RunDir, Samples, SandboxKind, SearchLines, Strategies, Test,
                      TestTimeout, pip_pass_through, settings_flags)


def ci(path: Path = typer.Argument(Path("."), help="The repository (a git work tree)."),
       test: Test = None,
       remote: str = typer.Option("origin", help="Remote name or URL to push to."),
       base: Optional[str] = typer.Option(None, help="Branch the PR targets."),
       github_repo: Optional[str] = typer.Option(None, help="OWNER/NAME (default: $GITHUB_REPOSITORY or the remote URL)."),
       github_api_url: str = typer.Option("https://api.github.com", envvar="GITHUB_API_URL", metavar="URL",
                                          help="The GitHub API (GitHub Enterprise: its /api/v3 URL)."),
       run_dir: RunDir = None,
       dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be pushed and opened; change nothing."),
       min_confidence: str = typer.Option("high", "--min-confidence",
                                          help="Open a pull request only at or above this confidence of the "
                                               "overfitting guard: high, unknown or low (low: always)."),
       base_url: BaseUrl = None, model: Model = None, model_path: ModelPath = None, backend: Backend = None,
       profile: Profile = None, rounds: Rounds = None, samples: Samples = None,
       sandbox: SandboxKind = None, image: Image = None, python: Python = None, no_build: NoBuild = False,
       deps: Deps = None, known_failures: KnownFailures = None, test_timeout: TestTimeout = None,
       allow_test_edits: AllowTestEdits = False, no_trace: NoTrace = False, no_sbfl: NoSbfl = False,
       no_worker: NoWorker = False,
       strategies: Strategies = None, search_lines: SearchLines = None, max_candidates: MaxCandidates = None,
       infill_samples: InfillSamples = None, plausible: Plausible = None,
       index_url: IndexUrl = None, find_links: FindLinks = None):
    """CI bot: repair PATH and open a pull request with the fix.

    The pull request (opened, or updated) carries a fix the full suite proves.

    A fix below --min-confidence gets no pull request: the diagnosis and the candidates (the
    plausible patches, with the input on which they disagree) go to the job summary and the log,
    and the exit code is 1, as for no fix.

    The model, the sandbox and the search are chosen as for `fix` (flags or REPAIR_AGENT_*). The repository's [tool.repair-agent]
    is never trusted (no --trust-repo-config): it is the code under test, maybe a pull request's;
    its known_failures are ignored too (--known-failures names them).

    The token comes from the environment only (GITHUB_TOKEN); it never reaches the sandbox,
    the prompts or the run records."""
    import os

    from ..ci.publish import publish_fix
    from ..config import Settings
    from ..fix import run_fix
    from ..judge.guard import CONFIDENCE
    from ..redact import redact

    out = PipeConsole()
    if min_confidence not in CONFIDENCE:
        console.print(f"[bold red]error:[/bold red] --min-confidence {escape(min_confidence)}: use high, unknown or low")
        raise typer.Exit(2)
    on_signals()  # a cancelled CI job sends SIGTERM: unwind, so the sandbox's containers go
    pip_pass_through(index_url, find_links)
    try:
        settings = Settings.load(path, under_review=True, warn=warn, **settings_flags(locals()))
        result = run_fix(path, settings, runs_root=run_dir, log=lambda m: log(redact(m)))
        done = publish_fix(path, result, remote=remote, base=base, github_repo=github_repo, api_url=github_api_url,
                           token=os.environ.get("GITHUB_TOKEN"), dry_run=dry_run,
                           log=lambda m: out.print(m, markup=False, highlight=False), min_confidence=min_confidence)
    except RepairAgentError as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        interrupted(exc, path, run_dir)
    if done.get("held"):  # a fix, held back below --min-confidence: no pull request, as with no fix
        log(f"no pull request: {done['held']}")
        raise typer.Exit(EXIT["not_fixed"])
    raise typer.Exit(EXIT.get(result["status"], 3))
