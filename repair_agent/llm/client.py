"""The model seam: messages in, completions with token counts out.

`OpenAIModel` speaks the OpenAI-compatible API through the official SDK, so the same client
works against vLLM, llama.cpp's server, Ollama or a hosted API. Besides `generate` (messages),
the backends here have `complete` (one raw prompt, e.g. a fill-in-the-middle layout, with the
mean token log-probability of each completion where the backend gives it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, TypedDict

from ..errors import ModelError, PromptTooLong


class _Completion(TypedDict):
    text: str
    finish_reason: str  # "stop" | "length" | ...


class Completion(_Completion, total=False):
    logprob: float  # mean token log-probability, when asked for (`complete`) and the server gives it


@dataclass
class Generation:
    completions: list[Completion]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    requests: int = 1  # one per sample where the server takes no `n`: each reports the whole prompt again


@dataclass
class Sampling:
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


class Model(Protocol):
    name: str

    def generate(self, messages: list[dict], sampling: Sampling) -> Generation: ...


class OpenAIModel:
    """An OpenAI-compatible server. `endpoint` is "chat" or "completions" (raw prompt)."""

    def __init__(self, base_url: str, name: str | None = None, api_key: str = "not-needed",
                 timeout: float = 300, retries: int = 3, endpoint: str = "chat", batch_n: bool = True):
        import openai

        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
        self.base_url = base_url
        self.retries = retries
        self.endpoint = endpoint
        self.batch_n = batch_n  # False for servers that ignore `n` (llama-cpp-python's own): one request per sample
        self.logprobs: bool | None = None  # whether /v1/completions returns logprobs; None: not asked yet
        self.name = name or self._first_model()

    def _call(self, fn, **kwargs):
        """Retry connection errors, timeouts, 429 and 5xx with exponential backoff."""
        import openai

        delay = 1.0
        for attempt in range(self.retries + 1):
            try:
                return fn(**kwargs)
            except (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError,
                    openai.InternalServerError) as exc:
                if attempt == self.retries:
                    raise ModelError(f"model server at {self.base_url} failed: {_describe(exc)}") from exc
                time.sleep(delay)
                delay *= 2
            except openai.APIStatusError as exc:
                said = f"model server at {self.base_url} refused the request: {_describe(exc)}"
                if exc.status_code == 400 and "context length" in str(exc):  # OpenAI's and llama.cpp's wording
                    raise PromptTooLong(said) from exc
                raise ModelError(said) from exc

    def _first_model(self) -> str:
        models = self._call(self.client.models.list)
        if not models.data:
            raise ModelError(f"model server at {self.base_url} lists no models")
        return models.data[0].id

    def generate(self, messages: list[dict], sampling: Sampling) -> Generation:
        return self._sample(lambda s, n: self._request(messages, s, n), sampling)

    def complete(self, prompt: str, sampling: Sampling, logprobs: bool = False) -> Generation:
        """A raw prompt on /v1/completions, e.g. a fill-in-the-middle layout; with `logprobs`, each
        completion carries its mean token log-probability where the server returns one."""
        extra = {"logprobs": 1} if logprobs and self._takes_logprobs(prompt) else {}
        return self._sample(lambda s, n: self._call(self.client.completions.create, prompt=prompt,
                                                    **self._common(s, n), **extra), sampling)

    def _takes_logprobs(self, prompt: str) -> bool:
        """Ask once, for one token: a server may refuse logprobs (llama-cpp-python's does when it was
        started with `--logits_all false`; its default is true)."""
        import openai

        if self.logprobs is None:
            try:
                self.client.with_options(max_retries=0).completions.create(
                    model=self.name, prompt=prompt, max_tokens=1, logprobs=1)
                self.logprobs = True
            except openai.APIStatusError:
                self.logprobs = False
            except openai.APIError:  # unreachable: the real request says so
                return False
        return self.logprobs

    def _sample(self, request, sampling: Sampling) -> Generation:
        """`sampling.n` completions from `request(sampling, n)`: in one request where the server takes
        `n` (vLLM, the embedded server: repair_agent.llm.llama_server), else one request per sample."""
        start = time.monotonic()
        requests = [sampling.n] if self.batch_n else [1] * sampling.n
        gen = Generation(completions=[], requests=len(requests))
        for i, n in enumerate(requests):
            # one request per sample: each needs its own seed, or they would all be the same answer
            seed = sampling.seed + i if sampling.seed is not None and len(requests) > 1 else sampling.seed
            resp = request(Sampling(**{**sampling.__dict__, "seed": seed}), n)
            gen.completions += [_completion(c) for c in resp.choices]
            if resp.usage:
                gen.prompt_tokens += resp.usage.prompt_tokens or 0
                gen.completion_tokens += resp.usage.completion_tokens or 0
        if self.batch_n and len(gen.completions) < sampling.n:  # server ignored `n`: ask for the rest
            self.batch_n = False
            seed = None if sampling.seed is None else sampling.seed + 1
            rest = self._sample(request, Sampling(**{**sampling.__dict__, "seed": seed,
                                                     "n": sampling.n - len(gen.completions)}))
            gen.completions += rest.completions
            gen.prompt_tokens += rest.prompt_tokens
            gen.requests += rest.requests
            gen.completion_tokens += rest.completion_tokens
        gen.seconds = time.monotonic() - start
        return gen

    def _common(self, s: Sampling, n: int) -> dict:
        return dict(model=self.name, n=n, temperature=s.temperature, top_p=s.top_p,
                    max_tokens=s.max_tokens, stop=s.stop or None, seed=s.seed)

    def _request(self, messages: list[dict], s: Sampling, n: int):
        if self.endpoint == "completions":
            prompt = "".join(m["content"] for m in messages)
            return self._call(self.client.completions.create, prompt=prompt, **self._common(s, n))
        return self._call(self.client.chat.completions.create, messages=messages, **self._common(s, n))


def _completion(choice) -> Completion:
    c = Completion(text=_text(choice), finish_reason=choice.finish_reason or "")
    mean = mean_logprob(getattr(getattr(choice, "logprobs", None), "token_logprobs", None))  # completions only
    if mean is not None:
        c["logprob"] = mean
    return c


def mean_logprob(token_logprobs) -> float | None:
    vals = [v for v in token_logprobs or () if v is not None]
    return sum(vals) / len(vals) if vals else None


def _text(choice) -> str:
    msg = getattr(choice, "message", None)
    return (msg.content if msg is not None else choice.text) or ""


def _describe(exc: Exception) -> str:
    text = str(exc).splitlines()[0].strip() if str(exc).strip() else type(exc).__name__
    cause, depth = exc.__cause__ or exc.__context__, 0
    while cause is not None and depth < 8:  # httpx wraps the socket's error a few levels down
        if "refused" in str(cause).lower() or isinstance(cause, ConnectionRefusedError):
            return text + " (connection refused)"
        cause, depth = cause.__cause__ or cause.__context__, depth + 1
    return text
