"""Choose the model: a server at --base-url, or the embedded default served on this machine."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator

from ..config import Settings
from .client import Model, OpenAIModel

DEFAULT_MODEL = "qwen2.5-coder-0.5b"


@contextmanager
def open_model(settings: Settings, log: Callable[[str], None] = print) -> Iterator[Model]:
    if settings.base_url:
        yield OpenAIModel(settings.base_url, settings.model, api_key=settings.api_key,
                          timeout=settings.model_timeout_s)
        return
    if settings.backend == "transformers":
        from .transformers_backend import TransformersModel

        yield TransformersModel(settings.model_path or settings.model)
        return
    from . import model_files
    from .llamacpp import start_llama_server

    name = settings.model_path or settings.model or DEFAULT_MODEL
    gguf = model_files.resolve_gguf(name)
    log(f"serving {gguf.name} with llama.cpp on loopback")
    # all cores: on 2 idle cores, 46 tok/s in-process vs 30 with llama.cpp's default of half
    # (benchmarks/model_speed.py --threads 2 | 1)
    with start_llama_server(gguf, model_alias=str(settings.model or gguf.stem),
                            n_threads=os.cpu_count()) as server:
        yield OpenAIModel(server.base_url, None, timeout=settings.model_timeout_s, batch_n=False)
