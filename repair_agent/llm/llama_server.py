"""llama-cpp-python's OpenAI-compatible server, answering `n` (`python -m repair_agent.llm.llama_server`,
with `python -m llama_cpp.server`'s arguments).

Its server takes no `n`: a client asking for 8 samples gets one, and 8 requests are decoded one
after the other. Here, in front of its routes:
- POST /v1/completions: a plain request (a text prompt, no streaming, logprobs, echo, suffix,
  grammar, logit bias or mirostat) is answered by `BatchedSampler`: its n samples decoded
  together, the prompt evaluated once, and decoded in the same steps as those of the requests
  that come in meanwhile (from several workers) instead of after them.
- POST /v1/chat/completions with n > 1, and completions that are not plain or too long to sample
  together: llama-cpp-python's route n times, seeds seed + i, the choices in one answer (as slow
  as n requests, but a client can send n as it does to vLLM).
Every other route is llama-cpp-python's.
"""

import argparse
import asyncio
import contextlib
import os
import sys
import threading
import time
import uuid

from fastapi import APIRouter, Body, Depends, Request
from llama_cpp.server import app as stock
from llama_cpp.server.errors import RouteErrorHandler
from llama_cpp.server.types import CreateChatCompletionRequest, CreateCompletionRequest

from .batched import BatchedSampler

_samplers: dict[int, BatchedSampler] = {}
_samplers_lock = threading.Lock()


def _plain(body) -> bool:
    return (isinstance(body.prompt, str) and not body.stream and body.logprobs is None and not body.echo
            and body.suffix is None and body.grammar is None and not body.logit_bias and not body.min_tokens
            and not body.mirostat_mode and (body.best_of or 1) <= (body.n or 1))


def _sampler_for(llama) -> BatchedSampler:
    with _samplers_lock:
        if id(llama) not in _samplers:
            _samplers[id(llama)] = BatchedSampler(llama)
        return _samplers[id(llama)]


def routes() -> APIRouter:
    router = APIRouter(route_class=RouteErrorHandler)  # errors answered as llama-cpp-python's are

    @router.post("/v1/completions", dependencies=[Depends(stock.authenticate)])
    async def create_completion(request: Request, body: CreateCompletionRequest):
        if isinstance(body.prompt, list) and len(body.prompt) == 1 and isinstance(body.prompt[0], str):
            body.prompt = body.prompt[0]
        if not _plain(body):
            return await one_by_one(stock.create_completion, request, body)
        async with contextlib.asynccontextmanager(stock.get_llama_proxy)() as proxy:
            llama = proxy(body.model)  # (the lock only to pick the model: the sampler has a context of its own)
        sampler = _sampler_for(llama)
        tokens = sampler.tokenize(body.prompt)
        if tokens and not sampler.fits(len(tokens), body.n or 1, body.max_tokens):  # too long to sample together
            return await one_by_one(stock.create_completion, request, body)
        future = sampler.submit(
            tokens, n=body.n or 1, max_tokens=body.max_tokens,
            stop=[body.stop] if isinstance(body.stop, str) else body.stop or [], seed=body.seed,
            temp=body.temperature, top_k=body.top_k, top_p=body.top_p, min_p=body.min_p,
            repeat_penalty=body.repeat_penalty, frequency_penalty=body.frequency_penalty or 0.0,
            presence_penalty=body.presence_penalty or 0.0)
        result = await asyncio.wrap_future(future)
        return {"id": f"cmpl-{uuid.uuid4()}", "object": "text_completion", "created": int(time.time()),
                "model": body.model or llama.model_path,
                "choices": [{"text": text, "index": i, "logprobs": None, "finish_reason": finish}
                            for i, (text, finish) in enumerate(result.choices)],
                "usage": _usage(result.prompt_tokens, result.completion_tokens)}

    @router.post("/v1/chat/completions", dependencies=[Depends(stock.authenticate)])
    async def create_chat_completion(request: Request, body: CreateChatCompletionRequest = Body()):
        return await one_by_one(stock.create_chat_completion, request, body)

    return router


async def one_by_one(route, request, body):
    """llama-cpp-python's `route` n times, seeds seed + i, its choices in one answer (it takes no
    `n`): as slow as n requests, but answering `n`. A stream, or n = 1, is the route's own."""
    n = body.n or 1
    if n <= 1 or body.stream:
        return await route(request, body)
    answers = [await route(request, body.model_copy(update={"n": 1, "seed": None if body.seed is None else body.seed + i}))
               for i in range(n)]
    usage = [a.get("usage") or {} for a in answers]
    return {**answers[0], "choices": [{**a["choices"][0], "index": i} for i, a in enumerate(answers)],
            "usage": _usage(usage[0].get("prompt_tokens", 0), sum(u.get("completion_tokens", 0) for u in usage))}


def _usage(prompt: int, completion: int) -> dict:  # the prompt once, as a server that takes n counts it
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def create_app(server_settings, model_settings):
    """llama-cpp-python's app with the routes above ahead of its own."""
    app = stock.create_app(server_settings=server_settings, model_settings=model_settings)
    before = len(app.router.routes)
    app.include_router(routes())
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[:0] = added  # the first matching route answers
    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn
    from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
    from llama_cpp.server.settings import ModelSettings, ServerSettings, Settings

    parser = argparse.ArgumentParser(prog="python -m repair_agent.llm.llama_server", description=__doc__)
    add_args_from_model(parser, Settings)
    args = parser.parse_args(argv)
    server_settings = parse_model_from_args(ServerSettings, args)
    app = create_app(server_settings, [parse_model_from_args(ModelSettings, args)])
    uvicorn.run(app, host=os.getenv("HOST", server_settings.host), port=int(os.getenv("PORT", server_settings.port)))


if __name__ == "__main__":
    sys.exit(main())
