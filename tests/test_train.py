"""train/: SFT data masking, tiny-model training (full and LoRA), reload, merge. CPU only."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `train` is a top-level folder beside the package
    sys.path.insert(0, str(ROOT))

# every test is listed, and each skipped (with the reason) where the `train` extra is missing
pytestmark = pytest.mark.skipif(not all(find_spec(m) for m in ("torch", "transformers", "peft")),
                                reason="torch, transformers or peft missing (pip install -e '.[train]')")

from repair_agent.llm.client import Sampling  # noqa: E402
from repair_agent.llm.transformers_backend import TransformersModel  # noqa: E402
from train import data, merge, sft, tiny  # noqa: E402


def _record(i: int) -> dict:
    fault = (f"### Problem\nMake add{i} pass its test.\n### Buggy Solution\n```python\n"
             f"def add{i}(a, b):\n    return a - b + {i}\n```\n### Failed Test\n```python\n"
             f"assert add{i}(1, 2) == {3 + i}\n```")
    response = (f"[MONOLOGUE]\n### Execution Simulation\nadd{i}(1, 2) computes 1 - 2 + {i} = {i - 1}, "
                f"not {3 + i}.\n### Root Cause Analysis\nThe subtraction should be an addition.\n"
                f"[/MONOLOGUE]\n[Refined]\n```python\ndef add{i}(a, b):\n    return a + b + {i}\n```\n[/Refined]")
    return {"fault": fault, "response": response, "metadata": {"task": f"add{i}"}}


RECORDS = [_record(i) for i in range(8)]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


@pytest.fixture(scope="module")
def tokenizer():
    return tiny.build_tokenizer([data.render_prompt(r["fault"]) + r["response"] for r in RECORDS])


# -- data ---------------------------------------------------------------------------------------

def test_prompt_is_semcoder_instruction_format(tokenizer):
    prompt = data.render_prompt("FAULT TEXT")
    assert prompt == f"{data.SYSTEM}\n\n@@ Instruction\nFAULT TEXT\n\n@@ Response\n"
    # the chat template saved with trained tokenizers renders the same prompt (plus BOS)
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "FAULT TEXT"}],
                                             tokenize=False, add_generation_prompt=True)
    assert rendered == tokenizer.bos_token + prompt


def test_labels_mask_every_prompt_token_and_no_response_token(tokenizer):
    rec = RECORDS[3]
    ex = data.tokenize_record(rec, tokenizer)
    prompt_ids = tokenizer(data.render_prompt(rec["fault"]))["input_ids"]
    n_prompt = len(prompt_ids)
    assert ex["input_ids"][:n_prompt] == prompt_ids and prompt_ids[0] == tokenizer.bos_token_id
    assert ex["labels"][:n_prompt] == [data.IGNORE_INDEX] * n_prompt
    response_part = ex["labels"][n_prompt:]
    assert response_part == ex["input_ids"][n_prompt:]
    assert data.IGNORE_INDEX not in response_part
    assert response_part[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(response_part[:-1]) == rec["response"]
    assert ex["attention_mask"] == [1] * len(ex["input_ids"])


def test_truncation_and_dropping(tokenizer):
    rec = RECORDS[0]
    n_prompt = len(tokenizer(data.render_prompt(rec["fault"]))["input_ids"])
    cut = data.tokenize_record(rec, tokenizer, max_length=n_prompt + 5)
    assert len(cut["input_ids"]) == n_prompt + 5
    assert cut["labels"][n_prompt:] == cut["input_ids"][n_prompt:] and tokenizer.eos_token_id not in cut["labels"]
    examples, dropped = data.tokenize_records(RECORDS[:2], tokenizer, max_length=n_prompt - 1)
    assert (examples, dropped) == ([], 2)  # no response token left: no loss to learn from


def test_collator_pads_labels_with_ignore_index(tokenizer):
    batch = data.Collator(tokenizer.pad_token_id)([
        {"input_ids": [1, 5, 6], "labels": [-100, 5, 6], "attention_mask": [1, 1, 1]},
        {"input_ids": [1, 7], "labels": [-100, 7], "attention_mask": [1, 1]},
    ])
    assert batch["input_ids"].tolist() == [[1, 5, 6], [1, 7, tokenizer.pad_token_id]]
    assert batch["labels"].tolist() == [[-100, 5, 6], [-100, 7, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_load_records_names_the_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n\n" + json.dumps({"fault": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:3"):
        data.load_records(path)


# records shaped as the agent's prompts (traces export/synth): a raw fill-in-the-middle prompt, chat messages
FIM = {"prompt": "<|fim_prefix|>def add(a, b):\n    # buggy: return a - b\n<|fim_suffix|><|fim_middle|>",
       "completion": "    return a + b\n", "metadata": {"kind": "infill"}}
CHAT = {"prompt": [{"role": "system", "content": "Explain."}, {"role": "user", "content": "Why a + b?"}],
        "completion": "Because add adds.", "metadata": {"kind": "explain"}}


def test_agent_shaped_records_keep_their_prompt_and_learn_only_the_answer():
    tok = tiny.build_tokenizer([FIM["prompt"] + FIM["completion"], CHAT["completion"], "Explain. Why a + b?"])
    ex = data.tokenize_record(FIM, tok)
    prompt_ids = tok(FIM["prompt"])["input_ids"]  # the raw prompt as the completions endpoint gets it
    n = len(prompt_ids)
    assert ex["input_ids"][:n] == prompt_ids and ex["labels"][:n] == [data.IGNORE_INDEX] * n
    assert ex["labels"][n:] == ex["input_ids"][n:] and tok.decode(ex["labels"][n:-1]) == FIM["completion"]
    # chat messages go through the tokenizer's own chat template, as the server renders them
    ex = data.tokenize_record(CHAT, tok)
    rendered = tok.apply_chat_template(CHAT["prompt"], tokenize=False, add_generation_prompt=True)
    assert rendered.startswith(tok.bos_token + "Explain.") and rendered.endswith(data.RESPONSE_HEADER)
    n = len(tok(rendered, add_special_tokens=False)["input_ids"])
    assert ex["input_ids"][:n] == tok(rendered, add_special_tokens=False)["input_ids"]
    assert ex["input_ids"].count(tok.bos_token_id) == 1 and tok.decode(ex["labels"][n:-1]) == CHAT["completion"]


def test_load_records_takes_both_shapes(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (RECORDS[0], FIM, CHAT)))
    assert len(data.load_records(path)) == 3
    path.write_text(json.dumps({"prompt": 3, "completion": "x"}) + "\n")
    with pytest.raises(ValueError, match="mixed.jsonl:1"):
        data.load_records(path)


@pytest.mark.slow
def test_agent_shaped_records_train_the_tiny_model(tmp_path):
    path = tmp_path / "infill.jsonl"
    path.write_text((json.dumps(FIM) + "\n") * 4 + json.dumps(CHAT) + "\n")
    summary = sft.main(["--data", str(path), "--model", tiny.TINY_NAME, "--output-dir", str(tmp_path / "out"),
                        "--max-steps", "6", "--lr", "1e-2", "--batch-size", "5", "--no-gradient-checkpointing"])
    losses = [e["loss"] for e in summary["losses"]]
    assert summary["examples"] == 5 and losses[-1] < losses[0], losses


def test_detect_lora_targets():
    import torch

    model = tiny.build_model(tiny.build_tokenizer(["abc def"]))
    assert sft.detect_lora_targets(model) == ["q_proj", "k_proj", "v_proj", "o_proj",
                                              "gate_proj", "up_proj", "down_proj"]
    other = torch.nn.Sequential()
    other.add_module("fc_in", torch.nn.Linear(2, 2))
    other.add_module("lm_head", torch.nn.Linear(2, 2))
    assert sft.detect_lora_targets(other) == ["fc_in"]


# -- training -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def full_run(data_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    summary = sft.main(["--data", str(data_file), "--model", tiny.TINY_NAME, "--output-dir", str(out),
                        "--max-steps", "20", "--lr", "8e-3", "--warmup-ratio", "0.1", "--batch-size", "8",
                        "--max-length", "512", "--no-gradient-checkpointing"])  # LoRA runs with it on
    return out, summary


@pytest.fixture(scope="module")
def lora_run(data_file, tmp_path_factory):
    """Through the command line, as a user runs it."""
    out = tmp_path_factory.mktemp("lora")
    proc = subprocess.run(
        [sys.executable, "-m", "train.sft", "--data", str(data_file), "--model", tiny.TINY_NAME,
         "--output-dir", str(out), "--lora", "--max-steps", "4", "--lr", "1e-2", "--batch-size", "8"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads((out / "train_log.json").read_text())


@pytest.mark.slow
def test_full_finetune_overfits_eight_records(full_run):
    out, summary = full_run
    losses = [e["loss"] for e in summary["losses"]]
    assert summary["steps"] == 20 and len(losses) == 20
    assert losses[-1] <= losses[0] / 2, losses
    assert summary["examples"] == 8 and summary["lora"] is False and summary["dtype"] == "float32"
    assert summary["median_step_seconds"] > 0 and summary["gradient_checkpointing"] is False
    for name in ("model.safetensors", "config.json", "tokenizer.json", "train_log.json"):
        assert (out / name).exists(), name


@pytest.mark.slow
def test_saved_checkpoint_reloads_and_generates(full_run):
    out, _ = full_run
    model = TransformersModel(out)
    gen = model.generate([{"role": "user", "content": RECORDS[0]["fault"]}], Sampling(max_tokens=12))
    assert len(gen.completions) == 1 and gen.completions[0]["text"]
    assert gen.prompt_tokens == len(model.encode([{"role": "user", "content": RECORDS[0]["fault"]}]))
    assert 1 <= gen.completion_tokens <= 12
    # the trained tokenizer carries the training format as its chat template
    assert model.render([{"role": "user", "content": "F"}]).endswith(data.render_prompt("F"))


@pytest.mark.slow
def test_lora_trains_and_saves_an_adapter(lora_run):
    out, summary = lora_run
    assert summary["lora"] is True and summary["steps"] == 4 and summary["gradient_checkpointing"] is True
    losses = [e["loss"] for e in summary["losses"]]
    assert losses[-1] < losses[0], losses
    config = json.loads((out / "adapter_config.json").read_text())
    assert {"q_proj", "v_proj"} <= set(config["target_modules"])
    assert Path(config["base_model_name_or_path"]) == (out / "tiny-base").resolve()
    assert (out / "adapter_model.safetensors").exists() and not (out / "model.safetensors").exists()
    assert (out / "tokenizer.json").exists()


@pytest.mark.slow
def test_lora_adapter_loads_through_transformers_model(lora_run):
    out, _ = lora_run
    gen = TransformersModel(out).generate([{"role": "user", "content": "fix it"}], Sampling(max_tokens=5))
    assert gen.completions[0]["finish_reason"] in ("stop", "length") and gen.completion_tokens >= 1


@pytest.mark.slow
def test_merge_produces_a_loadable_checkpoint_equal_to_base_plus_adapter(lora_run, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter, _ = lora_run
    merged_dir = merge.main(["--base", str(adapter / "tiny-base"), "--adapter", str(adapter),
                             "--out", str(tmp_path / "merged")])
    assert (merged_dir / "model.safetensors").exists() and not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    base = AutoModelForCausalLM.from_pretrained(adapter / "tiny-base").eval()
    x = torch.tensor([[1, 40, 41, 42, 43, 44]])
    with torch.no_grad():
        want = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(adapter / "tiny-base"),
                                         str(adapter)).eval()(x).logits
        got = merged(x).logits
        base_logits = base(x).logits
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(got, base_logits, atol=1e-3)  # the adapter changed something
    gen = TransformersModel(merged_dir).generate([{"role": "user", "content": "fix it"}], Sampling(max_tokens=4))
    assert gen.completion_tokens >= 1
