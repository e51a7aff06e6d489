"""Choose the model: a server at --base-url, or the embedded default served on this machine once the
first request is due."""

from __future__ import annotations

import os
import threading
from contextlib import ExitStack, contextmanager
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
    gguf = model_files.resolve_gguf(name)  # not installed: said now, before the run
    alias = str(settings.model or gguf.stem)

    with ExitStack() as stack:
        def serve() -> Model:
            log(f"serving {gguf.name} with llama.cpp on loopback")
            # all cores: on 2 idle cores, 46 tok/s in-process vs 30 with llama.cpp's default of half
            # (benchmarks/model_speed.py --threads 2 | 1)
            server = stack.enter_context(start_llama_server(gguf, model_alias=alias, n_threads=os.cpu_count()))
            # the server takes `n`: a hole's samples in one request, decoded together
            return OpenAIModel(server.base_url, None, timeout=settings.model_timeout_s)

        yield ServedOnDemand(alias, serve)


class ServedOnDemand:
    """The embedded model, whose server starts when the first request is due (the first use of
    anything but its name and endpoint), not before: a run that ends before it asks the model (an
    environment fault, no failing test, a fix the mutation search found without it) starts none."""

    def __init__(self, name: str, start: Callable[[], Model]):
        self.name, self.endpoint = name, "chat"  # known without a server: the profile is chosen by name
        self._start, self._model, self._lock = start, None, threading.Lock()

    def __getattr__(self, attr):  # only what the instance lacks: generate, complete, base_url, ...
        if attr.startswith("__") or attr in ("_start", "_model", "_lock"):
            raise AttributeError(attr)
        with self._lock:  # search threads may ask at once: one server
            if self._model is None:
                self._model = self._start()
                self._model.endpoint = self.endpoint
        return getattr(self._model, attr)

    def __setattr__(self, attr, value):
        super().__setattr__(attr, value)
        if attr == "endpoint" and self.__dict__.get("_model") is not None:
            self._model.endpoint = value
