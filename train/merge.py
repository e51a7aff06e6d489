"""Merge a LoRA adapter into its base model and save a full checkpoint.

    python -m train.merge --adapter out/adapter --out out/merged [--base NAME_OR_PATH]

--base defaults to the adapter's base_model_name_or_path. The merged checkpoint (safetensors) and
the tokenizer (the adapter directory's, which carries the training chat template, else the
base's) are written to --out; it loads with AutoModelForCausalLM and serves with `vllm serve OUT`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.merge", description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default=None, help="base model (default: from adapter_config.json)")
    p.add_argument("--adapter", required=True, help="LoRA adapter directory (train.sft --lora output)")
    p.add_argument("--out", required=True, help="directory for the merged checkpoint")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="weights dtype of the merged model (auto: the base's)")
    return p.parse_args(argv)


def merge(base: str | None, adapter: str | Path, out: str | Path, dtype: str = "auto") -> Path:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .sft import dtype_kwarg

    adapter, out = Path(adapter), Path(out)
    config_file = adapter / "adapter_config.json"
    if not config_file.exists():
        raise SystemExit(f"{adapter}: no adapter_config.json (not a LoRA adapter directory)")
    base = base or json.loads(config_file.read_text()).get("base_model_name_or_path")
    if not base:
        raise SystemExit("the adapter names no base model; pass --base")
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(base, **dtype_kwarg(torch_dtype))
    model = PeftModel.from_pretrained(model, str(adapter))
    merged = model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    tok_src = adapter if (adapter / "tokenizer_config.json").exists() else base
    AutoTokenizer.from_pretrained(tok_src).save_pretrained(out)
    print(f"merged {adapter} into {base} -> {out}", flush=True)
    return out


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    return merge(args.base, args.adapter, args.out, args.dtype)


if __name__ == "__main__":
    main(sys.argv[1:])
