"""The run's rules, asked by every node: stop now?, how long may this test run?, how do we sample
in this round? The numbers come from the settings and the profile; nothing here runs anything."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .llm.client import Sampling


# -- stop now? -----------------------------------------------------------------------------------
TOO_LONG = "prompt_too_long"  # a round's only candidate when its prompt did not fit the model's context


def stop_reason(state, settings) -> str:
    """Why the model's loop must stop now, or "" to go on."""
    if state.get("best"):
        return "fixed"
    if state.get("round", 0) + 1 >= settings.rounds:
        return f"all {settings.rounds} rounds used"
    rnd = state.get("round", 0)
    if any(c["round"] == rnd and c["status"] == TOO_LONG for c in state.get("candidates") or []):
        return "the prompt does not fit the model's context (the next round's would be longer still)"
    tokens = state.get("tokens") or {}
    if tokens.get("prompt", 0) + tokens.get("completion", 0) >= settings.token_budget:
        return f"token budget of {settings.token_budget} spent"
    if time.time() - state.get("started_at", time.time()) >= settings.wall_time_s:
        return f"wall time of {settings.wall_time_s:.0f}s spent"
    return ""


def final_stop_reason(state, settings, status: str) -> str:
    """What the report says ended the run: the loop's reason, else the search's, else nothing failed."""
    return stop_reason(state, settings) or (state.get("search") or {}).get("stop_reason", "") or (
        "no failures" if status == "no_failures" else "")


@dataclass
class Budget:
    """What the search may spend, and when it has found enough."""

    candidates: int = 1000
    tokens: int = 200_000
    deadline: float = float("inf")  # time.time() after which nothing new is tried
    plausible: int = 1  # distinct passing candidates to gather before stopping
    after_first: int = 300  # candidates the search may still check once it has one

    def spent(self, tried: int, tokens: dict, first_at: int = 0) -> str:
        """Why the search must stop before its next candidate, or "" to go on; `first_at`: how many
        had been tried when the first clean fix came (0: none yet)."""
        if first_at and tried - first_at >= self.after_first:
            return f"{self.after_first} more candidates tried after the first fix"
        if tried >= self.candidates:
            return f"{self.candidates} candidates tried"
        if tokens["prompt"] + tokens["completion"] >= self.tokens:
            return f"token budget of {self.tokens} spent"
        if time.time() >= self.deadline:
            return "wall time spent"
        return ""

    def enough(self, clean: int, source: str) -> bool:
        """Whether `clean` fixes (no anti-pattern) end the search: a model source's more samples cost tokens."""
        return clean >= self.plausible or source not in ("mutate", "chain")


def search_budget(state, settings) -> Budget:
    return Budget(candidates=settings.max_candidates, tokens=settings.token_budget,
                  deadline=state.get("started_at", time.time()) + settings.wall_time_s,
                  plausible=settings.plausible, after_first=max(1, settings.max_candidates // 10))


# -- how long may this test run? -----------------------------------------------------------------
def candidate_timeout(state, settings) -> float:
    """Ten times the slowest original test that ended by itself, at least a second, at most the
    per-test limit (the buggy code's own hangs say nothing about how long a test should take)."""
    limit = float(settings.per_test_timeout_s)
    times = [c.get("seconds", 0.0) for c in (state.get("tests_before") or {}).get("cases", [])]
    slowest = max((t for t in times if t < 0.9 * limit), default=0.2)  # none ended: assume quick
    return round(min(limit, max(1.0, 10 * slowest)), 1)


def candidate_limits(timeout: float) -> tuple[float, int]:
    """A search candidate's (whole test run, each test) limits from its `candidate_timeout`: a
    mutant that never ends costs about a second, not a minute."""
    return timeout * 3 + 30, max(1, round(timeout))


def suite_limit(state, timeout: float) -> float:
    """A candidate's run of the suite (or of the tests selected from it): its whole-run limit, or
    thrice what the original suite took and half a minute, whichever is longer. A project's suite
    of quick tests can outlast a limit derived from its slowest test; a hang is still cut at each
    test's own limit."""
    took = (state.get("tests_before") or {}).get("duration_s") or 0.0
    return max(timeout, 3 * took + 30)


def rerun_timeout(state, settings) -> int:
    """The per-test limit for running the original code again (coverage, trace): where a test hung
    at reproduce it will hang again, and a few seconds of it show as much as the full limit."""
    limit = float(settings.per_test_timeout_s)
    hung = any(c.get("seconds", 0.0) >= 0.9 * limit for c in (state.get("tests_before") or {}).get("cases", []))
    return min(int(limit), max(2, round(2 * candidate_timeout(state, settings)))) if hung else int(limit)


def trace_timeout(settings, state=None) -> float:
    """A traced test run: at most 30 s; on the original code (`state` given) a hang is cut sooner."""
    limit = min(30.0, settings.test_timeout_s)
    return limit if state is None else min(limit, 3.0 * rerun_timeout(state, settings))


# -- how do we sample in this round? -------------------------------------------------------------
EXPLAIN_TOKENS = 200  # explaining a fix: a monologue of a few lines; the code is already written


def sampling(profile, settings, rnd: int) -> Sampling:
    """The profile's schedule: round 0 greedy, one answer; later rounds `samples` answers in one
    request at the profile's temperature and top_p."""
    seed = None if settings.seed is None else settings.seed + rnd
    out = profile.sampling(rnd, n=settings.samples, seed=seed)
    out.max_tokens = settings.max_tokens
    out.stop = [*out.stop, "[/Refined]"]  # what follows the fixed code is noise
    return out


def explain_sampling(profile, settings) -> Sampling:
    """One greedy answer, short, that stops before the model writes a fix of its own."""
    out = sampling(profile, settings, 0)
    out.max_tokens, out.n = EXPLAIN_TOKENS, 1
    out.stop = [*out.stop, "### Bug Fixing", "[Refined]"]
    return out


def infill_sampling(profile, settings, n: int, lines: int, stop: list[str], seed_offset: int = 0) -> Sampling:
    """`n` short samples for a hole of `lines` lines, at the profile's infill temperature."""
    seed = getattr(settings, "seed", None)
    return Sampling(n=n, temperature=profile.infill.temperature, top_p=profile.top_p,
                    max_tokens=profile.infill.max_tokens * lines, stop=stop,
                    seed=None if seed is None else seed + seed_offset)
