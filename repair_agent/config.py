"""Settings: CLI flags > environment (REPAIR_AGENT_*) > [tool.repair-agent] in the repo > defaults.

The repository under repair is not trusted (in CI it is a pull request's branch): from its
pyproject.toml only REPO_SAFE is read, unless the user passes --trust-repo-config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, PrivateAttr

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


# What a repository may set for itself: how to test it, what it should do, and how hard to search.
# None of these can loosen isolation or send data elsewhere: the sandbox, its image, test edits and
# the model (server, key, path, backend, profile) stay the user's. The search's size is bounded by
# token_budget and wall_time_s, which the repository cannot set; its timeouts are capped at wall_time_s.
REPO_SAFE = frozenset({"test", "problem", "rounds", "samples", "strategies", "search_lines", "max_candidates",
                       "infill_samples", "plausible", "test_timeout_s", "per_test_timeout_s", "known_failures"})
REPO_CAPPED = ("test_timeout_s", "per_test_timeout_s")
# What `ci` does not take even of these: the code under review (a pull request's branch) would
# declare its own failing tests known, and so pass them off as the baseline
NOT_UNDER_REVIEW = frozenset({"known_failures"})
# What `--strategies` may name, cheapest first: the search's sources (mutate, infill), then the
# model's monologue and rewrite, refined round by round (refine)
STRATEGIES = ("mutate", "infill", "refine")


class Settings(BaseModel):
    _source: dict = PrivateAttr(default_factory=dict)  # name -> flag | env | repo, for non-defaults

    test: str | list[str] = ""  # pytest arguments, e.g. "tests/test_x.py -k slow", or a list of them
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
    python: str | None = None  # X.Y, the sandbox's Python (None: the repository's; sandbox/releases.python_for)
    build_image: bool = True  # a missing base image of ours is built on first use (fix --no-build: refused)
    deps: list[str] | str = []  # pip packages for the sandbox's image ("a,b" or a list); installs code: not REPO_SAFE
    install_project: bool = True  # the dependency image installs the project itself (`pip install .`)
    allow_test_edits: bool = False
    use_trace: bool = True
    use_sbfl: bool = True
    problem: str = ""  # a statement of what the code should do, when the caller has one
    strategies: str = "mutate,infill,refine"  # candidate sources, cheapest first (STRATEGIES)
    search_lines: int = 5  # infill masks this many of the 2x top-ranked lines mutate visits, by the mutants' evidence
    max_candidates: int = 1000  # candidates the search may check
    infill_samples: int = 8  # model samples per masked line
    plausible: int = 3  # distinct passing patches the search gathers (within its source) to choose from
    known_failures: list[str] | str = []  # tests (ids or path prefixes) failing already, not to fix: the baseline
    failing_tests: list[str] = []  # the tests to fix (a benchmark task's); other failures are the baseline

    def is_baseline(self, test_id: str) -> bool:
        known = [self.known_failures] if isinstance(self.known_failures, str) else self.known_failures
        prefixes = [k.strip() for item in known for k in item.split(",") if k.strip()]
        return any(test_id == p or test_id.startswith(p.rstrip(":") + "::") for p in prefixes) or \
            bool(self.failing_tests) and not any(holds_or_held(t, test_id) for t in self.failing_tests)

    def strategy_list(self) -> list[str]:
        names = [n.strip() for n in self.strategies.split(",") if n.strip()]
        unknown = [n for n in names if n not in STRATEGIES]
        if unknown or not names:
            from .errors import BadInput

            raise BadInput(f"unknown strategy {', '.join(unknown) or '(none)'}; use a comma-separated "
                           f"list of {', '.join(STRATEGIES)}")
        return [n for n in STRATEGIES if n in names]  # always cheapest first

    def needs_model(self) -> bool:
        return any(n in self.strategy_list() for n in ("infill", "refine"))

    @property
    def source(self) -> dict:
        """Where each setting that is not a default came from: flag, env or repo."""
        return dict(self._source)

    @classmethod
    def load(cls, repo: Path | None = None, trust_repo: bool = False,
             warn: Callable[[str], None] | None = None, under_review: bool = False, **cli) -> "Settings":
        """`repo`: the repository under repair (None: read no pyproject.toml). `warn` hears which of
        its settings were ignored; `trust_repo` reads them all; `under_review` (`ci`) reads REPO_SAFE
        but NOT_UNDER_REVIEW."""
        from_repo = {k: v for k, v in repo_table(repo).items() if k in cls.model_fields} if repo else {}
        allowed = REPO_SAFE - NOT_UNDER_REVIEW if under_review else REPO_SAFE
        ignored = [] if trust_repo else sorted(set(from_repo) - allowed)
        if ignored and warn:
            what = "tests, problem and search size" if under_review else \
                "tests, problem, known failures and search size"
            warn(f"ignored [tool.repair-agent] {', '.join(ignored)} in {Path(repo) / 'pyproject.toml'}: "
                 f"a repository under repair sets only its {what}, not its sandbox, model or budget"
                 + (" (`ci`: nor its known failures, as the code under review could name its own failing tests)"
                    if under_review else "")
                 + "; set these with flags or REPAIR_AGENT_* variables, or pass --trust-repo-config to `fix` "
                   "(`ci` never trusts the repository)")
        env = {n: os.environ[f"REPAIR_AGENT_{n.upper()}"] for n in cls.model_fields
               if f"REPAIR_AGENT_{n.upper()}" in os.environ}
        flags = {k: v for k, v in cli.items() if v is not None and k in cls.model_fields}
        values, source = {}, {}
        for where, layer in (("repo", {k: v for k, v in from_repo.items() if k not in ignored}),
                             ("env", env), ("flag", flags)):
            values.update(layer)
            source.update(dict.fromkeys(layer, where))
        settings = cls.model_validate(values)
        if not trust_repo:  # a repository's timeout never outlasts the user's wall time
            for name in REPO_CAPPED:
                if source.get(name) == "repo" and getattr(settings, name) > settings.wall_time_s:
                    setattr(settings, name, type(getattr(settings, name))(settings.wall_time_s))
        settings._source = source
        return settings


def repo_table(repo: Path) -> dict:
    """[tool.repair-agent] of `repo`'s pyproject.toml, with `-` in names read as `_`."""
    pyproject = Path(repo) / "pyproject.toml"
    try:
        table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("repair-agent", {})
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return {k.replace("-", "_"): v for k, v in table.items()} if isinstance(table, dict) else {}


def names_test(selector: str, test_id: str) -> bool:
    """Whether a node id given as a task's failing test names `test_id`: itself, one of its
    parametrized cases (`t.py::test_f` names `t.py::test_f[1-2]`), or a test inside it (a class)."""
    return test_id == selector or test_id.startswith((selector + "[", selector + "::"))


def holds_or_held(a: str, b: str) -> bool:
    """Whether one of two test ids names the other: a module that failed to collect (its file is the
    failing id) fails every test in it, so its error is a named test's failure, not the baseline."""
    return names_test(a, b) or names_test(b, a)
