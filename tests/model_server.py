"""A real llama.cpp server with a small real model, for tests.

    from model_server import llama_server, smollm_gguf   # fixtures (module-scoped server)

    def test_x(llama_server):
        OpenAIModel(llama_server.base_url) ...

or, outside pytest, `with running_server() as handle: ...`. The model (smollm2-135m, 98 MB) is
installed once into the normal cache ($REPAIR_AGENT_HOME/models, default ~/.cache/repair-agent)
with `repair_agent.llm.model_files.install`; an install failure fails the test (it is not skipped).
Without llama-cpp-python (the `local` extra) the tests that use these fixtures are skipped.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

import pytest

MODEL = "smollm2-135m"


def have_llama_cpp() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("uvicorn") is not None


requires_llama_cpp = pytest.mark.skipif(not have_llama_cpp(), reason="llama-cpp-python[server] not installed "
                                        "(pip install -e '.[local]')")


def install_model(name: str = MODEL) -> Path:
    from repair_agent.llm.model_files import install

    return install(name, log=lambda msg: None)


@contextlib.contextmanager
def running_server(name: str = MODEL, n_ctx: int = 2048, **kwargs):
    """Start the agent's llama.cpp server (`batched=False`: llama-cpp-python's own) with model `name` on a
    free loopback port."""
    from repair_agent.llm.llamacpp import start_llama_server

    install_model(name)
    kwargs.setdefault("die_with_parent", True)  # no orphaned servers when pytest is killed
    handle = start_llama_server(name, n_ctx=n_ctx, timeout=120, **kwargs)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def smollm_gguf() -> Path:
    if not have_llama_cpp():
        pytest.skip("llama-cpp-python not installed (pip install -e '.[local]')")
    return install_model(MODEL)


@pytest.fixture(scope="module")
def llama_server(smollm_gguf):
    """A llama.cpp server shared by one test module; its model id is "smollm2-135m"."""
    with running_server(MODEL) as handle:
        yield handle


@pytest.fixture
def private_llama_server(smollm_gguf):
    """A server of one's own, for tests that kill it."""
    with running_server(MODEL) as handle:
        yield handle
