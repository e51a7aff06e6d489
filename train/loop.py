"""The closed loop, end to end: the embedded model fine-tuned on repair records, served again, measured.

    python -m train.loop --data infill.jsonl --work DIR [--base qwen2.5-coder-0.5b]
        [--name qwen2.5-coder-0.5b-repair] [--steps 200] [--quant q4_k_m] [--probe-samples 12]
        [--probe-ids gcd,bitcount] [--no-probe]

--data: records shaped as the agent's prompts (`repair-agent traces synth` / `traces export`; the
data card in docs/training.md says which sources are allowed: no benchmark code). Stages, each
skipped when its output is already in --work (so a stopped loop goes on where it stopped):
  base-hf/      the base GGUF as a transformers checkpoint    (train/gguf.py to-hf)
  lora/         a LoRA adapter, --steps steps                  (train/sft.py)
  merged/       base + adapter                                 (train/merge.py)
  tuned.gguf    the merged model, quantized as --quant         (train/gguf.py to-gguf)
  (--name)      added to the model cache: `fix --model NAME` serves it
  probe-base.json, probe-tuned.json   the QuixBugs infill probe, same samples and seeds for both
  train-loop.json                     holes, base_hits, tuned_hits and the stages' seconds
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from . import gguf, merge, sft

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.loop", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="JSONL records shaped as the agent's prompts")
    p.add_argument("--work", required=True, type=Path, help="the loop's folder (resumable)")
    p.add_argument("--base", default="qwen2.5-coder-0.5b", help="a registry model or GGUF file")
    p.add_argument("--name", default="qwen2.5-coder-0.5b-repair", help="the tuned model's name in the cache")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=1536)
    p.add_argument("--quant", default="q4_k_m", choices=sorted(gguf.QUANT_TYPES), help="as the base's, for a fair test")
    p.add_argument("--probe-samples", type=int, default=12)
    p.add_argument("--probe-ids", default="", help="QuixBugs programs to probe (default: all 40)")
    p.add_argument("--no-probe", action="store_true", help="stop after adding the model")
    return p.parse_args(argv)


def stage(seconds: dict, name: str, done: Path, run) -> None:
    if done.exists():
        print(f"[{name}] {done} is there: skipped", flush=True)
        return
    print(f"[{name}] ...", flush=True)
    start = time.monotonic()
    run()
    seconds[name] = round(time.monotonic() - start, 1)
    print(f"[{name}] {seconds[name]} s", flush=True)


def probe(model: str, out: Path, args) -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "infill_probe.py"), "--model", model,
           "--samples", str(args.probe_samples), "--json", str(out.with_suffix(".part"))]
    subprocess.run(cmd + (["--ids", args.probe_ids] if args.probe_ids else []), check=True)
    out.with_suffix(".part").rename(out)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    work, seconds = args.work, {}
    work.mkdir(parents=True, exist_ok=True)
    if not args.data.is_file():
        raise SystemExit(f"--data {args.data}: no such file")
    stage(seconds, "base-hf", work / "base-hf" / "config.json", lambda: gguf.to_hf(args.base, work / "base-hf"))
    stage(seconds, "lora", work / "lora" / "adapter_config.json", lambda: sft.main([
        "--data", str(args.data), "--model", str(work / "base-hf"), "--output-dir", str(work / "lora"), "--lora",
        "--max-steps", str(args.steps), "--lr", str(args.lr), "--batch-size", str(args.batch_size),
        "--max-length", str(args.max_length)]))
    stage(seconds, "merged", work / "merged" / "config.json", lambda: merge.merge(None, work / "lora", work / "merged"))
    stage(seconds, "gguf", work / "tuned.gguf", lambda: gguf.to_gguf(work / "merged", work / "tuned.gguf", args.quant))
    from repair_agent.llm.model_files import add_local

    add_local(args.name, work / "tuned.gguf", f"{args.base} + LoRA ({args.steps} steps) on {args.data.name}")
    summary = {"base": args.base, "tuned": args.name, "data": str(args.data), "steps": args.steps,
               "records": sum(1 for line in args.data.open() if line.strip()), "seconds": seconds}
    if not args.no_probe:
        stage(seconds, "probe-base", work / "probe-base.json", lambda: probe(args.base, work / "probe-base.json", args))
        stage(seconds, "probe-tuned", work / "probe-tuned.json", lambda: probe(args.name, work / "probe-tuned.json", args))
        base, tuned = (json.loads((work / f"probe-{k}.json").read_text())["summary"] for k in ("base", "tuned"))
        summary.update(holes=base["programs"], base_hits=base["exact_any_mask"], tuned_hits=tuned["exact_any_mask"],
                       samples_per_hole=args.probe_samples)
    (work / "train-loop.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
