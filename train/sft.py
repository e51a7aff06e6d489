"""Supervised fine-tuning on PyX-R shaped JSONL records (loss on the response only).

    python -m train.sft --data traces.jsonl --model semcoder/semcoder_s_1030 --output-dir out \
        [--lora] [--max-steps N] [--epochs E] [--lr LR] [--max-length L] [--batch-size B]

Full fine-tuning or LoRA (peft; target modules detected from the model's linear layers).
bf16 on a GPU, fp32 on the CPU; gradient checkpointing where the model supports it. Saves the
model (or the adapter) and the tokenizer, with a chat template in SemCoder's instruction format,
to --output-dir, and the loss history to OUTPUT_DIR/train_log.json.
`--model tiny-random-llama` builds a tiny llama and tokenizer locally (train/tiny.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

from .data import CHAT_TEMPLATE, Collator, is_pyxr, load_records, prompt_and_answer, tokenize_records
from .tiny import TINY_NAME, build_tiny

log = logging.getLogger("train.sft")

# Projection names by architecture family, in order of preference.
LORA_TARGETS = [
    ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],  # llama, mistral, qwen
    ["c_attn", "c_proj", "c_fc"],  # gpt2 / starcoder
    ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],  # gpt-neox, falcon
    ["Wqkv", "out_proj", "fc1", "fc2"],  # phi, mpt
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.sft", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="JSONL records: fault, response, metadata")
    p.add_argument("--model", required=True, help=f"hub name or local path, or {TINY_NAME}")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--lora", action="store_true", help="train a LoRA adapter instead of all weights")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--lora-dropout", type=float, default=0.05)
    p.add_argument("--lora-target", default=None,
                   help="comma-separated module names (default: detected projections)")
    p.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (overrides --epochs)")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--lr", type=float, default=None, help="default 2e-5 full, 2e-4 LoRA")
    p.add_argument("--max-length", type=int, default=2048, help="tokens per example (prompt + response)")
    p.add_argument("--batch-size", type=int, default=1, help="per device")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--warmup-ratio", type=float, default=0.0, help="fraction of steps warming up the lr")
    p.add_argument("--lr-scheduler", default="cosine", help="a transformers scheduler name (cosine, constant, linear...)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--logging-steps", type=int, default=1)
    p.add_argument("--save-steps", type=int, default=0, help="intermediate checkpoints every N steps (0: off)")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=True)
    return p.parse_args(argv)


def detect_lora_targets(model) -> list[str]:
    """The projection names present in `model`; else every linear layer but the output head."""
    import torch

    linear_names = set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
            linear_names.add(name.rsplit(".", 1)[-1])
    for family in LORA_TARGETS:
        found = [n for n in family if n in linear_names]
        if found:
            return found
    rest = sorted(linear_names - {"lm_head", "embed_out", "output"})
    if not rest:
        raise ValueError("no linear layers found to put LoRA adapters on; pass --lora-target")
    return rest


def dtype_kwarg(dtype) -> dict:
    """`dtype=` for from_pretrained (transformers >= 4.56), `torch_dtype=` before."""
    import transformers
    from packaging.version import Version

    return {"dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype": dtype}


def _compatible(cls, **kwargs) -> dict:
    """TrainingArguments across transformers 4.44..5.x: v5 folds warmup_ratio into a float
    warmup_steps and renames gradient_* checkpointing to activation_*; drop what this version
    does not know."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    for old, new in (("gradient_checkpointing", "activation_checkpointing"),
                     ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")):
        if new in params and old in kwargs:  # transformers 5 renamed them
            kwargs[new] = kwargs.pop(old)
    if "warmup_ratio" not in params and "warmup_ratio" in kwargs:
        ratio = kwargs.pop("warmup_ratio")
        if ratio:
            kwargs["warmup_steps"] = ratio
    return {k: v for k, v in kwargs.items() if k in params}


def _device_setup():
    import torch

    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        return "cuda", (torch.bfloat16 if bf16 else torch.float16), bf16
    return "cpu", torch.float32, False


def loss_log_callback():
    """A TrainerCallback that records the logged losses and each optimizer step's wall time."""
    from transformers import TrainerCallback

    class LossLog(TrainerCallback):
        def __init__(self):
            self.losses: list[dict] = []
            self.step_seconds: list[float] = []
            self._t = None

        def on_step_begin(self, args, state, control, **kw):
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if self._t is not None:
                self.step_seconds.append(time.perf_counter() - self._t)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append({"step": state.global_step, "loss": float(logs["loss"])})

    return LossLog()


