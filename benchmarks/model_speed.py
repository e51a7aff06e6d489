"""In-process llama.cpp vs llama.cpp's OpenAI-compatible server: greedy decoding speed and memory;
or, with --compare, several models side by side as the agent serves them.

    python benchmarks/model_speed.py                       # qwen2.5-coder-0.5b, 128 tokens, 5 runs
    python benchmarks/model_speed.py --model smollm2-135m --threads 2 --runs 5 --json out.json
    python benchmarks/model_speed.py --compare qwen2.5-coder-0.5b,qwen2.5-coder-1.5b --runs 5 --json out.json

--compare: every model is served on loopback twice, by llama-cpp-python's server and by the agent's
(as `fix`, `explain` and `bench` serve the embedded model), all at once, and the rounds alternate between them, so that a change in
the machine's load falls on every model alike. Per round and model:
  - prompt tokens/s: a QuixBugs program and its test file as a raw prompt, one token generated; a
    line that names the round comes first, so no earlier prompt is in llama.cpp's cache;
  - generated tokens/s: the greedy chat prompt below, --tokens tokens, its prompt cached;
  - fill-in-the-middle samples/s: the search's infill prompt for --task with its buggy line masked
    (repair_agent.search.infill: masks, context, and _ask's sampling: T 0.8, stop at a newline),
    --fim-samples samples, one request each to llama-cpp-python's own server (`fim_samples_per_s`),
    the prefix cached by a warm-up;
  - batched samples/s: the same, one request for all samples to the server the agent starts
    (repair_agent.llm.llama_server: the samples decoded together, `batched_samples_per_s`); the
    two infill measurements take turns going first, and `batched_speedup` is the median of the
    rounds' ratios.
Medians over --runs rounds are reported.

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

from repair_agent.llm.client import Sampling  # noqa: E402

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


# ---- --compare: several models side by side ---------------------------------------------------------

def infill_prompt(task_id: str):
    """The search's fill-in-the-middle inputs for QuixBugs `task_id` with its buggy line masked (the
    known line, as benchmarks/infill_probe.py does), and the program with its tests for prompt eval."""
    import ast

    from repair_agent.bench.datasets import load_quixbugs, quixbugs_bug_lines
    from repair_agent.search import infill

    (task,) = load_quixbugs([task_id])
    bug = quixbugs_bug_lines([task_id])[task_id]
    text = task.files[bug["file"]]
    tree = ast.parse(text)
    mask = infill.masks(text, bug["lines"][0], tree)[0]  # the line mask, tried first
    prefix, suffix = infill.context(text.splitlines(keepends=True), tree, mask, 1024 * infill.CHARS_PER_TOKEN)
    tests = next(content for path, content in task.files.items() if "test_" in path)
    return mask, prefix, suffix, text + "\n\n" + tests


def fim_round(model, r: int, task: tuple, samples: int) -> dict:
    """The search's infill request (infill._ask) for `samples` samples, its prefix cached by a warm-up."""
    from types import SimpleNamespace

    from repair_agent.llm.profiles import profile_for
    from repair_agent.search import infill

    mask, prefix, suffix, _ = task
    profile = profile_for(model.name)
    ctx = SimpleNamespace(model=model, settings=SimpleNamespace(seed=1000 * r))
    t = time.monotonic()
    infill._ask(ctx, profile, mask, prefix, suffix, n=1)  # warm-up: the prefix into the cache
    warmup = time.monotonic() - t
    t = time.monotonic()
    g = infill._ask(ctx, profile, mask, prefix, suffix, n=samples, seed_offset=1)
    dt = time.monotonic() - t
    return dict(prompt_tokens=g.prompt_tokens // max(g.requests, 1), warmup_s=warmup, samples_per_s=samples / dt,
                tokens_per_sample=g.completion_tokens / samples, requests=g.requests,
                answers=[c["text"] for c in g.completions])


def compare_round(model, batched, r: int, task: tuple, tokens: int, fim_samples: int) -> dict:
    """One round of the measurements for one served model: prompt eval, generation and infill on
    llama-cpp-python's server (one request per sample), and infill on the batched server (one
    request for all samples), the two infill measurements in turn, who goes first alternating."""
    program = task[3]
    fresh = f"# round {r} of the prompt-eval measurement\n{program}"  # a new first line: nothing cached
    t = time.monotonic()
    g = model.complete(fresh, Sampling(n=1, temperature=0.0, max_tokens=1))
    prompt_rate, prompt_tokens = g.prompt_tokens / (time.monotonic() - t), g.prompt_tokens

    s = Sampling(n=1, temperature=0.0, max_tokens=tokens)
    model.generate(PROMPT, s)  # its prompt into the cache (the fresh prompt above replaced it)
    t = time.monotonic()
    g = model.generate(PROMPT, s)
    gen_rate, gen_tokens = g.completion_tokens / (time.monotonic() - t), g.completion_tokens

    fim = {}
    for which in (("single", "batched") if r % 2 == 0 else ("batched", "single")):
        fim[which] = fim_round(model if which == "single" else batched, r, task, fim_samples)
    one, many = fim["single"], fim["batched"]
    return dict(prompt_tokens_per_s=prompt_rate, prompt_tokens=prompt_tokens,
                generated_tokens_per_s=gen_rate, generated_tokens=gen_tokens,
                fim_prompt_tokens=one["prompt_tokens"], fim_warmup_s=one["warmup_s"],
                fim_samples_per_s=one["samples_per_s"], fim_tokens_per_sample=one["tokens_per_sample"],
                fim_answers=one["answers"],
                batched_samples_per_s=many["samples_per_s"], batched_tokens_per_sample=many["tokens_per_sample"],
                batched_requests=many["requests"], batched_answers=many["answers"],
                batched_speedup=many["samples_per_s"] / one["samples_per_s"])


