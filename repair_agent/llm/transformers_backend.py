"""An in-process Hugging Face transformers backend for the `Model` seam.

`TransformersModel(path)` loads a local checkpoint (a full model, or a LoRA adapter directory as
written by `python -m train.sft --lora`, whose base is read from its adapter_config.json) and
generates with `model.generate`. It is meant for checking a freshly fine-tuned model without a
server; for throughput serve the checkpoint with vLLM and use `OpenAIModel`.

Needs the `train` extra (torch, transformers; peft for adapters).
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import ModelError
from .client import Completion, Generation, Sampling


class TransformersModel:
    """Messages in, completions out, through `transformers`.

    - prompt: the tokenizer's chat template when it has one (train.sft saves one in SemCoder's
      instruction format), else the messages' contents joined;
    - greedy when temperature == 0, else sampling with temperature and top_p;
    - `n` samples via num_return_sequences (greedy: one decode, repeated);
    - finish_reason "length" when max_tokens new tokens were produced without EOS or a stop
      string, else "stop"; stop strings end generation and are cut from the text.
    """

    def __init__(self, path: str | Path, device: str | None = None, name: str | None = None):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ModelError("the transformers backend needs the `train` extra: "
                             "pip install 'repair-agent[train]'") from exc

        self.path = Path(path)
        self.name = name or str(path)
        if not self.path.is_dir():
            raise ModelError(f"no model directory at {self.path}")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float32
        dtype_kw = _dtype_kwarg(dtype)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path)
            if (self.path / "adapter_config.json").exists():
                from peft import AutoPeftModelForCausalLM

                self.model = AutoPeftModelForCausalLM.from_pretrained(self.path, **dtype_kw)
            else:
                self.model = AutoModelForCausalLM.from_pretrained(self.path, **dtype_kw)
        except (OSError, ValueError) as exc:
            raise ModelError(f"could not load a model from {self.path}: {exc}") from exc
        self.model.to(self.device)
        self.model.eval()
        gen_cfg = self.model.generation_config
        eos = gen_cfg.eos_token_id if gen_cfg.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids: list[int] = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in self.eos_ids:
            self.eos_ids.append(self.tokenizer.eos_token_id)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.eos_ids[0] if self.eos_ids else 0)
        config = getattr(self.model, "config", None)
        self.max_positions = getattr(config, "max_position_embeddings", None)

    # -- prompt ---------------------------------------------------------------------------------
    def render(self, messages: list[dict]) -> str:
        """The prompt text: the chat template (with the generation prompt) or the joined contents."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "".join(m.get("content") or "" for m in messages)

    def encode(self, messages: list[dict]) -> list[int]:
        text = self.render(messages)
        bos = self.tokenizer.bos_token
        # A chat template that writes BOS itself must not get a second one from the tokenizer.
        add_special = not (getattr(self.tokenizer, "chat_template", None) and bos and text.startswith(bos))
        return list(self.tokenizer(text, add_special_tokens=add_special)["input_ids"])

    # -- generation -----------------------------------------------------------------------------
    def generate(self, messages: list[dict], sampling: Sampling) -> Generation:
        return self._generate(self.encode(messages), sampling)

    def complete(self, prompt: str, sampling: Sampling, logprobs: bool = False) -> Generation:
        """A raw prompt (e.g. fill-in-the-middle), tokenized as is; no log-probabilities here."""
        return self._generate(list(self.tokenizer(prompt)["input_ids"]), sampling)

    def _generate(self, prompt_ids: list[int], sampling: Sampling) -> Generation:
        import torch

        start = time.monotonic()
        max_new = max(1, sampling.max_tokens)
        if self.max_positions:
            room = self.max_positions - len(prompt_ids)
            if room <= 0:
                raise ModelError(f"the prompt ({len(prompt_ids)} tokens) does not fit the model's "
                                 f"context ({self.max_positions} tokens)")
            max_new = min(max_new, room)
        greedy = sampling.temperature <= 0
        n = max(1, sampling.n)
        kwargs = dict(max_new_tokens=max_new, do_sample=not greedy,
                      num_return_sequences=1 if greedy else n,
                      pad_token_id=self.pad_id, eos_token_id=self.eos_ids or None)
        if not greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p)
        else:  # neutralise sampling defaults a checkpoint's generation_config may carry
            kwargs.update(temperature=None, top_p=None, top_k=None)
        stops = [s for s in sampling.stop if s]
        if stops:
            kwargs.update(stop_strings=stops, tokenizer=self.tokenizer)
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.model.device)
        try:
            with torch.inference_mode():
                out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
        except RuntimeError as exc:
            raise ModelError(f"generation failed: {exc}") from exc

        gen = Generation(completions=[], prompt_tokens=len(prompt_ids))
        for row in out[:, len(prompt_ids):].tolist():
            text, count, finish = self._finish(row, stops, max_new)
            copies = n if greedy else 1
            gen.completions += [Completion(text=text, finish_reason=finish) for _ in range(copies)]
            gen.completion_tokens += count * copies
        gen.seconds = time.monotonic() - start
        return gen

    def _finish(self, ids: list[int], stops: list[str], max_new: int) -> tuple[str, int, str]:
        """(text, tokens produced, finish_reason) for one generated row."""
        end = next((i for i, t in enumerate(ids) if t in self.eos_ids), None)
        hit_eos = end is not None
        body = ids if end is None else ids[:end]
        if not hit_eos and self.pad_id not in self.eos_ids:  # rows padded after a stop string
            while body and body[-1] == self.pad_id:
                body = body[:-1]
        count = len(body) + (1 if hit_eos else 0)
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            return text[:cut], count, "stop"
        if hit_eos or count < max_new:
            return text, count, "stop"
        return text, count, "length"


def _dtype_kwarg(dtype) -> dict:
    """`dtype=` for from_pretrained (transformers >= 4.56), `torch_dtype=` before."""
    import transformers
    from packaging.version import Version

    return {"dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype": dtype}
