"""Batched sampling (repair_agent.llm.batched, and the server that answers `n` with it) against
llama-cpp-python's single requests, with a real model (smollm2-135m).

Where sampling is deterministic the answers must be the same: greedy, every one of n sequences is
the single greedy request's answer; with a seed, two calls give the same n answers. (llama.cpp's
float sums depend on the shape of the batch and on where a sequence's cells lie in the KV cache,
so a near tie between two tokens can go either way; the prompt here has none in its first tokens.)
"""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from model_server import MODEL, requires_llama_cpp, running_server, smollm_gguf  # noqa: E402,F401

from repair_agent.llm.client import OpenAIModel, Sampling  # noqa: E402

pytestmark = [pytest.mark.model, requires_llama_cpp]

CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"  # SmolLM2's chat layout, as a raw prompt
PROMPT = CHAT.format("Write a Python function that returns the sum of two numbers.")
COLORS = CHAT.format("Name three colors.")  # a greedy answer without near ties in either server's settings


@pytest.fixture(scope="module")
def llama(smollm_gguf):  # noqa: F811
    import llama_cpp

    return llama_cpp.Llama(str(smollm_gguf), n_ctx=1024, verbose=False)


@pytest.fixture(scope="module")
def sampler(llama):
    from repair_agent.llm.batched import BatchedSampler

    s = BatchedSampler(llama)
    yield s
    s.close()


def single(llama, prompt: str = PROMPT, **kwargs) -> tuple[str, str]:
    """llama-cpp-python's own answer to one request: one sequence."""
    c = llama.create_completion(prompt, **kwargs)["choices"][0]
    return c["text"], c["finish_reason"]


def test_greedy_samples_are_the_single_greedy_answer(llama, sampler):
    alone = single(llama, max_tokens=24, temperature=0.0)
    result = sampler.complete(PROMPT, n=4, max_tokens=24, temp=0.0)
    assert result.choices == [alone] * 4
    assert alone[1] == "length" and result.completion_tokens == 4 * 24
    assert result.prompt_tokens == len(llama.tokenize(PROMPT.encode(), special=True))


def test_seeded_samples_are_reproducible_and_distinct(sampler):
    first = sampler.complete(PROMPT, n=6, max_tokens=16, temp=0.9, seed=7).choices
    again = sampler.complete(PROMPT, n=6, max_tokens=16, temp=0.9, seed=7).choices
    assert first == again
    assert len({text for text, _ in first}) > 1  # sample i is seeded 7 + i: not six copies of one answer
    other = sampler.complete(PROMPT, n=6, max_tokens=16, temp=0.9, seed=8).choices
    assert other[:5] == first[1:]  # seeds 8..13: the samples of seeds 8..12 again


def test_stop_strings_end_a_sample_as_a_single_request_ends_it(llama, sampler):
    alone = single(llama, max_tokens=40, temperature=0.0, stop=["(", "\n\n"])
    result = sampler.complete(PROMPT, n=3, max_tokens=40, temp=0.0, stop=["(", "\n\n"])
    assert alone[1] == "stop" and "(" not in alone[0]
    assert result.choices == [alone] * 3


def test_requests_at_once_share_the_decode_steps(llama, sampler):
    """A request that comes while another runs joins its steps; each gets the answers it gets alone."""
    prompts = [PROMPT, PROMPT.replace("sum of two numbers", "largest of three numbers")]
    alone = [single(llama, p, max_tokens=48, temperature=0.0) for p in prompts]
    sampler.most_requests = 0
    futures = [sampler.submit(sampler.tokenize(p), n=2, max_tokens=48, temp=0.0) for p in prompts]
    assert [f.result(timeout=120).choices for f in futures] == [[a] * 2 for a in alone]
    assert sampler.most_requests == 2  # (the second came before the first's 48 steps were done)


def test_refused_requests(sampler):
    with pytest.raises(ValueError, match="exceed context window"):
        sampler.submit(list(range(2000)), n=1)
    with pytest.raises(ValueError, match="n must be between 1 and"):
        sampler.submit([1, 2, 3], n=0)
    with pytest.raises(ValueError, match="need more than the 2048 cells of the KV cache"):
        sampler.submit([1, 2, 3], n=4, max_tokens=600)  # (the server asks llama-cpp-python 4 times instead)


def test_the_server_answers_n_in_one_request_as_single_requests(smollm_gguf):  # noqa: F811
    """Over HTTP, the way the agent asks: n samples in one request against n requests of one sample
    to llama-cpp-python's own server."""
    greedy = Sampling(n=3, temperature=0.0, max_tokens=24)
    seeded = Sampling(n=4, temperature=0.9, max_tokens=16, seed=11)
    with running_server(MODEL, batched=False) as stock:
        one_by_one = OpenAIModel(stock.base_url, batch_n=False)
        alone = one_by_one.complete(COLORS, greedy)
    with running_server(MODEL) as server:
        model = OpenAIModel(server.base_url)
        gen = model.complete(COLORS, greedy)
        s1, s2 = model.complete(PROMPT, seeded), model.complete(PROMPT, seeded)
        log = server.log_path.read_text(errors="replace")
    assert alone.requests == 3 and gen.requests == 1 and model.batch_n is True
    assert len(re.findall(r'"POST /v1/completions HTTP/1\.1" 200', log)) == 3  # one request for each call
    assert gen.completions == alone.completions  # texts and finish reasons
    assert len({c["text"] for c in alone.completions}) == 1 and "Red" in alone.completions[0]["text"]
    assert gen.completion_tokens == alone.completion_tokens and gen.prompt_tokens * 3 == alone.prompt_tokens
    assert [c["text"] for c in s1.completions] == [c["text"] for c in s2.completions]
    assert len({c["text"] for c in s1.completions}) > 1


def test_what_is_not_sampled_together_is_answered_one_by_one(smollm_gguf):  # noqa: F811
    """Chat, and completions whose samples could not share the KV cache: llama-cpp-python's request
    n times, the answers in one."""
    with running_server(MODEL, n_ctx=2048) as server:  # a KV cache of 4096 cells for the sampler
        model = OpenAIModel(server.base_url)
        ask = [{"role": "user", "content": "Name a Python keyword."}]
        gen = model.generate(ask, Sampling(n=3, temperature=0.9, max_tokens=8, seed=5))
        again = model.generate(ask, Sampling(n=3, temperature=0.9, max_tokens=8, seed=5))
        long = model.complete(COLORS, Sampling(n=4, temperature=0.0, max_tokens=1024))  # 4 * 1024 cells and more
        alone = model.complete(COLORS, Sampling(n=1, temperature=0.0, max_tokens=24))
    assert gen.requests == 1 and len(gen.completions) == 3 and model.batch_n is True
    assert [c["text"] for c in gen.completions] == [c["text"] for c in again.completions]
    assert long.requests == 1 and [c["text"] for c in long.completions] == [alone.completions[0]["text"]] * 4


def test_servers_in_parallel_threads_get_their_own_answers(smollm_gguf):  # noqa: F811
    """Two workers asking at once (the search's --workers 2): each gets what it gets alone."""
    prompts = [PROMPT, PROMPT.replace("sum of two numbers", "largest of three numbers")]
    s = Sampling(n=3, temperature=0.0, max_tokens=32)
    with running_server(MODEL) as server:
        model = OpenAIModel(server.base_url)
        alone = [[c["text"] for c in model.complete(p, s).completions] for p in prompts]
        together: list = [None, None]

        def ask(i: int) -> None:
            together[i] = [c["text"] for c in model.complete(prompts[i], s).completions]

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert together == alone