def train(args: argparse.Namespace) -> dict:
    """Run one SFT job; return the summary that is also written to OUTPUT_DIR/train_log.json."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, set_seed

    set_seed(args.seed)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = load_records(args.data)
    if not records:
        raise SystemExit(f"{args.data}: no records")

    model_path = args.model
    if args.model == TINY_NAME:
        texts = ["".join(prompt_and_answer(r)[:2]) for r in records]
        model_path = str(build_tiny(texts, out / "tiny-base", seed=args.seed).resolve())
        log.info("built %s at %s", TINY_NAME, model_path)

    device, dtype, bf16 = _device_setup()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token else tokenizer.unk_token
    tokenizer.padding_side = "right"
    examples, dropped = tokenize_records(records, tokenizer, args.max_length)  # chat prompts: the model's template
    if any(is_pyxr(r) for r in records):
        tokenizer.chat_template = CHAT_TEMPLATE  # serve the trained model in the format it learned

    if dtype == torch.float16 and not args.lora:
        dtype = torch.float32  # full fine-tuning under fp16 autocast needs fp32 master weights
    model = AutoModelForCausalLM.from_pretrained(model_path, **dtype_kwarg(dtype))
    model.config.use_cache = False
    checkpointing = bool(args.gradient_checkpointing and getattr(model, "supports_gradient_checkpointing", False))

    if args.lora:
        from peft import LoraConfig, get_peft_model

        targets = args.lora_target.split(",") if args.lora_target else detect_lora_targets(model)
        if checkpointing:
            model.enable_input_require_grads()  # adapters' grads must flow through frozen embeddings
        lora = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                          target_modules=targets, bias="none", task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
        model.print_trainable_parameters()
    lr = args.lr if args.lr is not None else (2e-4 if args.lora else 2e-5)

    if dropped:
        log.warning("%d record(s) dropped: no response token left within --max-length %d", dropped, args.max_length)
    if not examples:
        raise SystemExit("no trainable examples (raise --max-length)")
    n_tokens = sum(len(e["input_ids"]) for e in examples)
    print(f"{len(examples)} examples, {n_tokens} tokens, device {device}, dtype {str(dtype).split('.')[-1]}, "
          f"{'LoRA' if args.lora else 'full'} fine-tuning, lr {lr}, gradient checkpointing {checkpointing}",
          flush=True)

    targs = TrainingArguments(**_compatible(TrainingArguments,
        output_dir=str(out),
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=lr,
        lr_scheduler_type=args.lr_scheduler,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        bf16=bf16,
        fp16=device == "cuda" and not bf16,
        use_cpu=device == "cpu",
        gradient_checkpointing=checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        logging_steps=args.logging_steps,
        logging_first_step=True,
        save_strategy="steps" if args.save_steps > 0 else "no",
        save_steps=args.save_steps if args.save_steps > 0 else 500,
        report_to="none",
        seed=args.seed,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=True,
    ))
    losslog = loss_log_callback()
    trainer = Trainer(model=model, args=targs, train_dataset=examples,
                      data_collator=Collator(tokenizer.pad_token_id), callbacks=[losslog])
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start

    model.config.use_cache = True
    trainer.save_model(str(out))  # full weights, or only the adapter for a peft model
    tokenizer.save_pretrained(str(out))
    steps = losslog.step_seconds[1:] or losslog.step_seconds  # the first step pays warm-up costs
    summary = {
        "model": model_path, "lora": args.lora, "device": device, "dtype": str(dtype).split(".")[-1],
        "examples": len(examples), "dropped": dropped, "tokens": n_tokens, "lr": lr,
        "steps": result.global_step, "train_loss": result.training_loss, "seconds": seconds,
        "median_step_seconds": statistics.median(steps) if steps else None,
        "gradient_checkpointing": checkpointing, "losses": losslog.losses,
    }
    (out / "train_log.json").write_text(json.dumps(summary, indent=2))
    first, last = (losslog.losses[0]["loss"], losslog.losses[-1]["loss"]) if losslog.losses else (None, None)
    print(f"saved {'adapter' if args.lora else 'model'} + tokenizer to {out}; loss {first} -> {last}; "
          f"{result.global_step} steps, median step {summary['median_step_seconds']}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return train(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
