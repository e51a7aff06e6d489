"""Start a model server with an OpenAI-compatible API: vLLM (GPU, production) or llama.cpp (CPU).

`serve(...)` returns a `ServerHandle` once GET /v1/models answers; its `base_url` is what
`OpenAIModel(base_url)` wants, `.wait()` blocks in the foreground and `.stop()` ends the server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import BadInput
from .llm.llamacpp import MissingExtra, ServerHandle, free_port, launch, start_llama_server

SERVE_HINT = "pip install -e '.[serve]'"
ENGINES = ("vllm", "llama-cpp")
DEFAULT_VLLM_MODEL = "semcoder/semcoder_s_1030"


def vllm_command(model: str = DEFAULT_VLLM_MODEL, port: int = 8000, gpu_memory_utilization: float = 0.9,
                 tensor_parallel_size: int = 1, max_model_len: int = 4096, served_model_name: str = "semcoder",
                 host: str = "127.0.0.1", dtype: str = "bfloat16", extra_args: list[str] | tuple = (),
                 pipeline_parallel_size: int = 1) -> list[str]:
    """The model split over tensor_parallel_size x pipeline_parallel_size GPUs (vLLM's own flags)."""
    return ["vllm", "serve", model, "--max-model-len", str(max_model_len), "--dtype", dtype,
            "--served-model-name", served_model_name, "--host", host, "--port", str(port),
            "--gpu-memory-utilization", str(gpu_memory_utilization),
            "--tensor-parallel-size", str(tensor_parallel_size),
            *(["--pipeline-parallel-size", str(pipeline_parallel_size)] if pipeline_parallel_size != 1 else []),
            *extra_args]


def vllm_executable() -> str | None:
    """The `vllm` console script: on PATH, or beside this interpreter (an unactivated venv)."""
    found = shutil.which("vllm")
    if found:
        return found
    beside = Path(sys.executable).parent / "vllm"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def vllm_available() -> bool:
    return vllm_executable() is not None


def gpu_count() -> int:
    """NVIDIA GPUs that `nvidia-smi -L` lists (0 without the tool or a driver)."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    if out.returncode != 0:
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def require_vllm(tensor_parallel_size: int = 1, pipeline_parallel_size: int = 1) -> None:
    if not vllm_available():
        raise MissingExtra(f"vLLM is not installed: run {SERVE_HINT} on a machine with an NVIDIA GPU "
                           f"(vLLM has no CPU build; on a CPU use `--engine llama-cpp`)")
    n = gpu_count()
    if n == 0:
        raise MissingExtra("vLLM needs an NVIDIA GPU and none was found (`nvidia-smi -L` lists none); "
                           "on a CPU use `--engine llama-cpp`")
    need = tensor_parallel_size * pipeline_parallel_size
    if n < need:  # on one machine; vLLM spans machines only through a Ray cluster of its own (not checked here)
        raise BadInput(f"--tensor-parallel-size {tensor_parallel_size} x --pipeline-parallel-size "
                       f"{pipeline_parallel_size} needs {need} GPUs, found {n}")


def serve(engine: str = "vllm", model: str | None = None, port: int | None = None, host: str = "127.0.0.1",
          max_model_len: int = 4096, gpu_memory_utilization: float = 0.9, tensor_parallel_size: int = 1,
          served_model_name: str | None = None, n_threads: int | None = None, timeout: float | None = None,
          log_path: str | os.PathLike | None = None, extra_args: list[str] | tuple = (),
          die_with_parent: bool = True, pipeline_parallel_size: int = 1) -> ServerHandle:
    """Start the server and wait until GET /v1/models answers; the handle's `base_url` is the API root.

    vllm: `model` is a Hugging Face id or a local directory (default SemCoder), served as
    `served_model_name` (default "semcoder"). llama-cpp: `model` is a registry name from
    `repair_agent.llm.model_files` (default qwen2.5-coder-0.5b) or a GGUF path.
    """
    if engine == "vllm":
        require_vllm(tensor_parallel_size, pipeline_parallel_size)
        port = port or free_port(host)
        cmd = vllm_command(model or DEFAULT_VLLM_MODEL, port, gpu_memory_utilization, tensor_parallel_size,
                           max_model_len, served_model_name or "semcoder", host, extra_args=extra_args,
                           pipeline_parallel_size=pipeline_parallel_size)
        cmd[0] = vllm_executable() or "vllm"
        # A 6.7B model: download + load + CUDA graphs take minutes.
        return launch(cmd, host, port, "vLLM server", timeout or 1800, log_path=log_path,
                      die_with_parent=die_with_parent)
    if engine in ("llama-cpp", "llama.cpp", "llamacpp"):
        return start_llama_server(model or "qwen2.5-coder-0.5b", port=port, n_ctx=max_model_len, host=host,
                                  n_threads=n_threads, model_alias=served_model_name, timeout=timeout or 120,
                                  log_path=log_path, die_with_parent=die_with_parent)
    raise BadInput(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
