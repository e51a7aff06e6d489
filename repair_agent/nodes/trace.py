"""Run the first failing test under a tracer, limited to the top suspicious functions.

The real trace goes into the prompt where SemCoder writes its execution simulation, and is the
ground truth that the model's own simulation is checked against."""

from __future__ import annotations

from .. import policy
from ..errors import SandboxError
from ..state import RepairState
from ..tracing import trace_test, trace_text


def trace(state: RepairState, deps) -> dict:
    functions = list(dict.fromkeys((loc["file"], loc["function"]) for loc in state["locations"]
                                   if loc["function"] and loc["function"] != "<module>"))[:2]
    if not functions:
        return {"trace": [], "trace_text": ""}
    try:
        steps = trace_test(deps.sandbox, state["failing"][0], functions,
                           timeout=policy.trace_timeout(deps.settings, state))
    except SandboxError as exc:  # a trace helps; its absence must not end the run
        deps.log(f"no trace: {exc}")
        steps = []
    text = trace_text(steps, budget_tokens=600)
    deps.recorder.write("trace", targets=functions, steps=steps, text=text)
    deps.log(f"traced {state['failing'][0]}: {len(steps)} steps")
    return {"trace": steps, "trace_text": text}
