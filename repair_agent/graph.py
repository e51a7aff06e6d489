"""The repair loop as a LangGraph state machine: every step a run takes is a node here.

fix:      reproduce -> localize -> [trace] -> search -> judge -> explain_fix -> report   a fix found by the search
                                                |
                                                +-> propose -> validate -> judge -> explain_fix -> report   the model's fix
                                                    ^             |
                                                    +-- refine <--+   no fix yet, rounds and budget left
explain:  reproduce -> localize -> [trace] -> propose -> report   a diagnosis: nothing is validated or judged

A run ends at report early where nothing fails (after reproduce), where the search found no fix
and refine is not asked for (after search), or where the rounds, tokens or time are spent (after
validate; see policy.py). [trace] runs unless --no-trace. The judge is the overfitting guard.
Nodes are plain functions `(state, deps) -> update` that never import each other; `Deps` carries
what is not state: the sandbox, the model, the settings, the scratch tree and the run recorder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

from langgraph.graph import END, START, StateGraph

from .config import Settings
from .llm.client import Model
from .llm.profiles import Profile, load_profile
from .nodes.explain_fix import explain_fix
from .nodes.judge import judge
from .nodes.localize import localize
from .nodes.propose import propose
from .nodes.refine import refine
from .nodes.report import report
from .nodes.reproduce import reproduce
from .nodes.search import search
from .nodes.trace import trace
from .nodes.validate import validate
from .policy import stop_reason
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


def _node(fn, deps: Deps, state: RepairState) -> dict:
    if deps.on_node:
        deps.on_node(fn.__name__)
    return fn(state, deps=deps)


def build_graph(deps: Deps, checkpointer=None, diagnose_only: bool = False):
    """`diagnose_only` (for `explain`) stops after the first answer: no patch is validated."""
    g = StateGraph(RepairState)
    for fn in (reproduce, localize, trace, search, judge, explain_fix, propose, validate, refine, report):
        g.add_node(fn.__name__, partial(_node, fn, deps))
    g.add_edge(START, "reproduce")
    g.add_conditional_edges("reproduce", lambda s: "localize" if s["failing"] else "report",
                            ["localize", "report"])
    first = "propose" if diagnose_only else "search"
    g.add_conditional_edges("localize", lambda s: "trace" if deps.settings.use_trace else first,
                            ["trace", first])
    g.add_edge("trace", first)
    escalate = "refine" in deps.settings.strategy_list()
    g.add_conditional_edges("search", lambda s: "judge" if s.get("fixes") else (
        "propose" if escalate else "report"), ["judge", "propose", "report"])
    g.add_edge("judge", "explain_fix")  # every fix gets its evidence; a search fix its explanation too
    g.add_edge("explain_fix", "report")
    g.add_edge("propose", "report" if diagnose_only else "validate")
    g.add_conditional_edges("validate", lambda s: "judge" if s.get("best") else (
        "report" if stop_reason(s, deps.settings) else "refine"), ["judge", "refine", "report"])
    g.add_edge("refine", "propose")
    g.add_edge("report", END)
    return g.compile(checkpointer=checkpointer)
