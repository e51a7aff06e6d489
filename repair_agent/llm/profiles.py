"""Model profiles: which endpoint a model wants, how its prompt is laid out, how it samples.

Profiles live in TOML files under `repair_agent/prompts/profiles/` (one per profile, `name.toml`). Extra
directories can be put first with `$REPAIR_AGENT_PROFILES` (os.pathsep-separated).

    endpoint = "chat" | "completions"
    template = "chat" | "<name>"       # "chat": the server applies the model's chat template
    max_tokens = 1024
    stop = [...]
    [sampling]  temperatures = [0.0, 0.8]   # by round; the last one repeats; 0.0 = greedy, n = 1
                top_p = 0.95                # for sampled rounds (greedy rounds use 1.0)
    [format]    system/user/assistant = "...{content}..."; response_prefix = "..."   # completions
    [infill]    fim = "...{prefix}...{suffix}..."   # the model's fill-in-the-middle layout, sent raw
                                                    # to /v1/completions; "" = a chat cloze prompt
                stop = [...]; max_tokens = 48       # per masked line
                temperature = 0.8                   # top_p is [sampling]'s
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..errors import BadInput
from ..prompts import PROMPTS_DIR
from .client import Sampling

ENDPOINTS = ("chat", "completions")


def profile_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("REPAIR_AGENT_PROFILES", "").split(os.pathsep) if p]
    return dirs + [Path(PROMPTS_DIR / "profiles")]  # the package's own, shipped as package data


@dataclass(frozen=True)
class InfillFormat:
    """How the model fills a masked line (repair_agent.search.infill)."""

    fim: str = ""  # e.g. "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"; "" = chat cloze
    stop: tuple[str, ...] = ()
    max_tokens: int = 48  # per masked line
    temperature: float = 0.8


@dataclass(frozen=True)
class Profile:
    name: str
    endpoint: str = "chat"
    template: str = "chat"
    max_tokens: int = 1024
    stop: tuple[str, ...] = ()
    temperatures: tuple[float, ...] = (0.0, 0.8)
    top_p: float = 0.95
    formats: dict = field(default_factory=dict)  # role -> format string; "response_prefix"
    source: str = ""
    infill: InfillFormat = field(default_factory=InfillFormat)

    def temperature(self, round: int) -> float:
        return self.temperatures[min(max(round, 0), len(self.temperatures) - 1)]

    def sampling(self, round: int, n: int = 1, seed: int | None = None) -> Sampling:
        """Round 0 (or any round whose temperature is 0): one greedy sample; later: `n` samples."""
        temp = self.temperature(round)
        if temp <= 0:
            return Sampling(n=1, temperature=0.0, top_p=1.0, max_tokens=self.max_tokens,
                            stop=list(self.stop), seed=seed)
        return Sampling(n=max(n, 1), temperature=temp, top_p=self.top_p, max_tokens=self.max_tokens,
                        stop=list(self.stop), seed=seed)

    def render(self, messages: list[dict]) -> list[dict]:
        """Messages for this profile's endpoint.

        chat: the messages as they are (copied). completions: one user message whose content is
        the whole prompt string in the template's layout (OpenAIModel sends it as `prompt`).
        """
        if self.endpoint == "chat":
            return [dict(m) for m in messages]
        return [{"role": "user", "content": self.prompt(messages)}]

    def prompt(self, messages: list[dict]) -> str:
        parts = []
        for m in messages:
            role = m.get("role", "user")
            fmt = self.formats.get(role)
            if fmt is None:
                raise BadInput(f"profile {self.name!r} has no format for role {role!r}")
            parts.append(fmt.format(content=m.get("content") or ""))
        return "".join(parts) + self.formats.get("response_prefix", "")


def _load(path: Path) -> Profile:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"cannot read model profile {path}: {exc}") from exc
    sampling = data.get("sampling", {})
    formats = dict(data.get("format", {}))
    infill = data.get("infill", {})
    prof = Profile(
        name=data.get("name", path.stem),
        endpoint=data.get("endpoint", "chat"),
        template=data.get("template", "chat"),
        max_tokens=int(data.get("max_tokens", 1024)),
        stop=tuple(data.get("stop", [])),
        temperatures=tuple(float(t) for t in sampling.get("temperatures", (0.0, 0.8))) or (0.0,),
        top_p=float(sampling.get("top_p", 0.95)),
        formats=formats,
        source=str(path),
        infill=InfillFormat(fim=infill.get("fim", ""), stop=tuple(infill.get("stop", [])),
                            max_tokens=int(infill.get("max_tokens", 48)),
                            temperature=float(infill.get("temperature", 0.8))),
    )
    if prof.endpoint not in ENDPOINTS:
        raise BadInput(f"model profile {path}: endpoint must be one of {ENDPOINTS}, not {prof.endpoint!r}")
    if prof.infill.fim and not all(f"{{{k}}}" in prof.infill.fim for k in ("prefix", "suffix")):
        raise BadInput(f"model profile {path}: [infill] fim needs {{prefix}} and {{suffix}}")
    if prof.endpoint == "completions":
        missing = [r for r in ("system", "user", "assistant") if r not in formats]
        if missing:
            raise BadInput(f"model profile {path}: a completions profile needs [format] {', '.join(missing)}")
    return prof


def available() -> dict[str, Path]:
    """Profile name -> file; earlier directories win."""
    found: dict[str, Path] = {}
    for d in profile_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                found.setdefault(p.stem, p)
    return found


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    text = str(name_or_path)
    if text.endswith(".toml") and Path(text).is_file():
        return _load(Path(text))
    files = available()
    if text not in files:
        raise BadInput(f"unknown model profile {text!r}; available: {', '.join(sorted(files)) or 'none'} "
                       f"(searched {', '.join(str(d) for d in profile_dirs())})")
    return _load(files[text])


def profile_for(model_name: str, override: str | None = None) -> Profile:
    """`override` (a profile name or a .toml path) if given, else by the model's name."""
    if override:
        return load_profile(override)
    low = (model_name or "").lower()
    if "semcoder" in low:
        return load_profile("semcoder")
    if "qwen" in low:
        return load_profile("qwen2.5-coder")
    return load_profile("generic-chat")
