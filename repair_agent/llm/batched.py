"""Batched sampling on one llama.cpp model: the n samples of a prompt decoded together, the prompt
evaluated once, and the samples of several requests in the same decode steps.

llama-cpp-python decodes one sequence at a time (its `Llama` and its server take no `n`), but
llama.cpp batches sequences: one `llama_decode` advances every sequence in the batch by a token,
and a CPU pays far less for a matrix product with 8 rows than for 8 products of one row.
`BatchedSampler` keeps a llama.cpp context of its own on a `Llama`'s weights, with a unified KV
cache (the samples of a prompt share its cells: `seq_cp` adds a sequence id to a cell, it copies
nothing), and a thread that runs the decode loop:

- a request's prompt is evaluated once, into a prompt sequence, after the longest prefix it shares
  with a prompt evaluated before (a hole's second batch of samples evaluates one token);
- each step decodes one token for every running sample of every request (one for the samples of
  a request that have sampled the same tokens so far), and samples each with its own sampler chain,
  the one llama-cpp-python builds for a single request
  (`Llama._init_sampler`), seeded seed + i for sample i (as the clients seed one request a sample);
- a request that arrives while others run joins them at the next step.

A sample ends as llama-cpp-python's `create_completion` ends one: at an end-of-generation token,
at the first stop string (cut off), or after max_tokens ("length").
"""

from __future__ import annotations

import collections
import queue
import random
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import SimpleNamespace

MAX_SEQUENCES = 64  # samples running at once, with the cached prompts


@dataclass
class Request:
    prompt: list[int]
    n: int
    max_tokens: int
    stop: list[bytes]
    sampling: dict  # Llama._init_sampler's keywords: temp, top_k, top_p, min_p, repeat_penalty, ...
    seed: int | None
    future: Future = field(default_factory=Future)
    samples: list = field(default_factory=list)
    running: int = 0  # samples not ended
    prompt_seq: int = -1


@dataclass
class Sample:
    request: Request
    seq: int
    sampler: object
    tokens: list[int] = field(default_factory=list)
    text: bytes = b""
    finish: str | None = None


@dataclass
class Prompt:
    """An evaluated prompt kept in the KV cache as sequence `seq`, for the next request to reuse."""
    seq: int
    tokens: list[int]
    users: int = 0  # requests whose samples still run on it


@dataclass
class Result:
    choices: list[tuple[str, str]]  # (text, finish_reason) per sample
    prompt_tokens: int
    completion_tokens: int


