"""Keeping secrets out of logs, errors, commit messages, PR bodies and subprocess environments.

Which variables count as secret:

* by name: ``GITHUB_TOKEN``, ``GH_TOKEN``, ``REPAIR_AGENT_API_KEY``, ``OPENAI_API_KEY``;
* by suffix: any variable whose name ends in ``_TOKEN``, ``_KEY``, ``_SECRET`` or ``_PASSWORD``.

``secrets_from_env`` returns their *values* (to be masked in text): the named ones when they are at
least 4 characters long, the suffix-matched ones when they are at least 8 characters long (short
values such as ``SOME_KEY=1`` are not secrets, and masking them would garble every text).
``safe_env`` drops every such variable *by name*, whatever its value, so that a subprocess (the
sandbox, the test runner, git hooks) never inherits them.
"""

from __future__ import annotations

import os
import re
from typing import Iterable, Mapping

MASK = "***"

SECRET_NAMES: frozenset[str] = frozenset(
    {"GITHUB_TOKEN", "GH_TOKEN", "REPAIR_AGENT_API_KEY", "OPENAI_API_KEY"}
)
SECRET_SUFFIXES: tuple[str, ...] = ("_TOKEN", "_KEY", "_SECRET", "_PASSWORD")

_MIN_NAMED = 4
_MIN_SUFFIXED = 8

# Well-known token shapes, masked even when they are not in the environment
# (GitHub tokens: ghp_, gho_, ghu_, ghs_, ghr_, github_pat_; OpenAI-style sk-...).
_TOKEN_PATTERNS = [
    re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{20,}\b"),
]
# Credentials inside URLs: https://user:password@host/ or https://token@host/
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<cred>[^/@\s:]+(?::[^/@\s]*)?)@")
# An HTTP Authorization header as git or a library may echo it.
_AUTH_HEADER = re.compile(r"(?i)(authorization:\s*(?:basic|bearer|token)\s+)[A-Za-z0-9+/=._-]+")


def is_secret_name(name: str) -> bool:
    """True for the names of variables that hold secrets."""
    upper = name.upper()
    return upper in SECRET_NAMES or upper.endswith(SECRET_SUFFIXES)


def secrets_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """The secret values in ``env`` (default ``os.environ``), longest first, without duplicates."""
    env = os.environ if env is None else env
    found: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        value = value.strip()
        upper = name.upper()
        if upper in SECRET_NAMES and len(value) >= _MIN_NAMED:
            found.add(value)
        elif upper.endswith(SECRET_SUFFIXES) and len(value) >= _MIN_SUFFIXED:
            found.add(value)
    return sorted(found, key=lambda s: (-len(s), s))


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every secret replaced by ``***``.

    ``secrets``: the values to mask; ``None`` means :func:`secrets_from_env`. Well-known token
    shapes, credentials in URLs and Authorization headers are masked in any case.
    """
    if text is None:
        return text
    if not isinstance(text, str):
        text = str(text)
    values = secrets_from_env() if secrets is None else [s for s in secrets if s]
    for value in sorted(set(values), key=len, reverse=True):
        text = text.replace(value, MASK)
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(MASK, text)
    text = _URL_CREDENTIALS.sub(lambda m: m.group("scheme") + MASK + "@", text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + MASK, text)
    return text


def safe_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) without any secret-holding variable."""
    env = os.environ if env is None else env
    return {k: v for k, v in env.items() if not is_secret_name(k)}


__all__ = ["MASK", "is_secret_name", "redact", "safe_env", "secrets_from_env"]
