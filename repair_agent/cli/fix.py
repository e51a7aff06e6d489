"""`fix` and `explain`: one repair run on the user's repository (cli/__init__.py registers them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import RepairAgentError
from .console import EXIT, broken_pipe, console, fail, interrupted, log, on_signals, unexpected, warn
from .options import (AllowTestEdits, Backend, BaseUrl, Deps, FindLinks, Image, IndexUrl, InfillSamples,
                      KnownFailures, MaxCandidates, Model, ModelPath, NoBuild, NoSbfl, NoTrace, NoWorker, Plausible,
                      Profile, Python, Rounds, RunDir, Samples, SandboxKind, SearchLines, Strategies, Test,
                      TestTimeout, TrustRepo, pip_pass_through, settings_flags)
from .render import show, show_diagnosis

FIX_EPILOG = """\b
Exit codes: 0 fixed, or no failing test; 1 no fix found; 2 bad input (an
environment fault included: a missing module, fixture or file); 3 infrastructure
(the sandbox or the model unreachable); 130 or 143 interrupted (SIGINT, SIGTERM;
--resume RUN_ID continues); 141 the output's reader went away (| head).

\b
Typical run time on 2 CPU cores: about a minute when the mutation search finds
the fix (examples/median); a model round with the embedded CPU model takes
minutes (4 to 18 were seen), seconds against a GPU server (vLLM).
"""


def fix(
    path: Path = typer.Argument(Path("."), help="The repository (a git work tree)."),
    test: Test = None,
    base_url: BaseUrl = None, model: Model = None, model_path: ModelPath = None, backend: Backend = None,
    profile: Profile = None, rounds: Rounds = None, samples: Samples = None,
    sandbox: SandboxKind = None, image: Image = None, python: Python = None, no_build: NoBuild = False,
    deps: Deps = None, known_failures: KnownFailures = None, test_timeout: TestTimeout = None,
    trust_repo_config: TrustRepo = False,
    apply: bool = typer.Option(False, "--apply", help="Write the fix into the working tree."),
    branch: Optional[str] = typer.Option(None, metavar="NAME", help="Commit the fix on a new branch NAME "
                                         "(the checkout stays as it is)."),
    add_tests: bool = typer.Option(False, "--add-tests", help="With --apply or --branch: add the test written "
                                   "where the plausible patches disagree (the deciding input, the chosen "
                                   "patch's result)."),
    json_out: Optional[Path] = typer.Option(None, "--json", metavar="FILE", help="Write the result as JSON to FILE."),
    run_dir: RunDir = None,
    resume: Optional[str] = typer.Option(None, metavar="RUN_ID", help="Continue the interrupted run RUN_ID."),
    allow_test_edits: AllowTestEdits = False, no_trace: NoTrace = False, no_sbfl: NoSbfl = False,
    no_worker: NoWorker = False,
    strategies: Strategies = None, search_lines: SearchLines = None, max_candidates: MaxCandidates = None,
    infill_samples: InfillSamples = None, plausible: Plausible = None,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live status line; one log line per step "
                                                           "(also when stderr is not a terminal)."),
    index_url: IndexUrl = None, find_links: FindLinks = None,
):
    """Find a validated fix for the failing tests of PATH."""
    on_signals()
    from ..ci.pr_text import commit_message
    from ..config import Settings
    from ..deciding_test import as_new_file
    from ..fix import run_fix
    from ..patching import apply_to_tree, commit_on_branch
    from ..progress import Progress

    if apply and branch:
        console.print("[bold red]error:[/bold red] --apply and --branch exclude each other")
        raise typer.Exit(2)
    if add_tests and not (apply or branch):
        console.print("[bold red]error:[/bold red] --add-tests goes with --apply or --branch NAME")
        raise typer.Exit(2)
    pip_pass_through(index_url, find_links)
    try:
        settings = Settings.load(path, trust_repo=trust_repo_config, warn=warn, **settings_flags(locals()))
        with Progress(console, log, quiet=quiet) as progress:  # the live status line (progress.py)
            result = run_fix(path, settings, runs_root=run_dir, resume=resume, log=progress.log, progress=progress)
        patch, test = result["patch"], result.get("deciding_test") if add_tests else None
        if test:  # the test goes in with the fix, as a new file
            patch += as_new_file(test["path"], Path(test["file"]).read_text(encoding="utf-8"))
        elif add_tests and result["status"] == "fixed":
            log("no test to add: the plausible patches did not disagree on a plain input")
        if result["status"] == "fixed" and apply:
            apply_to_tree(path, patch)
            log(f"applied the fix{' and ' + test['path'] if test else ''} to the working tree")
        if result["status"] == "fixed" and branch:
            sha = commit_on_branch(path, patch, branch, commit_message(result, pull_request=False))
            log(f"committed the fix{' and ' + test['path'] if test else ''} on branch {branch} ({sha[:10]})")
    except RepairAgentError as exc:
        fail(exc)  # the run directory keeps what was recorded; --resume RUN_ID continues
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (see on_signals): the sandbox is gone by now
        interrupted(exc, path, run_dir)
    except BrokenPipeError:  # `fix ... 2>&1 | head`: the log's reader went away; run_fix dropped its tree
        broken_pipe()
    except Exception as exc:  # disk full, unwritable run dir, a bug: one line, never a traceback
        unexpected(exc)
    if json_out:
        json_out.write_text(json.dumps(result, indent=2))
    show(result)  # a reader gone here: the app's PipeGroup exits 141
    raise typer.Exit(EXIT.get(result["status"], 3))


def explain(
    path: Path = typer.Argument(Path("."), help="The repository (a git work tree)."),
    test: Test = None,
    base_url: BaseUrl = None, model: Model = None, model_path: ModelPath = None, backend: Backend = None,
    profile: Profile = None, sandbox: SandboxKind = None, image: Image = None, python: Python = None,
    no_build: NoBuild = False, deps: Deps = None, known_failures: KnownFailures = None,
    test_timeout: TestTimeout = None,
    json_out: Optional[Path] = typer.Option(None, "--json", metavar="FILE",
                                            help="Write the diagnosis as JSON to FILE."),
    run_dir: RunDir = None,
    no_sbfl: NoSbfl = False, no_worker: NoWorker = False,
    trust_repo_config: TrustRepo = False,
    index_url: IndexUrl = None, find_links: FindLinks = None,
):
    """Diagnose only, no patch: where the fault is, and why.

    Shows the ranked suspicious locations, the real execution trace of the first failing test, the
    model's root cause, and how faithful its execution simulation is to that trace."""
    from ..config import Settings
    from ..fix import run_fix

    pip_pass_through(index_url, find_links)
    try:
        settings = Settings.load(path, trust_repo=trust_repo_config, warn=warn, use_trace=True,
                                 **settings_flags(locals()))
        result = run_fix(path, settings, runs_root=run_dir, log=log, diagnose_only=True)
    except RepairAgentError as exc:
        fail(exc)
    if json_out:
        json_out.write_text(json.dumps(result, indent=2))
    show_diagnosis(result)
    raise typer.Exit(0)
