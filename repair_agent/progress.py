"""Live progress of a `fix` run: the node, what it waits on, tokens and tokens/s, candidates tried,
elapsed time.

On a terminal a rich status line stays below the log and redraws four times a second; without a
terminal, or with `--quiet`, nothing is redrawn and only the log's step lines are printed (its
indented detail lines, one per candidate, are left out). The run's parts report to it through thin
wrappers (`attach`): the graph's nodes, the model's requests, the sandbox's test runs and the
recorder's candidate records; no node knows about it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

from rich.console import Console
from rich.spinner import Spinner
from rich.text import Text

CANDIDATE_EVENTS = ("candidate", "validate")  # a search candidate checked; a model candidate validated


def clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    def __init__(self, console: Console, log: Callable[[str], None], quiet: bool = False):
        self.console = console
        self.print_line = log
        self.live_display = console.is_terminal and not quiet
        self.quiet = quiet or not console.is_terminal
        self.started = time.monotonic()
        self.node = "starting"
        self.waiting: tuple[str, float, float | None] | None = None  # (what, since, estimated seconds)
        self.completion_tokens = 0
        self.model_seconds = 0.0
        self.candidates = 0
        self._live = None

    # -- what the run reports -------------------------------------------------------------------
    def log(self, msg: str) -> None:
        if self.quiet and msg.startswith("  "):  # a detail line (one per candidate): not a step
            return
        self.print_line(msg)

    def on_node(self, name: str) -> None:
        self.node = name

    def tokens_per_s(self) -> float | None:
        """Completion tokens per second of waiting for the model (its prompt processing included)."""
        if self.model_seconds <= 0 or not self.completion_tokens:
            return None
        return self.completion_tokens / self.model_seconds

    # -- the status line ------------------------------------------------------------------------
    def line(self) -> str:
        now = time.monotonic()
        parts = [self.node]
        if self.waiting:
            what, since, estimate = self.waiting
            left = f", about {clock(max(0.0, estimate - (now - since)))} left at most" if estimate else ""
            parts.append(f"{what} {clock(now - since)}{left}")
        rate = self.tokens_per_s()
        parts.append(f"{self.completion_tokens} tokens" + (f" ({rate:.1f} tok/s)" if rate else ""))
        parts.append(f"{self.candidates} candidates tried")
        parts.append(f"{clock(now - self.started)} elapsed")
        return " · ".join(parts)

    def __rich__(self) -> Text:
        return Text(self.line(), style="cyan", no_wrap=True, overflow="ellipsis")  # one line, however narrow

    def __enter__(self) -> "Progress":
        if self.live_display:
            from rich.live import Live

            self._live = Live(Spinner("dots", text=self), console=self.console, refresh_per_second=4,
                              transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    # -- the wrappers ---------------------------------------------------------------------------
    def attach(self, deps):
        """`deps` (graph.Deps) with its model, sandbox and recorder reporting here."""
        return dataclasses.replace(deps, model=None if deps.model is None else _Model(deps.model, self),
                                   sandbox=_Sandbox(deps.sandbox, self), recorder=_Recorder(deps.recorder, self),
                                   on_node=self.on_node, log=self.log)

    def _wait(self, what: str, fn, *args, estimate: float | None = None, **kwargs):
        self.waiting = (what, time.monotonic(), estimate)
        try:
            return fn(*args, **kwargs)
        finally:
            self.waiting = None


class _Wrapper:
    """Everything not wrapped goes to the real object."""

    def __init__(self, inner, progress: Progress):
        self.__dict__.update(_inner=inner, _progress=progress)

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def __setattr__(self, name, value):
        setattr(self._inner, name, value)


class _Model(_Wrapper):
    def __getattr__(self, name):
        real = getattr(self._inner, name)  # AttributeError where the backend lacks it (`complete`)
        if name not in ("generate", "complete"):
            return real

        def call(prompt, sampling, *args, **kwargs):
            p = self._progress
            rate = p.tokens_per_s()
            estimate = sampling.max_tokens * sampling.n / rate if rate else None
            gen = p._wait("waiting for the model", real, prompt, sampling, *args, estimate=estimate, **kwargs)
            p.completion_tokens += gen.completion_tokens
            p.model_seconds += gen.seconds
            return gen

        return call


class _Sandbox(_Wrapper):
    def run_tests(self, *args, **kwargs):
        return self._progress._wait("running tests", self._inner.run_tests, *args, **kwargs)

    def run(self, *args, **kwargs):  # coverage, traces, the guard's checks
        return self._progress._wait("running in the sandbox", self._inner.run, *args, **kwargs)


class _Recorder(_Wrapper):
    def write(self, event: str, **data) -> None:
        if event in CANDIDATE_EVENTS and (data.get("candidate") or {}).get("status") != "skipped":
            self._progress.candidates += 1
        self._inner.write(event, **data)
