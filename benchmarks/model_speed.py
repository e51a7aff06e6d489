"""In-process llama.cpp vs llama.cpp's OpenAI-compatible server: greedy decoding speed and memory.

    python benchmarks/model_speed.py                       # qwen2.5-coder-0.5b, 128 tokens, 5 runs
    python benchmarks/model_speed.py --model smollm2-135m --threads 2 --runs 5 --json out.json

Each backend runs in its own child process so that peak RSS (VmHWM) is measured per backend:
for the in-process backend that is the process holding the model, for the server backend it is
the server process (the client's own RSS is reported beside it). One warm-up generation is made
first (it loads the weights and fills the prompt cache), then `--runs` timed generations of the same
prompt; tokens/s = completion tokens / wall seconds of the call, and the median is reported.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = [{"role": "user", "content": "Write a Python module that implements a binary search tree class with "
           "insert, delete, search, minimum, maximum and in-order traversal methods. Give every method a "
           "docstring and add type hints."}]


def _vmhwm_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _time_runs(model, tokens: int, runs: int) -> dict:
    from repair_agent.llm.client import Sampling

    s = Sampling(n=1, temperature=0.0, max_tokens=tokens)
    t0 = time.monotonic()
    model.generate(PROMPT, s)  # warm-up: weights paged in, prompt cached
    warmup = time.monotonic() - t0
    rates, counts, texts = [], [], set()
    for _ in range(runs):
        t = time.monotonic()
        g = model.generate(PROMPT, s)
        dt = time.monotonic() - t
        rates.append(g.completion_tokens / dt)
        counts.append(g.completion_tokens)
        texts.add(g.completions[0]["text"])
    return dict(tokens_per_s_median=round(statistics.median(rates), 1), tokens_per_s=[round(r, 1) for r in rates],
                completion_tokens=counts, warmup_s=round(warmup, 2), distinct_outputs=len(texts))


def worker(backend: str, model_name: str, tokens: int, runs: int, threads: int, n_ctx: int) -> dict:
    from repair_agent.llm.llamacpp import LlamaCppModel, start_llama_server

    t0 = time.monotonic()
    if backend == "inproc":
        model = LlamaCppModel(model_name, n_ctx=n_ctx, n_threads=threads)
        load = time.monotonic() - t0
        out = _time_runs(model, tokens, runs)
        out.update(peak_rss_mb=round(_vmhwm_mb(), 1))
    else:
        from repair_agent.llm.client import OpenAIModel

        with start_llama_server(model_name, n_ctx=n_ctx, n_threads=threads, die_with_parent=True) as server:
            model = OpenAIModel(server.base_url, endpoint="chat", batch_n=False)
            load = time.monotonic() - t0
            out = _time_runs(model, tokens, runs)
            out.update(peak_rss_mb=round(_vmhwm_mb(server.pid), 1),
                       client_peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    out.update(backend=backend, model=model_name, threads=threads, start_s=round(load, 2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--backends", default="inproc,server")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.model, a.tokens, a.runs, a.threads, a.n_ctx)))
        return
    from repair_agent.models import install

    install(a.model, log=lambda m: print(m, file=sys.stderr))
    results = []
    for backend in a.backends.split(","):
        cmd = [sys.executable, __file__, "--worker", backend, "--model", a.model, "--tokens", str(a.tokens),
               "--runs", str(a.runs), "--threads", str(a.threads), "--n-ctx", str(a.n_ctx)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{backend:7s} {a.model}: {r['tokens_per_s_median']:6.1f} tok/s median of {a.runs} "
              f"{r['tokens_per_s']}, tokens {r['completion_tokens']}, peak RSS {r['peak_rss_mb']:.0f} MB"
              + (f" (+ client {r['client_peak_rss_mb']:.0f} MB)" if "client_peak_rss_mb" in r else "")
              + f", start {r['start_s']} s", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
