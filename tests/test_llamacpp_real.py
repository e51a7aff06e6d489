"""The OpenAI client and the in-process backend against a real llama.cpp model (smollm2-135m)."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from model_server import (MODEL, llama_server, private_llama_server, requires_llama_cpp,  # noqa: E402,F401
                          running_server, smollm_gguf)

from repair_agent.errors import BadInput, ModelError, PromptTooLong  # noqa: E402
from repair_agent.llm.client import OpenAIModel, Sampling  # noqa: E402
from repair_agent.llm.profiles import profile_for  # noqa: E402

pytestmark = [pytest.mark.model, requires_llama_cpp]

ASK = [{"role": "user", "content": "Write a Python function that returns the sum of two numbers."}]


def test_server_lists_the_model(llama_server):
    with urllib.request.urlopen(llama_server.base_url + "/models", timeout=10) as resp:
        ids = [m["id"] for m in json.load(resp)["data"]]
    assert ids == [MODEL]
    assert OpenAIModel(llama_server.base_url).name == MODEL
    assert llama_server.base_url.startswith("http://127.0.0.1:")


def test_chat_completion_with_token_counts(llama_server):
    model = OpenAIModel(llama_server.base_url)
    gen = model.generate(ASK, Sampling(max_tokens=24))
    assert len(gen.completions) == 1
    c = gen.completions[0]
    assert c["text"].strip()
    assert c["finish_reason"] in ("stop", "length")
    assert gen.prompt_tokens > 5 and 0 < gen.completion_tokens <= 24
    assert gen.seconds > 0
    # greedy is repeatable once the prompt is in llama.cpp's cache (a cold first call may differ:
    # batched prompt evaluation rounds differently, and a near-tie can flip, e.g. an early EOS)
    warm = [model.generate(ASK, Sampling(max_tokens=24)).completions[0]["text"] for _ in range(2)]
    assert warm[0] == warm[1]


def test_max_tokens_caps_the_answer(llama_server):
    gen = OpenAIModel(llama_server.base_url).generate(ASK, Sampling(max_tokens=3))
    assert gen.completion_tokens == 3
    assert gen.completions[0]["finish_reason"] == "length"


def test_n3_falls_back_to_one_request_per_sample(smollm_gguf):
    with running_server(MODEL, batched=False) as stock:  # llama-cpp-python's own server: no `n`
        model = OpenAIModel(stock.base_url)  # batch_n=True: asks for n=3 in one request first
        gen = model.generate(ASK, Sampling(n=3, temperature=0.9, top_p=0.95, max_tokens=16, seed=7))
    assert len(gen.completions) == 3
    assert all(c["text"].strip() for c in gen.completions)
    assert model.batch_n is False  # llama.cpp answered one choice, so the client switched to several requests
    assert gen.prompt_tokens > 0 and gen.completion_tokens >= 3


def test_completions_endpoint_with_the_semcoder_layout(llama_server):
    profile = profile_for("semcoder")
    msgs = profile.render([{"role": "system", "content": "Complete the Python code."},
                           {"role": "user", "content": "def add(a, b):"}])
    model = OpenAIModel(llama_server.base_url, endpoint="completions")
    gen = model.generate(msgs, Sampling(max_tokens=12, stop=profile.stop))
    assert len(gen.completions) == 1 and gen.completion_tokens > 0
    assert gen.completions[0]["finish_reason"] in ("stop", "length")


def test_killing_the_server_mid_request_gives_model_error(private_llama_server):
    model = OpenAIModel(private_llama_server.base_url, retries=1, timeout=30)
    errors: list[BaseException] = []

    def long_request():
        try:
            model.generate(ASK, Sampling(max_tokens=1500, temperature=0.8))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=long_request)
    t.start()
    time.sleep(0.7)  # the request is in flight
    private_llama_server.proc.kill()
    t.join(60)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ModelError), errors
    msg = str(errors[0])
    assert private_llama_server.base_url in msg and "failed" in msg
    # later calls: the clear "connection refused" message, not a traceback from the SDK
    with pytest.raises(ModelError, match="connection refused"):
        model.generate(ASK, Sampling(max_tokens=4))


def test_in_process_model(smollm_gguf):
    from repair_agent.llm.llamacpp import LlamaCppModel

    model = LlamaCppModel(MODEL, n_ctx=1024)
    assert model.name == MODEL
    s = Sampling(n=3, temperature=0.9, max_tokens=12, seed=11)
    model.generate(ASK, s)  # warm the prompt cache: a cold prompt evaluation rounds differently
    gen = model.generate(ASK, s)
    assert len(gen.completions) == 3
    assert gen.prompt_tokens > 0 and 3 <= gen.completion_tokens <= 36
    again = model.generate(ASK, s)
    assert [c["text"] for c in again.completions] == [c["text"] for c in gen.completions]  # seeded
    assert len({c["text"] for c in gen.completions}) > 1  # distinct seeds per sample
    greedy = model.generate(ASK, Sampling(max_tokens=8))
    assert greedy.completion_tokens <= 8 and greedy.completions[0]["text"]


def test_in_process_rejects_a_prompt_longer_than_the_context(smollm_gguf):
    from repair_agent.llm.llamacpp import LlamaCppModel

    model = LlamaCppModel(smollm_gguf, name="tiny-ctx", n_ctx=64)
    with pytest.raises(PromptTooLong, match="refused the request: the prompt has at least 2.. tokens but the "
                                         "context window \\(n_ctx\\) is 64"):
        model.generate([{"role": "user", "content": "word " * 200}], Sampling(max_tokens=4))


def test_start_server_rejects_unknown_model():
    from repair_agent.llm.llamacpp import start_llama_server

    with pytest.raises(BadInput, match="neither a known model"):
        start_llama_server("no-such-model")


def test_server_that_cannot_load_reports_its_log(tmp_path):
    from repair_agent.llm.llamacpp import start_llama_server

    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf file" * 10)
    t = time.monotonic()
    with pytest.raises(ModelError, match="exited with code"):
        start_llama_server(bogus, timeout=60)
    assert time.monotonic() - t < 60


def test_server_dies_with_a_killed_parent(smollm_gguf):
    """die_with_parent: SIGKILL on the process that started the server leaves no orphan behind."""
    import os
    import signal
    import subprocess

    code = ("from repair_agent.llm.llamacpp import start_llama_server\n"
            "import time\n"
            f"h = start_llama_server({MODEL!r}, n_ctx=512, die_with_parent=True)\n"
            "print(h.pid, flush=True)\n"
            "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1])
    try:
        server_pid = int(parent.stdout.readline())
        os.kill(server_pid, 0)  # running
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(server_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(server_pid, signal.SIGKILL)
            pytest.fail("the llama.cpp server outlived its killed parent")
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_prompt_longer_than_the_servers_context_is_the_requests_fault_not_the_servers(llama_server):
    """youtube-dl-1's refine prompt (4,102 tokens and 1,024 to answer, against 4,096) raised a
    ModelError, which ends a whole benchmark; it is PromptTooLong, the task's own error, and the
    server goes on answering."""
    model = OpenAIModel(llama_server.base_url)
    with pytest.raises(PromptTooLong, match="refused the request: .*context length"):
        model.generate([{"role": "user", "content": "word " * 20000}], Sampling(max_tokens=8))
    assert model.generate(ASK, Sampling(max_tokens=4)).completion_tokens > 0