class BatchedSampler:
    """`cells`: the KV cache's size, shared by all sequences (default: twice the `Llama`'s context);
    a request is taken when its prompt and n * max_tokens fit beside those running."""

    def __init__(self, llama, cells: int | None = None, max_sequences: int = MAX_SEQUENCES, cached_prompts: int = 4):
        import llama_cpp
        from llama_cpp import _internals

        self.llama, self.lib = llama, llama_cpp
        self.n_ctx = llama.n_ctx()  # a sequence's limit, prompt and completion, as for a single request
        params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)
        params.n_ctx = cells or 2 * self.n_ctx
        params.n_seq_max = max_sequences
        params.kv_unified = True  # else each sequence gets n_ctx / n_seq_max cells, and seq_cp copies them
        # flash attention skips the cells of other sequences where the plain kernel sums them as
        # zeros: without it a sample's floats depend on where its cells lie (a seed's samples then
        # differ from one call to the next at near ties)
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        self.ctx = _internals.LlamaContext(model=llama._model, params=params, verbose=llama.verbose)
        self.cells, self.n_batch = self.ctx.n_ctx(), params.n_batch
        self.batch = _internals.LlamaBatch(n_tokens=max(self.n_batch, max_sequences), embd=0,
                                           n_seq_max=max_sequences, verbose=llama.verbose)
        self.max_sequences = max_sequences
        self.free = list(range(max_sequences - 1, -1, -1))  # sequence ids not in use
        self.prompts: collections.OrderedDict[int, Prompt] = collections.OrderedDict()  # least recently used first
        self.cached_prompts = cached_prompts
        self.running: list[Sample] = []
        self.most_requests = 0  # the most requests whose samples ran in one step
        self.waiting: collections.deque[Request] = collections.deque()
        self.inbox: queue.Queue[Request | None] = queue.Queue()  # None: close
        self.thread = threading.Thread(target=self._loop, name="batched-sampler", daemon=True)
        self.thread.start()

    def close(self) -> None:
        """End the decode loop (after the requests already taken) and free the context."""
        if self.thread.is_alive():
            self.inbox.put(None)
            self.thread.join()
            self.ctx.close()
            self.batch.close()

    # -- the caller's side ---------------------------------------------------------------------
    def submit(self, prompt: list[int], n: int = 1, max_tokens: int | None = None, stop: list[str] = (),
               seed: int | None = None, **sampling) -> Future:
        """Sample `n` completions of the prompt's tokens; a future of a `Result`. `sampling`: the
        keywords of `Llama._init_sampler` (temp, top_k, top_p, min_p, ...)."""
        if not prompt:
            raise ValueError("an empty prompt")
        if len(prompt) >= self.n_ctx:
            raise ValueError(f"Requested tokens ({len(prompt)}) exceed context window of {self.n_ctx}")
        if not 1 <= n < self.max_sequences:  # n samples and their prompt
            raise ValueError(f"n must be between 1 and {self.max_sequences - 1}, not {n}")
        if not self.fits(len(prompt), n, max_tokens):
            raise ValueError(f"{n} samples of up to {self._limit(len(prompt), max_tokens)} tokens after a prompt of "
                             f"{len(prompt)} need more than the {self.cells} cells of the KV cache")
        req = Request(prompt=list(prompt), n=n, max_tokens=self._limit(len(prompt), max_tokens),
                      stop=[s.encode("utf-8") for s in stop if s], sampling=sampling, seed=seed)
        self.inbox.put(req)
        return req.future

    def fits(self, prompt_tokens: int, n: int, max_tokens: int | None) -> bool:
        """Whether a request could run at all: n samples beside their prompt, the sequences and the
        KV cache's cells for them."""
        return 1 <= n < self.max_sequences and prompt_tokens + n * self._limit(prompt_tokens, max_tokens) <= self.cells

    def _limit(self, prompt_tokens: int, max_tokens: int | None) -> int:
        room = self.n_ctx - prompt_tokens  # as create_completion: no max_tokens, up to the context's end
        return min(max_tokens, room) if max_tokens and max_tokens > 0 else room

    def complete(self, prompt: str, n: int = 1, **kwargs) -> Result:
        """`submit` for a text prompt, tokenized as llama-cpp-python's create_completion does, and
        waited for."""
        return self.submit(self.tokenize(prompt), n, **kwargs).result()

    def tokenize(self, prompt: str) -> list[int]:
        return self.llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)

    def _requests(self) -> list[Request]:
        return list({id(s.request): s.request for s in self.running}.values())

    # -- the decode loop -----------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            try:
                while True:  # wait when nothing runs; else take what has come and go on
                    req = self.inbox.get(block=not self.running and not self.waiting)
                    if req is None:
                        return
                    self.waiting.append(req)
            except queue.Empty:
                pass
            while self.waiting and self._room_for(self.waiting[0]):
                req = self.waiting.popleft()
                try:
                    self._start(req)
                except Exception as exc:  # noqa: BLE001 - the request fails, the loop goes on
                    self._abandon(req, exc)
            if self.running:
                try:
                    self._step()
                except Exception as exc:  # noqa: BLE001
                    for req in self._requests():
                        self._abandon(req, exc)

    def _room_for(self, req: Request) -> bool:
        """Sequence ids and KV cells for the request's prompt and samples (at their longest), evicting
        cached prompts no one uses."""
        def room() -> bool:
            held = sum(len(p.tokens) for p in self.prompts.values())  # (at most: prefixes share cells)
            samples = sum(r.n * r.max_tokens for r in self._requests())
            return len(self.free) >= req.n + 1 and held + samples + len(req.prompt) + req.n * req.max_tokens <= self.cells
        while not room() and self._evict():
            pass
        return room()

    def _evict(self) -> bool:
        for seq, p in self.prompts.items():
            if not p.users:
                del self.prompts[seq]
                self._release(seq)
                return True
        return False

    def _release(self, seq: int) -> None:
        self.ctx.kv_cache_seq_rm(seq, -1, -1)
        self.free.append(seq)

    def _start(self, req: Request) -> None:
        """Evaluate the prompt after its longest cached prefix, then sample each sample's first token."""
        best = max(self.prompts.values(), key=lambda p: _common(p.tokens, req.prompt), default=None)
        keep = min(_common(best.tokens, req.prompt), len(req.prompt) - 1) if best else 0
        seq = req.prompt_seq = self.free.pop()
        self.prompts[seq] = Prompt(seq, req.prompt, users=1)  # until its samples end
        if keep:
            self.ctx.kv_cache_seq_cp(best.seq, seq, 0, keep)
            self.prompts.move_to_end(best.seq)
        for start in range(keep, len(req.prompt), self.n_batch):
            chunk = req.prompt[start:start + self.n_batch]
            self._decode([(t, start + i, [seq], start + i == len(req.prompt) - 1) for i, t in enumerate(chunk)])
        last = len(chunk) - 1
        self.prompts.move_to_end(seq)
        while len(self.prompts) > self.cached_prompts and self._evict():
            pass
        for i in range(req.n):
            s = Sample(req, self.free.pop(), self._sampler(req, i))
            self.ctx.kv_cache_seq_cp(seq, s.seq, 0, len(req.prompt))
            req.samples.append(s)
            req.running += 1
            self.running.append(s)
            self._take(s, s.sampler.sample(self.ctx, last))

    def _sampler(self, req: Request, i: int):
        seed = req.seed + i if req.seed is not None else random.randrange(2 ** 32)
        llama = self.llama  # what _init_sampler reads of a Llama, with this sample's seed
        owner = SimpleNamespace(_seed=seed, _n_vocab=llama.n_vocab(), last_n_tokens_size=llama.last_n_tokens_size,
                                _model=llama._model)
        return self.lib.Llama._init_sampler(owner, **req.sampling)

    def _step(self) -> None:
        """One token for every running sample. Samples of a request that have sampled the same tokens
        so far (a confident model's often do) have the same next logits: one row of the batch
        computes them, its cell carries all their sequence ids, and each samples from it."""
        self.most_requests = max(self.most_requests, len(self._requests()))
        alike: dict[tuple, list[Sample]] = {}
        for s in self.running:
            alike.setdefault((id(s.request), *s.tokens), []).append(s)
        rows = list(alike.values())
        self._decode([(g[0].tokens[-1], len(g[0].request.prompt) + len(g[0].tokens) - 1, [s.seq for s in g], True)
                      for g in rows])
        for i, g in enumerate(rows):
            for s in g:
                self._take(s, s.sampler.sample(self.ctx, i))

    def _decode(self, tokens: list[tuple[int, int, list[int], bool]]) -> None:
        """One llama_decode of (token, position, sequences, logits wanted) rows; a full KV cache
        first gives up cached prompts no one uses."""
        b = self.batch.batch
        b.n_tokens = len(tokens)
        for i, (token, pos, seqs, logits) in enumerate(tokens):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, len(seqs), logits
            for j, seq in enumerate(seqs):
                b.seq_id[i][j] = seq
        while (rc := self.lib.llama_decode(self.ctx.ctx, b)) == 1 and self._evict():
            pass
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}" + (" (the KV cache is full)" if rc == 1 else ""))

    def _take(self, s: Sample, token: int) -> None:
        """A sampled token: the sample goes on, or ends as create_completion would end it."""
        req = s.request
        if self.lib.llama_vocab_is_eog(self.llama._model.vocab, token):
            s.finish = "stop"
        else:
            s.tokens.append(token)
            s.text = self.llama.detokenize(s.tokens, prev_tokens=req.prompt)
            stop = next((x for x in req.stop if x in s.text), None)  # the first listed, as create_completion
            if stop is not None:
                s.text, s.finish = s.text[:s.text.index(stop)], "stop"
            elif len(s.tokens) >= req.max_tokens:
                s.finish = "length"
        if s.finish:
            self._end(s)

    def _end(self, s: Sample) -> None:
        req = s.request
        self.running.remove(s)
        self._release(s.seq)
        s.sampler.close()
        req.running -= 1
        if req.running == 0 and len(req.samples) == req.n:
            self.prompts[req.prompt_seq].users = 0
            req.future.set_result(Result(
                choices=[(x.text.decode("utf-8", errors="ignore"), x.finish) for x in req.samples],
                prompt_tokens=len(req.prompt), completion_tokens=sum(len(x.tokens) for x in req.samples)))

    def _abandon(self, req: Request, exc: Exception) -> None:
        for s in req.samples:
            if s in self.running:
                self.running.remove(s)
                self._release(s.seq)
        if self.prompts.pop(req.prompt_seq, None):  # perhaps evaluated in part: not to be reused
            self._release(req.prompt_seq)
        if not req.future.done():
            req.future.set_exception(exc)


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n

