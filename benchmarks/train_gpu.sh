#!/bin/bash
# train/ on a CUDA GPU: tiny full fine-tune, LoRA, merge and generation, then LoRA steps on a
# randomly initialised model of SemCoder's shape (6.7B, no download) for the step time and memory.
#   benchmarks/train_gpu.sh SFT.jsonl [OUT_DIR]     (SFT.jsonl: `repair-agent traces export` output)
# Needs torch with CUDA, transformers and peft; writes train logs and a summary to OUT_DIR.
set -o pipefail
DATA=${1:?usage: benchmarks/train_gpu.sh SFT.jsonl [OUT_DIR]}; OUT=${2:-${OUT:-/tmp/train-gpu}}
PY=${PY:-python3}; W=$(mktemp -d)
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c 'import torch,transformers,peft;print("torch",torch.__version__,"cuda",torch.cuda.is_available(),"transformers",transformers.__version__,"peft",peft.__version__)'
} 2>&1 | tee "$OUT/env.txt"
$PY -m train.sft --data "$DATA" --model tiny-random-llama --output-dir "$W/tiny-full" --max-steps 30 --lr 3e-3 --batch-size 8 2>&1 | tail -2
$PY -m train.sft --data "$DATA" --model "$W/tiny-full/tiny-base" --output-dir "$W/tiny-lora" --lora --max-steps 30 --lr 3e-3 --batch-size 8 2>&1 | tail -2
$PY -m train.merge --adapter "$W/tiny-lora" --out "$W/tiny-merged" 2>&1 | tail -1
$PY - "$W/tiny-merged" <<'PY'
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).to("cuda")
ids = tok("def f(x):", return_tensors="pt").to("cuda")
print("merged model generates on", model.device, repr(tok.decode(model.generate(**ids, max_new_tokens=8, do_sample=False)[0])))
PY
cp "$W/tiny-full/train_log.json" "$OUT/tiny_full_log.json"; cp "$W/tiny-lora/train_log.json" "$OUT/tiny_lora_log.json"
$PY benchmarks/semcoder_shape.py "$W/tiny-full/tiny-base" "$W/shape" 2>&1 | tail -1
$PY - "$DATA" "$W" <<'PY' 2>&1 | grep -E '^(PEAK|saved)' | tee "$OUT/semcoder_shape_lora.txt"
import json, sys, torch
from train.sft import main
s = main(["--data", sys.argv[1], "--model", f"{sys.argv[2]}/shape", "--output-dir", f"{sys.argv[2]}/shape-lora",
          "--lora", "--max-steps", "8", "--batch-size", "4", "--max-length", "2048"])
print("PEAK", json.dumps({"peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30,
      "median_step_seconds": s["median_step_seconds"], "examples": s["examples"], "tokens": s["tokens"]}))
PY
rm -rf "$W"
