"""Execution reasoning of the embedded models (repair_agent/eval/reasoning.py), one result file per model.

    python benchmarks/reasoning_eval.py --model qwen2.5-coder-0.5b --limit 12 \\
        --out benchmarks/results/reasoning-qwen0.5b.json
    python benchmarks/reasoning_eval.py --base-url http://127.0.0.1:8000/v1 --out reasoning-semcoder.json

Each model is served as `fix` serves it (llama.cpp on loopback, all cores), or reached at --base-url,
and `evaluate` runs on QuixBugs and mpmath with the same seed, so every model gets the same items.
The file is the evaluation's result plus the command line, the machine (cores, load average before
and after) and the wall time. A result meant for benchmarks/results/ must name a clean commit: the
script refuses a checkout with uncommitted changes unless --allow-dirty.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from repair_agent.config import Settings  # noqa: E402
from repair_agent.eval.reasoning import REPOSITORIES, code_version, evaluate  # noqa: E402
from repair_agent.llm.factory import open_model  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="an embedded model (repair-agent models list), or the name at --base-url")
    p.add_argument("--base-url", help="an OpenAI-compatible server instead of an embedded model")
    p.add_argument("--repos", default=",".join(REPOSITORIES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-function", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="items per repository, at most")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--allow-dirty", action="store_true", help="run on uncommitted code (not for results/)")
    a = p.parse_args(argv)
    code = code_version()
    if code.endswith("-dirty") and not a.allow_dirty:
        print(f"the checkout has uncommitted changes ({code}): commit first, or --allow-dirty", file=sys.stderr)
        return 2
    settings = Settings.load(None, model=a.model, base_url=a.base_url)
    load_before = os.getloadavg()
    started = time.monotonic()
    with open_model(settings, log=lambda m: print(m, file=sys.stderr, flush=True)) as model:
        result = evaluate(model, [r for r in a.repos.split(",") if r], seed=a.seed, per_function=a.per_function,
                          limit=a.limit, log=lambda m: print(m, file=sys.stderr, flush=True))
    wall = time.monotonic() - started
    result = {"command": "python " + shlex.join(["benchmarks/reasoning_eval.py", *(argv or sys.argv[1:])]),
              "wall_s": round(wall, 1), "machine": {"cores": os.cpu_count(), "load_before": load_before,
                                                   "load_after": os.getloadavg()}, **result}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    s = result["scores"]
    print(f"{result['model']}: output {s['output']['score']}% ({s['output']['correct']}/{s['output']['items']}), "
          f"input {s['input']['score']}% ({s['input']['correct']}/{s['input']['items']}); {wall:.0f}s; "
          f"code {result['code']} -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
