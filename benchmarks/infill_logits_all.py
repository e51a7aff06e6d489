"""What llama-cpp-python's `logits_all` costs the search's infill: the same fill-in-the-middle
prompt sampled N times (the prefix cached after the first), with logits_all and logprobs, and
without. Medians of the cached samples' seconds per generated token, side by side in one run.

Usage: .venv/bin/python benchmarks/infill_logits_all.py [--model qwen2.5-coder-0.5b] [--samples 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import llama_cpp

from repair_agent.llm.model_files import resolve_gguf

SOURCE = Path(__file__).resolve().parents[1] / "repair_agent" / "search" / "infill.py"


def run(gguf: str, logits_all: bool, samples: int, threads: int) -> dict:
    llm = llama_cpp.Llama(gguf, n_ctx=4096, n_threads=threads, n_threads_batch=threads, logits_all=logits_all,
                          verbose=False)
    src = SOURCE.read_text()[:2500]
    prompt = f"<|fim_prefix|>{src[:2000]}<|fim_suffix|>{src[2100:]}<|fim_middle|>"
    first, per_token = 0.0, []
    for i in range(samples):
        start = time.perf_counter()
        out = llm.create_completion(prompt=prompt, max_tokens=32, temperature=0.8, top_p=0.95, stop=["\n"], seed=i,
                                    **({"logprobs": 1} if logits_all else {}))
        took = time.perf_counter() - start
        if i == 0:
            first = took
        else:
            per_token.append(took / max(1, out["usage"]["completion_tokens"]))
    return {"first_s": round(first, 2), "cached_s_per_token": round(statistics.median(per_token), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    gguf = str(resolve_gguf(args.model))
    with_, without = run(gguf, True, args.samples, args.threads), run(gguf, False, args.samples, args.threads)
    print(f"logits_all + logprobs: {with_}")
    print(f"neither:               {without}")
    print(f"ratio per cached token: {with_['cached_s_per_token'] / without['cached_s_per_token']:.1f}x; "
          f"first sample (prompt): {with_['first_s'] / without['first_s']:.1f}x")


if __name__ == "__main__":
    main()
