"""`eval`: the served model measured apart from repairs (`eval reasoning`: execution reasoning)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import RepairAgentError
from .console import PipeConsole, fail, log
from .options import PLAIN, Backend, BaseUrl, Model, ModelPath, Profile

eval_app = typer.Typer(help="Measure the served model itself, apart from repairs.", **PLAIN)


@eval_app.command("reasoning")
def reasoning(
    base_url: BaseUrl = None,
    model: Model = None,
    model_path: ModelPath = None,
    backend: Backend = None,
    profile: Profile = None,
    repos: str = typer.Option("quixbugs,mpmath", metavar="NAMES", help="The repositories, of quixbugs and "
                              "mpmath."),
    seed: int = typer.Option(0, metavar="N", help="The seed that chooses the items (the same seed, the same items)."),
    per_function: int = typer.Option(1, min=1, metavar="N", help="Items per function, at most."),
    limit: Optional[int] = typer.Option(None, min=1, metavar="N", help="Items per repository, at most (default: "
                                        "all that the per-function cap leaves)."),
    json_out: Optional[Path] = typer.Option(None, "--json", metavar="FILE", help="Write the whole result here: "
                                            "every item with its prompts, answers and verdicts."),
):
    """Execution reasoning, scored by running.

    The model predicts a function's output for an input, and an input for an output, in CRUXEval's
    manner, on functions of QuixBugs' programs and of mpmath, with the calls their own
    tests make (recorded in the Docker sandbox); every answer is scored by running the function there,
    never on this machine."""
    from ..config import Settings
    from ..eval.reasoning import evaluate
    from ..llm.factory import open_model

    try:
        settings = Settings.load(None, base_url=base_url, model=model, model_path=model_path, backend=backend,
                                 profile=profile)
        with open_model(settings, log=log) as served:
            result = evaluate(served, repositories=[r.strip() for r in repos.split(",") if r.strip()], seed=seed,
                              per_function=per_function, limit=limit, profile=settings.profile,
                              log=log)
    except RepairAgentError as exc:
        fail(exc)
    if json_out:
        json_out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    out = PipeConsole()
    s = result["scores"]
    out.print(f"{result['model']}: output prediction {s['output']['score']}% ({s['output']['correct']} of "
              f"{s['output']['items']}), input prediction {s['input']['score']}% ({s['input']['correct']} of "
              f"{s['input']['items']}); {result['seconds']:.0f}s, code {result['code']}", highlight=False)
    for name in result["repositories"]:
        if name in s:
            out.print(f"  {name}: output {s[name]['output']['score']}%, input {s[name]['input']['score']}% "
                      f"({s[name]['output']['items']} items)", highlight=False)
