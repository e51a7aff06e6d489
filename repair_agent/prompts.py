"""Prompt templates live in the top-level `prompts/` folder as Jinja2 files."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(PROMPTS_DIR), keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined, autoescape=False)


def render(name: str, **values) -> str:
    return _env().get_template(name).render(**values)


def text(name: str) -> str:
    return (PROMPTS_DIR / name).read_text()
