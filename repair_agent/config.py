"""Settings: CLI flags > environment (REPAIR_AGENT_*) > [tool.repair-agent] in the repo > defaults."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


class Settings(BaseModel):
    test: str = ""  # pytest arguments, e.g. "tests/test_x.py -k slow"
    base_url: str | None = None  # an OpenAI-compatible server; None = the embedded default model
    model: str | None = None
    model_path: str | None = None  # a GGUF (embedded llama.cpp) or a checkpoint dir (transformers)
    backend: str = "llama-cpp"  # the embedded backend: llama-cpp | transformers
    profile: str | None = None
    api_key: str = "not-needed"
    rounds: int = 3
    samples: int = 3
    max_tokens: int = 1024  # the sampling schedule itself comes from the model's profile
    seed: int | None = 0
    token_budget: int = 200_000
    wall_time_s: float = 3600
    test_timeout_s: float = 300  # one whole test run
    per_test_timeout_s: int = 60  # one test (pytest-timeout): a hanging test fails instead of stalling
    model_timeout_s: float = 600
    sandbox: str = "auto"
    use_worker: bool = True  # candidates through the warm test worker, not one docker exec each
    image: str | None = None
    allow_test_edits: bool = False
    use_trace: bool = True
    use_sbfl: bool = True
    problem: str = ""  # a statement of what the code should do, when the caller has one
    strategies: str = "mutate,infill,refine"  # candidate sources, cheapest first (repair_agent/search)
    search_lines: int = 5  # the top-ranked lines infill masks (mutate visits twice as many)
    max_candidates: int = 1000  # candidates the search may check
    infill_samples: int = 8  # model samples per masked line
    plausible: int = 3  # distinct passing patches the search gathers (within its source) to choose from

    def strategy_list(self) -> list[str]:
        from .search import SOURCES

        names = [n.strip() for n in self.strategies.split(",") if n.strip()]
        unknown = [n for n in names if n not in SOURCES]
        if unknown or not names:
            from .errors import BadInput

            raise BadInput(f"unknown strategy {', '.join(unknown) or '(none)'}; use a comma-separated "
                           f"list of {', '.join(SOURCES)}")
        return [n for n in SOURCES if n in names]  # always cheapest first

    def needs_model(self) -> bool:
        return any(n in self.strategy_list() for n in ("infill", "refine"))

    @classmethod
    def load(cls, repo: Path | None = None, **cli) -> "Settings":
        values: dict = {}
        pyproject = Path(repo or ".") / "pyproject.toml"
        if pyproject.is_file():
            try:
                values.update(tomllib.loads(pyproject.read_text()).get("tool", {}).get("repair-agent", {}))
            except tomllib.TOMLDecodeError:
                pass
        values = {k.replace("-", "_"): v for k, v in values.items()}
        for name in cls.model_fields:
            env = os.environ.get(f"REPAIR_AGENT_{name.upper()}")
            if env is not None:
                values[name] = env
        values.update({k: v for k, v in cli.items() if v is not None})
        return cls.model_validate({k: v for k, v in values.items() if k in cls.model_fields})
