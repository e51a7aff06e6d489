"""`bench`: the agent over a benchmark's tasks, rescoring, and comparing runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ..errors import RepairAgentError
from .console import PipeConsole, Terminated, console, fail, log, on_signals
from .options import (PLAIN, BaseUrl, Deps, FindLinks, Image, IndexUrl, MaxCandidates, Model, NoBuild, NoSbfl,
                      NoTrace, NoWorker, Rounds, Samples, SandboxKind, Strategies, pip_pass_through, settings_flags)

bench_app = typer.Typer(help="Benchmarks: fix and self-refinement rates.", **PLAIN)


def _bench(dataset: str, data: Optional[Path], out: Optional[Path], ids: Optional[str], limit: Optional[int],
           workers: int, single_shot: bool, flags: dict, per_test_timeout: int = 5, ray: Optional[str] = None,
           loader: Optional[dict] = None):
    """`flags`: the command's shared flags as Settings overrides (options.settings_flags)."""
    from ..bench.datasets import load_dataset
    from ..bench.runner import run_benchmark
    from ..bench.report import print_summary
    from ..config import Settings

    on_signals()  # SIGINT and SIGTERM end the run at once; its server and containers go (run_benchmark)
    mode = "single-shot" if single_shot else "agent"
    out = out or Path("benchmarks/results") / f"{dataset}-{mode}"
    try:
        tasks = load_dataset(dataset, data, ids=ids.split(",") if ids else None, limit=limit, **(loader or {}))
        settings = Settings.load(None, test_timeout_s=180, per_test_timeout_s=per_test_timeout, **flags)
        settings.strategy_list()  # an unknown strategy is bad input, before any task runs
        summary = run_benchmark(tasks, settings, out, mode=mode, workers=workers, log=log, data=data, ray=ray)
    except RepairAgentError as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        console.print(f"[yellow]interrupted[/yellow] by {name}: the finished tasks and their summary are in "
                      f"{escape(str(out))}; run the same command again to resume", highlight=False, soft_wrap=True)
        raise typer.Exit(143 if name == "SIGTERM" else 130)
    print_summary(summary, PipeConsole())
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
PerTestTimeout = Annotated[int, typer.Option(min=1, help="Seconds one test may run before it fails.")]
RayAddress = Annotated[Optional[str], typer.Option("--ray", metavar="[ADDRESS]", help=(
    "Run the tasks on a Ray cluster (the `cluster` extra): its address, `auto` (RAY_ADDRESS), or no "
    "value for a local Ray with --workers sandbox slots. Each node offers a \"sandbox\" resource; "
    "each task opens --base-url on its node, and reads the paths it is given (--data, --repos) on it."))]
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
        sandbox: SandboxKind = None, image: Image = None, no_build: NoBuild = False, deps: Deps = None,
        no_trace: NoTrace = False, no_sbfl: NoSbfl = False, no_worker: NoWorker = False,
        strategies: Strategies = None, max_candidates: MaxCandidates = None, per_test_timeout: PerTestTimeout = 5,
        ray: RayAddress = None, index_url: IndexUrl = None, find_links: FindLinks = None,
    ):
        pip_pass_through(index_url, find_links)
        if needs_data and data is None:
            console.print(f"[bold red]error:[/bold red] bench {dataset} needs --data FILE")
            raise typer.Exit(2)
        _bench(dataset, data, out, ids, limit, workers, single_shot, settings_flags(locals()), per_test_timeout, ray)

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
    sandbox: SandboxKind = None, image: Image = None, no_build: NoBuild = False, deps: Deps = None,
    no_trace: NoTrace = False, no_sbfl: NoSbfl = False, no_worker: NoWorker = False,
    strategies: Strategies = None, max_candidates: MaxCandidates = None, per_test_timeout: PerTestTimeout = 5,
    ray: RayAddress = None, index_url: IndexUrl = None, find_links: FindLinks = None,
):
    """Run the agent over BugsInPy's real bugs.

    A task is a bug's buggy commit with the fixed commit's test files; its failing tests are
    run_test.sh's, its Python the closest base image to bug.info's, its dependencies its
    requirements.txt. A bug whose tests pass on the buggy code, or fail with the human fix
    (bug_patch.txt, never shown to the agent), is recorded as not reproduced and not run."""
    pip_pass_through(index_url, find_links)
    flags = settings_flags(locals())
    loader = {"repos": repos, "evaluation": evaluation,
              "projects": [p.strip() for p in projects.split(",") if p.strip()] if projects else None}
    _bench("bugsinpy", data, out, ids, limit, workers, single_shot, flags, per_test_timeout, ray, loader)


@bench_app.command("rescore")
def bench_rescore(
    dirs: list[Path] = typer.Argument(..., help="Results folders (each with records.jsonl)."),
    data: Optional[Path] = typer.Option(None, help="The dataset file (HumanEvalFix: its reference solutions)."),
    sandbox: str = typer.Option("docker", help="Where the patched code runs (docker, or local: no isolation)."),
    repos: BugsInPyRepos = None,
):
    """Check earlier runs' plausible fixes against the reference.

    The results folders' records and summaries are rewritten with the verdicts."""
    from ..bench.runner import rescore
    from ..bench.report import print_summary
    from ..errors import BadInput

    for d in dirs:
        try:
            summary = rescore(d, data=data, sandbox=sandbox, log=log, repos=repos)
        except RepairAgentError as exc:
            fail(exc)
        except (ValueError, OSError) as exc:  # no records, a task id the dataset lacks, no --data
            fail(BadInput(f"{d}: {exc}"))
        print_summary(summary, PipeConsole())


@bench_app.command("compare")
def bench_compare(dirs: list[Path] = typer.Argument(..., help="Results folders of `bench` runs."),
                  out: Optional[Path] = typer.Option(None, help="Where the plot goes.")):
    """Several result folders side by side: a table and one plot."""
    from ..bench.summary import compare

    _, png = compare(dirs, out=out, console=PipeConsole())
    console.print(f"plot: {png}")