def compare(names: list[str], a) -> list[dict]:
    import contextlib

    from repair_agent.llm.client import OpenAIModel
    from repair_agent.llm.llamacpp import start_llama_server
    from repair_agent.llm.model_files import install

    task = infill_prompt(a.task)
    with contextlib.ExitStack() as stack:
        served = {}
        for name in names:
            install(name, log=lambda m: print(m, file=sys.stderr))
            t0 = time.monotonic()
            server = stack.enter_context(start_llama_server(name, n_ctx=a.n_ctx, n_threads=a.threads,
                                                            die_with_parent=True, batched=False))
            model = OpenAIModel(server.base_url, None, batch_n=False)  # llama-cpp-python's: no `n`
            model.generate(PROMPT, Sampling(n=1, temperature=0.0, max_tokens=1))  # weights paged in
            start = time.monotonic() - t0
            batched_server = stack.enter_context(start_llama_server(name, n_ctx=a.n_ctx, n_threads=a.threads,
                                                                    die_with_parent=True))
            batched = OpenAIModel(batched_server.base_url, None)  # n samples in one request
            served[name] = (server, model, start, batched_server, batched)
        rounds = {name: [] for name in names}
        for r in range(a.runs):
            for name in names if r % 2 == 0 else names[::-1]:  # alternate who goes first
                _, model, _, _, batched = served[name]
                rounds[name].append(compare_round(model, batched, r, task, a.tokens, a.fim_samples))
                x = rounds[name][-1]
                print(f"round {r + 1} {name}: prompt {x['prompt_tokens_per_s']:.0f} tok/s, generated "
                      f"{x['generated_tokens_per_s']:.1f} tok/s, infill {x['fim_samples_per_s']:.2f} samples/s, "
                      f"batched {x['batched_samples_per_s']:.2f} samples/s", file=sys.stderr, flush=True)
        results = []
        for name in names:
            server, model, start, batched_server, batched = served[name]
            rs = rounds[name]

            def med(key: str, nd: int = 1):
                return round(statistics.median(x[key] for x in rs), nd)

            results.append(dict(
                model=name, backend="server", threads=a.threads, runs=a.runs, task=a.task, start_s=round(start, 2),
                prompt_tokens_per_s=med("prompt_tokens_per_s"), generated_tokens_per_s=med("generated_tokens_per_s"),
                fim_samples_per_s=med("fim_samples_per_s", 2), fim_tokens_per_sample=med("fim_tokens_per_sample"),
                batched_samples_per_s=med("batched_samples_per_s", 2),
                batched_tokens_per_sample=med("batched_tokens_per_sample"),
                batched_speedup=med("batched_speedup", 2), fim_samples=a.fim_samples,
                prompt_tokens=rs[0]["prompt_tokens"], fim_prompt_tokens=rs[0]["fim_prompt_tokens"],
                generated_tokens=[x["generated_tokens"] for x in rs],
                per_round=[{k: (round(v, 2) if isinstance(v, float) else v) for k, v in x.items()} for x in rs],
                peak_rss_mb=round(_vmhwm_mb(server.pid), 1),
                batched_peak_rss_mb=round(_vmhwm_mb(batched_server.pid), 1)))
    return results


def print_compare(results: list[dict]) -> None:
    print(f"{'model':<22} {'prompt tok/s':>12} {'gen tok/s':>10} {'infill samples/s':>17} {'tok/sample':>10} "
          f"{'batched samples/s':>18} {'speedup':>8} {'peak RSS':>9} {'start':>6}")
    for r in results:
        print(f"{r['model']:<22} {r['prompt_tokens_per_s']:>12.0f} {r['generated_tokens_per_s']:>10.1f} "
              f"{r['fim_samples_per_s']:>17.2f} {r['fim_tokens_per_sample']:>10.1f} "
              f"{r['batched_samples_per_s']:>18.2f} {r['batched_speedup']:>7.2f}x {r['peak_rss_mb']:>6.0f} MB "
              f"{r['start_s']:>5.1f}s")
    r = results[0]
    print(f"medians of {r['runs']} rounds, {r['threads']} threads; prompt eval: {r['prompt_tokens']} tokens; "
          f"infill: QuixBugs {r['task']} with its buggy line masked, {r['fim_prompt_tokens']} prompt tokens, "
          f"{r['fim_samples']} samples; speedup: median of the rounds' batched / infill samples/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--backends", default="inproc,server")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--compare", metavar="A,B", help="models to measure side by side (served as the agent does)")
    ap.add_argument("--task", default="find_in_sorted", help="--compare: the QuixBugs program whose buggy line "
                    "is masked (default: one of median prompt size)")
    ap.add_argument("--fim-samples", type=int, default=8, help="--compare: infill samples per round (the search's "
                    "default per masked line)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.compare:
        results = compare([n for n in a.compare.split(",") if n], a)
        print_compare(results)
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=2))
        return
    if a.worker:
        print(json.dumps(worker(a.worker, a.model, a.tokens, a.runs, a.threads, a.n_ctx)))
        return
    from repair_agent.llm.model_files import install

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
