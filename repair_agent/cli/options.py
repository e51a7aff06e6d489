"""The options several commands share, each declared once: the test, sandbox, model, candidate-source
and budget flags of `fix`, which `ci` takes too (and `explain` and `bench` where they apply), pip's
pass-through, and the help style of every command group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

# rich_markup_mode=None: click's plain help. Typer's rich help tags every flag with a type (`--apply <bool>`,
# as if it took a value); the plain one shows a metavar only where an option takes a value.
PLAIN = {"no_args_is_help": True, "rich_markup_mode": None}

# The flags that `fix` and `ci` share (explain and bench take those that apply); settings_flags()
# turns a command's into Settings overrides (None: not given, so the environment or the default decides).
BaseUrl = Annotated[Optional[str], typer.Option(metavar="URL", help="An OpenAI-compatible server, e.g. http://"
                                                 "127.0.0.1:8000/v1 (default: the embedded model, served here).")]
Model = Annotated[Optional[str], typer.Option(metavar="NAME", help="Model name on the server (default: the first it "
                                              "lists), or an embedded model (default: qwen2.5-coder-0.5b).")]
ModelPath = Annotated[Optional[str], typer.Option(metavar="PATH", help="A GGUF file (llama.cpp) or checkpoint dir "
                                                  "(transformers) instead of an installed model.")]
Backend = Annotated[Optional[str], typer.Option(metavar="NAME", help="Embedded backend: llama-cpp (default) or "
                                                "transformers.")]
Profile = Annotated[Optional[str], typer.Option(metavar="NAME", help="Prompt profile: semcoder, qwen2.5-coder, "
                                                "generic-chat (default: chosen by the model's name).")]
Rounds = Annotated[Optional[int], typer.Option(min=1, metavar="N", help="Refinement rounds (default 3).")]
Samples = Annotated[Optional[int], typer.Option(min=1, metavar="N", help="Candidates per sampled round (default 3).")]
TestTimeout = Annotated[Optional[float], typer.Option(metavar="SECONDS", help="Seconds one test run may take "
                                                      "(default 300).")]
Strategies = Annotated[Optional[str], typer.Option(help="mutate,infill,refine (default all).")]
SearchLines = Annotated[Optional[int], typer.Option(
    min=1, metavar="N", help="Top-ranked lines infill masks; mutate visits twice as many (default 5).")]
MaxCandidates = Annotated[Optional[int], typer.Option(min=1, help="Candidates per task (default 1000).")]
InfillSamples = Annotated[Optional[int], typer.Option(min=1, metavar="N", help="Model samples per masked line "
                                                      "(default 8).")]
Plausible = Annotated[Optional[int], typer.Option(min=1, metavar="K", help="Passing patches to gather and choose "
                                                  "from (default 3).")]
SandboxKind = Annotated[Optional[str], typer.Option(metavar="KIND", help="auto | docker | local (default auto: "
                                                    "Docker when its engine answers, else local, with a warning).")]
RunDir = Annotated[Optional[Path], typer.Option(metavar="DIR", help="Where run directories go (default: "
                                                "~/.cache/repair-agent/runs, or $REPAIR_AGENT_HOME/runs).")]
Test = Annotated[Optional[str], typer.Option(metavar="ARGS", help='pytest arguments, e.g. "tests/test_x.py -k slow" '
                                             "(default: the whole suite).")]
NoSbfl = Annotated[bool, typer.Option("--no-sbfl", help="Rank lines by the traceback frames only, no "
                                      "spectrum-based ranking from coverage (ablation).")]
NoTrace = Annotated[bool, typer.Option("--no-trace", help="Leave the execution trace out (ablation).")]
NoWorker = Annotated[bool, typer.Option("--no-worker", help="Every test run through docker exec, no warm worker.")]
AllowTestEdits = Annotated[bool, typer.Option("--allow-test-edits", help="Accept candidates that edit tests.")]
Image = Annotated[Optional[str], typer.Option(metavar="IMAGE", help=(
    "Sandbox base image, e.g. python:3.12-slim (default: repair-agent/base:RELEASE, the Debian release "
    "whose Python the repository asks for; see --python)."))]
Python = Annotated[Optional[str], typer.Option(metavar="X.Y", help=(
    "The sandbox's Python, e.g. 3.9: the base image of the oldest release that has it (default: the "
    "oldest the repository supports, from requires-python, its classifiers, .python-version or tox.ini's "
    "envlist; else 3.11)."))]
NoBuild = Annotated[bool, typer.Option("--no-build", help="Refuse (exit 3) instead of building a missing "
                                       "repair-agent/base image.")]
Deps = Annotated[Optional[list[str]], typer.Option("--deps", metavar="PKG", help=(
    "Packages to add to the sandbox's dependency image (pip names; repeat or comma-separate)."))]
KnownFailures = Annotated[Optional[list[str]], typer.Option("--known-failures", metavar="TEST", help=(
    "Tests that fail already and are not to fix (node ids or files; repeat or comma-separate): the "
    "baseline, which may stay failing while the rest must pass."))]

# parameter -> setting, for the flags that take a value
FLAG_SETTINGS = {"test": "test", "base_url": "base_url", "model": "model", "model_path": "model_path",
                 "backend": "backend", "profile": "profile", "rounds": "rounds", "samples": "samples",
                 "test_timeout": "test_timeout_s", "strategies": "strategies", "search_lines": "search_lines",
                 "max_candidates": "max_candidates", "infill_samples": "infill_samples", "plausible": "plausible",
                 "sandbox": "sandbox", "image": "image", "python": "python", "deps": "deps",
                 "known_failures": "known_failures"}
# parameter -> (setting, its value when the switch is given)
SWITCH_SETTINGS = {"allow_test_edits": ("allow_test_edits", True), "no_trace": ("use_trace", False),
                   "no_sbfl": ("use_sbfl", False), "no_worker": ("use_worker", False),
                   "no_build": ("build_image", False)}


def settings_flags(args: dict) -> dict:
    """The Settings overrides among a command's arguments (pass `locals()`): those of the shared
    flags it declares."""
    values = {setting: args[name] for name, setting in FLAG_SETTINGS.items() if name in args}
    switches = {setting: on if args[name] else None for name, (setting, on) in SWITCH_SETTINGS.items() if name in args}
    return {**values, **switches}


IndexUrl = Annotated[Optional[str], typer.Option(metavar="URL", help="pip's index for the sandbox's dependency "
                                                "image (a proxy, a mirror); passed to pip as PIP_INDEX_URL.")]
FindLinks = Annotated[Optional[str], typer.Option(metavar="DIR|URL", help="A folder or page of wheels for the "
                                                  "dependency image (offline: set PIP_NO_INDEX=1 too).")]


def pip_pass_through(index_url: Optional[str], find_links: Optional[str]) -> None:
    """--index-url and --find-links reach the dependency builds as pip's own environment settings
    (sandbox/images.py passes those PIP_* through, and mounts a local --find-links folder)."""
    import os

    if index_url:
        os.environ["PIP_INDEX_URL"] = index_url
    if find_links:
        os.environ["PIP_FIND_LINKS"] = find_links


TrustRepo = Annotated[bool, typer.Option(
    "--trust-repo-config", help="Read every setting in the repository's [tool.repair-agent], the sandbox and "
                                "model included (default: only tests, problem and search size).")]
