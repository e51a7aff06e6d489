"""The model seam: messages in, completions with token counts out.

`OpenAIModel` speaks the OpenAI-compatible API through the official SDK, so the same client
works against vLLM, llama.cpp's server, Ollama or a hosted API.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, TypedDict

from ..errors import ModelError


class Completion(TypedDict):
    text: str
    finish_reason: str  # "stop" | "length" | ...


@dataclass
class Generation:
    completions: list[Completion]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


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
        self.batch_n = batch_n  # False for servers that ignore `n` (llama.cpp): one request per sample
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
                raise ModelError(f"model server at {self.base_url} refused the request: {_describe(exc)}") from exc

    def _first_model(self) -> str:
        models = self._call(self.client.models.list)
        if not models.data:
            raise ModelError(f"model server at {self.base_url} lists no models")
        return models.data[0].id

    def generate(self, messages: list[dict], sampling: Sampling) -> Generation:
        start = time.monotonic()
        requests = [sampling.n] if self.batch_n else [1] * sampling.n
        gen = Generation(completions=[])
        for i, n in enumerate(requests):
            # one request per sample: each needs its own seed, or they would all be the same answer
            seed = sampling.seed + i if sampling.seed is not None and len(requests) > 1 else sampling.seed
            resp = self._request(messages, Sampling(**{**sampling.__dict__, "seed": seed}), n)
            gen.completions += [Completion(text=_text(c), finish_reason=c.finish_reason or "") for c in resp.choices]
            if resp.usage:
                gen.prompt_tokens += resp.usage.prompt_tokens or 0
                gen.completion_tokens += resp.usage.completion_tokens or 0
        if self.batch_n and len(gen.completions) < sampling.n:  # server ignored `n`: ask for the rest
            self.batch_n = False
            seed = None if sampling.seed is None else sampling.seed + 1
            rest = self.generate(messages, Sampling(**{**sampling.__dict__, "seed": seed,
                                                       "n": sampling.n - len(gen.completions)}))
            gen.completions += rest.completions
            gen.prompt_tokens += rest.prompt_tokens
            gen.completion_tokens += rest.completion_tokens
        gen.seconds = time.monotonic() - start
        return gen

    def _request(self, messages: list[dict], s: Sampling, n: int):
        common = dict(model=self.name, n=n, temperature=s.temperature, top_p=s.top_p,
                      max_tokens=s.max_tokens, stop=s.stop or None, seed=s.seed)
        if self.endpoint == "completions":
            prompt = "".join(m["content"] for m in messages)
            return self._call(self.client.completions.create, prompt=prompt, **common)
        return self._call(self.client.chat.completions.create, messages=messages, **common)


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
