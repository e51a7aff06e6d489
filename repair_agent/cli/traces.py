"""`traces`: training data, from run directories (export) or from mutants the tests catch (synth)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..errors import RepairAgentError
from .console import console, fail, log, warn
from .options import PLAIN, TrustRepo

traces_app = typer.Typer(help="Training data: run traces -> SFT records; synthetic bugs.", **PLAIN)


@traces_app.command("export")
def traces_export(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories, or folders holding them (searched recursively)."),
    out: Path = typer.Option(..., "--out", help="The JSONL file to write."),
    include_benchmark: Optional[list[str]] = typer.Option(
        None, "--include-benchmark", help="Keep runs of this benchmark (e.g. quixbugs, humanevalfix; all are left out "
        "by default); repeatable."),
    profile: Optional[str] = typer.Option(None, "--profile", help="The model profile whose infill prompt a search "
                                          "fix's record takes (default: the run's model's, else the embedded model's)."),
):
    """Write one record per validated fix.

    A refine fix: a PyX-R record (fault, response). A fix found by the search (mutate, infill):
    the infill prompt with the fixed line as the answer, and the explanation prompt with its
    checked answer. Duplicates and benchmark code are left out."""
    from ..training.export import export

    try:
        stats = export(run_dirs, out, include_benchmarks=include_benchmark or [], profile=profile)
    except FileNotFoundError as exc:
        console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2)
    console.print(f"{stats['records']} record(s) from {stats['runs']} run(s) -> {out} "
                  f"({stats['duplicates']} duplicate(s), excluded: {stats['excluded'] or 'none'})", highlight=False)
    for why, n in stats["skipped"].items():
        warn(f"{n} fix(es) skipped: {why}")


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
    profile: Optional[str] = typer.Option(None, "--profile", help="The model profile whose infill prompt the "
                                          "records take (default: the embedded model's)."),
    path: Optional[list[str]] = typer.Option(None, "--path", help="Mutate only the files under this (a file or "
                                             "folder of REPO, e.g. the package of an sdist); repeatable."),
    trust_repo_config: TrustRepo = False,
):
    """Synthetic bugs: mutants the tests catch, as infill training records.

    Non-test functions are mutated; a mutant is kept when the tests catch it, and becomes a record
    shaped as the agent's infill prompt (the mutated line masked, the original the answer).
    A repository holding QuixBugs, HumanEval or BugsInPy code is refused."""
    from ..config import Settings
    from ..sandbox import shell_args
    from ..training.synth import synth

    try:
        settings = Settings.load(repo, trust_repo=trust_repo_config, warn=warn, base_url=base_url, model=model,
                                 rounds=rounds, sandbox=sandbox, test=test) if run_agent else None
        summary = synth(repo, out, max_mutants=max_mutants, sandbox_kind=sandbox, seed=seed,
                        test_args=shell_args(test), run_agent=run_agent or None, settings=settings, profile=profile,
                        paths=path or None, log=log)
    except RepairAgentError as exc:
        fail(exc)
    console.print(f"{summary['kept']} of {summary['tried']} mutant(s) kept -> {out / 'mutants.jsonl'}; "
                  f"{summary['infill_records']} infill record(s) -> {out / 'infill.jsonl'}", highlight=False)
    if "agent" in summary:
        a = summary["agent"]
        console.print(f"agent fixed {a['fixed']} of {a['runs']}; {a['traces']} trace record(s) -> {a['traces_file']}",
                      highlight=False)
