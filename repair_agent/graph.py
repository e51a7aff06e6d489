"""The repair loop as a LangGraph state machine.

reproduce -> localize -> [trace] -> search -> explain_fix -> report          (a cheap fix found)
                                           -> propose -> validate -> (refine -> propose)* -> report

Nodes are plain functions `(state, deps) -> update`; `Deps` carries what is not state: the
sandbox, the model, the settings, the scratch tree and the run recorder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

from langgraph.graph import END, START, StateGraph

from .config import Settings
from .llm.client import Model, Sampling
from .llm.profiles import Profile, load_profile
from .nodes.explain_fix import explain_fix
from .nodes.localize import localize
from .nodes.propose import propose
from .nodes.refine import refine
from .nodes.report import report
from .nodes.reproduce import reproduce
from .nodes.search import search
from .nodes.trace import trace
from .nodes.validate import validate
from .runs import RunRecorder
from .sandbox import Sandbox
from .state import RepairState


@dataclass
class Deps:
    settings: Settings
    sandbox: Sandbox
    model: Model
    workdir: Path  # the scratch copy the sandbox sees
    recorder: RunRecorder
    log: Callable[[str], None] = print
    profile: Profile = field(default_factory=lambda: load_profile("generic-chat"))
    diagnose_only: bool = False
    on_node: Callable[[str], None] | None = None  # told each node's name as it starts (progress.py)

    def sampling(self, rnd: int) -> Sampling:
        """The profile's schedule: round 0 greedy, one answer; later rounds `samples` answers in one
        request at the profile's temperature and top_p."""
        s = self.settings
        seed = None if s.seed is None else s.seed + rnd
        sampling = self.profile.sampling(rnd, n=s.samples, seed=seed)
        sampling.max_tokens = s.max_tokens
        sampling.stop = [*sampling.stop, "[/Refined]"]  # what follows the fixed code is noise
        return sampling

    def stop_reason(self, state: RepairState) -> str:
        """Why the loop must stop now, or "" to go on."""
        s = self.settings
        if state.get("best"):
            return "fixed"
        if state.get("round", 0) + 1 >= s.rounds:
            return f"all {s.rounds} rounds used"
        tokens = state.get("tokens") or {}
        if tokens.get("prompt", 0) + tokens.get("completion", 0) >= s.token_budget:
            return f"token budget of {s.token_budget} spent"
        if time.time() - state.get("started_at", time.time()) >= s.wall_time_s:
            return f"wall time of {s.wall_time_s:.0f}s spent"
        return ""


def _node(fn, deps: Deps, state: RepairState) -> dict:
    if deps.on_node:
        deps.on_node(fn.__name__)
    return fn(state, deps=deps)


def build_graph(deps: Deps, checkpointer=None, diagnose_only: bool = False):
    """`diagnose_only` (for `explain`) stops after the first answer: no patch is validated."""
    g = StateGraph(RepairState)
    for fn in (reproduce, localize, trace, search, explain_fix, propose, validate, refine, report):
        g.add_node(fn.__name__, partial(_node, fn, deps))
    g.add_edge(START, "reproduce")
    g.add_conditional_edges("reproduce", lambda s: "localize" if s["failing"] else "report",
                            ["localize", "report"])
    first = "propose" if diagnose_only else "search"
    g.add_conditional_edges("localize", lambda s: "trace" if deps.settings.use_trace else first,
                            ["trace", first])
    g.add_edge("trace", first)
    escalate = "refine" in deps.settings.strategy_list()
    g.add_conditional_edges("search", lambda s: "explain_fix" if s.get("best") else (
        "propose" if escalate else "report"), ["explain_fix", "propose", "report"])
    g.add_edge("explain_fix", "report")
    g.add_edge("propose", "report" if diagnose_only else "validate")
    g.add_conditional_edges("validate", lambda s: "report" if deps.stop_reason(s) else "refine",
                            ["refine", "report"])
    g.add_edge("refine", "propose")
    g.add_edge("report", END)
    return g.compile(checkpointer=checkpointer)
