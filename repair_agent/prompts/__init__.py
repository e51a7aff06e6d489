"""Prompt templates (Jinja2 files) and model profiles (`profiles/*.toml`), shipped as package data
in this folder and found through importlib.resources."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import jinja2

PROMPTS_DIR = resources.files(__name__)


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader(__name__, "."), keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined, autoescape=False)


def render(name: str, **values) -> str:
    return _env().get_template(name).render(**values)


def text(name: str) -> str:
    return (PROMPTS_DIR / name).read_text()
