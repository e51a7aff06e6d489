"""The `repair-agent` command line (typer + rich): the app and its command tree. Each command group
lives in its own module (fix, ci, bench, traces, models, sandbox); console.py holds what they share
(log lines, exit codes, errors and signals), options.py the shared flags, render.py the result pages."""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from . import bench, ci, eval, fix, models, sandbox, traces
from .console import broken_pipe
from .options import PLAIN


class App(typer.Typer):
    """Typer has no option with an optional value: a bare `--ray` (last, or before another option)
    becomes `--ray local` here, before parsing."""

    def __call__(self, *args, **kwargs):
        if not args and "args" not in kwargs:
            kwargs["args"] = bare_ray_means_local(sys.argv[1:])
        return super().__call__(*args, **kwargs)


class PipeGroup(TyperGroup):
    """Every command ends as `fix` does when its reader goes away (`| head`): exit 141, quietly
    (console.broken_pipe); click alone would exit 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            broken_pipe()


def bare_ray_means_local(argv: list[str]) -> list[str]:
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--ray" and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append("local")
    return out


app = App(help="An autonomous debug-and-repair agent for Python repositories.", add_completion=False, cls=PipeGroup,
          **PLAIN)
app.add_typer(sandbox.sandbox_app, name="sandbox")
app.add_typer(bench.bench_app, name="bench")
app.add_typer(traces.traces_app, name="traces")
app.add_typer(models.models_app, name="models")
app.add_typer(eval.eval_app, name="eval")
app.command(epilog=fix.FIX_EPILOG)(fix.fix)
app.command()(fix.explain)
app.command()(ci.ci)
app.command()(models.serve)


def main() -> None:  # pragma: no cover
    sys.exit(app())
