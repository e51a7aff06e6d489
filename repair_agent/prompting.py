"""What both model nodes show the model (the problem, the failing test's source) and how its
monologue is read back against the real trace: `propose` asks for a fix, `explain_fix` for the
explanation of the search's."""

from __future__ import annotations

import ast
from pathlib import Path

import jinja2.meta

from . import prompts
from .faithfulness import check_monologue
from .state import RepairState


def faithfulness(text: str, state: RepairState, deps) -> dict | None:
    """The monologue's execution claims checked against the real trace (None without a trace)."""
    if not state.get("trace"):
        return None
    report = check_monologue(text, state["trace"], deps.workdir)
    return {k: report[k] for k in ("claims", "checked", "contradicted", "score", "contradictions")}


def prompt_chunks(template: str) -> list[str]:
    """A template's own instruction text, with nothing filled in, cut at each value: the words an
    answer that echoes the prompt hands back (faithfulness.echoes)."""
    source = prompts.text(template)
    names = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(source))
    blank = prompts.render(template, **{n: "" for n in names})
    chunks = []
    for line in blank.splitlines():
        if not line.strip().startswith(("#", "```", "[")):
            chunks += [c.strip() for c in line.split("``") if len(c.strip()) >= 20]
    return chunks


def problem_statement(state: RepairState, deps) -> str:
    if deps.settings.problem:
        return deps.settings.problem.strip()
    ids = ", ".join(state["failing"][:5])
    return f"The code below should make these failing tests pass: {ids}. Fix the code, not the tests."


def test_source(root: Path, node_id: str, limit: int = 60) -> str:
    """The failing test function's source (without parametrize ids), or the node id."""
    file, _, rest = node_id.partition("::")
    name = rest.split("::")[-1].split("[")[0]
    try:
        source = (Path(root) / file).read_text()
        tree = ast.parse(source)
    except (OSError, SyntaxError, ValueError):
        return node_id
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            lines = source.splitlines()[min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1:
                                        node.end_lineno]
            return "\n".join(lines[:limit])
    return node_id
