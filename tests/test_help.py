"""Every command's --help page, as a user reads it: a description on every option and argument, no
type tag on a flag, command summaries whole, and what `fix` and `bench` must say."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from repair_agent.cli import app

ROOT = typer.main.get_command(app)


def commands(cmd=ROOT, path: tuple[str, ...] = ()):  # typer's own click: no isinstance on click's classes
    yield path, cmd
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from commands(sub, (*path, name))


def page(*path: str) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def flat(text: str) -> str:
    return " ".join(text.split())


ALL = list(commands())


@pytest.mark.parametrize("path,cmd", ALL, ids=[" ".join(p) or "repair-agent" for p, _ in ALL])
def test_every_option_has_a_description_and_no_flag_a_type(path, cmd):
    text = page(*path)
    shown = flat(text)
    for param in cmd.params:
        name = param.opts[0] if param.opts else param.name
        assert getattr(param, "help", None), f"{' '.join(path)} {name}: no description"
        assert flat(param.help)[:30] in shown, f"{' '.join(path)} {name}: description not on the page"
    assert "<bool>" not in text, text
    for flag in (p for p in cmd.params if getattr(p, "is_flag", False)):
        line = next(ln for ln in text.splitlines() if re.search(rf"(^|[ ,]){re.escape(flag.opts[0])}\b", ln))
        assert not re.search(rf"{re.escape(flag.opts[-1])} [<A-Z]", line), f"a flag shown with a value: {line}"
    if hasattr(cmd, "commands"):  # each summary whole: a sentence, not cut with "..."
        listed = text.split("Commands:")[1].strip().splitlines()
        assert len(listed) == len(cmd.commands)
        for line in listed:
            assert line.rstrip().endswith(".") and not line.rstrip().endswith("..."), line


def test_fix_help_gives_defaults_exit_codes_and_run_time():
    text = flat(page("fix"))
    assert "--sandbox KIND auto | docker | local (default auto:" in text
    assert "--model NAME Model name on the server (default: the first it lists)" in text
    assert "(default: qwen2.5-coder-0.5b)" in text
    assert "Exit codes: 0 fixed, or no failing test; 1 no fix found; 2 bad input" in text
    assert "3 infrastructure" in text and "141" in text
    assert "Typical run time on 2 CPU cores: about a minute" in text
    assert "-q, --quiet No live status line" in text


def test_each_benchmark_has_its_own_page():
    pages = {name: page("bench", name) for name in ("quixbugs", "humanevalfix", "repos")}
    assert len(set(pages.values())) == 3
    data = {name: flat(text.split("Options:", 1)[1].split("--data FILE", 1)[1].split("--out", 1)[0]) for name, text in pages.items()}
    assert data["quixbugs"].startswith("Optional") and "ship with the package" in data["quixbugs"]
    assert data["humanevalfix"].startswith("Required") and "HumanEvalPack" in data["humanevalfix"]
    assert data["repos"].startswith("Required")
    assert "explain" in page() and "where the fault is, and why." in page()
