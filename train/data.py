"""SFT records -> token ids with the prompt masked out of the loss.

A record is one JSON object per line, PyX-R shaped::

    {"fault": <instruction text>, "response": <monologue + [Refined] code>, "metadata": {...}}

or shaped as a prompt the agent sends (`repair-agent traces export/synth`: infill and explain)::

    {"prompt": <a raw completions prompt> | [<chat messages>], "completion": <answer>, "metadata": {...}}

A PyX-R prompt is rendered in SemCoder's (Magicoder's) instruction format: a system line, then
``@@ Instruction``, the fault, then ``@@ Response``. A raw prompt is taken as it is (the agent sends
it so to /v1/completions: a fill-in-the-middle prompt); chat messages through the tokenizer's own
chat template, as the server renders them. The answer follows and ends with EOS. Labels are -100
on every prompt token (and on padding), so the loss is on the answer only, as SemCoder was trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

IGNORE_INDEX = -100

SYSTEM = ("You are an exceptionally intelligent coding assistant that consistently delivers accurate "
          "and reliable responses to user instructions.")
INSTRUCTION_HEADER = "@@ Instruction\n"
RESPONSE_HEADER = "@@ Response\n"

# The same format as a chat template, saved onto trained tokenizers so that chat requests to the
# trained model (TransformersModel, `vllm serve DIR`) are rendered exactly as in training.
# A system message replaces the default system line; user turns are instructions, assistant turns
# responses (closed by EOS); the generation prompt is the response header.
CHAT_TEMPLATE = (
    "{%- if bos_token %}{{ bos_token }}{% endif -%}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{ messages[0]['content'] }}{%- set rest = messages[1:] -%}"
    "{%- else -%}"
    "{{ '" + SYSTEM + "' }}{%- set rest = messages -%}"
    "{%- endif -%}"
    "{%- for m in rest -%}"
    "{%- if m['role'] == 'assistant' -%}"
    "{{ '\\n\\n" + RESPONSE_HEADER.replace("\n", "\\n") + "' + m['content'] + (eos_token or '') }}"
    "{%- else -%}"
    "{{ '\\n\\n" + INSTRUCTION_HEADER.replace("\n", "\\n") + "' + m['content'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '\\n\\n" + RESPONSE_HEADER.replace("\n", "\\n") + "' }}{%- endif -%}"
)


def render_prompt(fault: str, system: str = SYSTEM) -> str:
    """The prompt text for one fault (without BOS: the tokenizer adds it, as at inference)."""
    return f"{system}\n\n{INSTRUCTION_HEADER}{fault}\n\n{RESPONSE_HEADER}"


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """Read JSONL records; skip blank lines; fail with the line number on a bad one."""
    records = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON: {exc}") from exc
            pyxr = isinstance(rec, dict) and isinstance(rec.get("fault"), str) and isinstance(rec.get("response"), str)
            shaped = isinstance(rec, dict) and isinstance(rec.get("completion"), str) and (
                isinstance(rec.get("prompt"), str) or isinstance(rec.get("prompt"), list)
                and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in rec["prompt"]))
            if not (pyxr or shaped):
                raise ValueError(f"{path}:{lineno}: a record needs string 'fault' and 'response', or a 'prompt' "
                                 f"(a string or chat messages) and a string 'completion'")
            records.append(rec)
    return records


def is_pyxr(record: dict[str, Any]) -> bool:
    return "fault" in record


def prompt_and_answer(record: dict[str, Any], tokenizer=None) -> tuple[str, str, bool]:
    """(prompt text, answer, whether the tokenizer adds its special tokens to the prompt) for
    either record shape; chat messages need the tokenizer (its chat template); without one, their
    contents joined (enough to build the tiny model's vocabulary)."""
    if is_pyxr(record):
        return render_prompt(record["fault"]), record["response"], True
    prompt = record["prompt"]
    if isinstance(prompt, str):
        return prompt, record["completion"], True
    if tokenizer is None:
        return "\n".join(m["content"] for m in prompt), record["completion"], True
    rendered = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return rendered, record["completion"], False  # the template writes its own special tokens


def tokenize_record(record: dict[str, Any], tokenizer, max_length: int | None = None) -> dict[str, list[int]]:
    """input_ids = prompt + answer + EOS; labels = -100 on the prompt, the ids elsewhere.

    Prompt and response are tokenized separately, so the prompt ids are exactly what the model sees
    at inference and the mask boundary is exact. The sequence is truncated on the right to
    `max_length` (the EOS and the end of the response go first).
    """
    prompt, answer, special = prompt_and_answer(record, tokenizer)
    prompt_ids = tokenizer(prompt, add_special_tokens=special)["input_ids"]
    response_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token")
    response_ids = list(response_ids) + [tokenizer.eos_token_id]
    input_ids = list(prompt_ids) + response_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + response_ids
    if max_length is not None:
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    return {"input_ids": input_ids, "labels": labels, "attention_mask": [1] * len(input_ids)}


def tokenize_records(records: Iterable[dict[str, Any]], tokenizer, max_length: int | None = None
                     ) -> tuple[list[dict[str, list[int]]], int]:
    """Tokenize all records; drop those with no response token left after truncation (they carry
    no loss). Returns (examples, number dropped)."""
    examples, dropped = [], 0
    for rec in records:
        ex = tokenize_record(rec, tokenizer, max_length)
        if all(label == IGNORE_INDEX for label in ex["labels"]):
            dropped += 1
            continue
        examples.append(ex)
    return examples, dropped


@dataclass
class Collator:
    """Right-pads a batch: input_ids with the pad id, labels with -100, attention_mask with 0."""

    pad_token_id: int

    def __call__(self, batch: list[dict[str, list[int]]]):
        import torch

        width = max(len(ex["input_ids"]) for ex in batch)

        def pad(key, value):
            return torch.tensor([ex[key] + [value] * (width - len(ex[key])) for ex in batch], dtype=torch.long)

        return {"input_ids": pad("input_ids", self.pad_token_id), "labels": pad("labels", IGNORE_INDEX),
                "attention_mask": pad("attention_mask", 0)}
