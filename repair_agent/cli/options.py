"""The options several commands share: the model, candidate-source and budget flags of `fix` and `ci`
(and some of `bench`), pip's pass-through, and the help style of every command group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

# rich_markup_mode=None: click's plain help. Typer's rich help tags every flag with a type (`--apply <bool>`,
# as if it took a value); the plain one shows a metavar only where an option takes a value.
PLAIN = {"no_args_is_help": True, "rich_markup_mode": None}

# The model, candidate-source and budget flags that `fix` and `ci` share; model_flags() turns them
# into Settings overrides (None: not given, so the environment or the default decides).
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
MODEL_FLAGS = {"base_url": "base_url", "model": "model", "model_path": "model_path", "backend": "backend",
               "profile": "profile", "rounds": "rounds", "samples": "samples", "test_timeout": "test_timeout_s",
               "strategies": "strategies", "search_lines": "search_lines", "max_candidates": "max_candidates",
               "infill_samples": "infill_samples", "plausible": "plausible"}  # parameter -> setting


def model_flags(args: dict) -> dict:
    """The Settings overrides among a command's arguments (pass `locals()`)."""
    return {setting: args[name] for name, setting in MODEL_FLAGS.items()}


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
