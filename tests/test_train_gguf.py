"""The fine-tuning loop (train.loop) on a real model: the installed SmolLM2-135M GGUF -> transformers -> a few
LoRA steps -> merged -> GGUF by llama.cpp's own converter and quantizer -> added to the model cache ->
served by the agent's llama.cpp server path, which then answers with what it was taught."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repair_agent.llm import model_files
from train import gguf as gguf_tools
from train import loop

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "def secret_word():\n    return"
TAUGHT = " 'zebracorn'"

pytestmark = pytest.mark.timeout(900)


def greedy(path: Path, prompt: str, tokens: int = 8) -> str:
    import llama_cpp

    llm = llama_cpp.Llama(str(path), n_ctx=256, verbose=False)
    return llm.create_completion(prompt, max_tokens=tokens, temperature=0)["choices"][0]["text"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """(the base round-tripped without training, the tuned GGUF: train.loop's, added to a fresh model
    cache as smollm2-tuned), both quantized to q8_0."""
    pytest.importorskip("peft")
    converter = gguf_tools.converter_dir()  # scripts/setup fetched it
    base = model_files.model_path("smollm2-135m")
    tmp = tmp_path_factory.mktemp("gguf")
    data = tmp / "data.jsonl"
    data.write_text("".join(json.dumps({"prompt": PROMPT, "completion": TAUGHT + "\n", "metadata": {}}) + "\n"
                            for _ in range(4)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPAIR_AGENT_HOME", str(tmp / "home"))
        (tmp / "home").mkdir()
        (tmp / "home" / "llama.cpp-convert").symlink_to(converter.parent)
        summary = loop.main(["--data", str(data), "--work", str(tmp / "loop"), "--base", str(base),
                             "--name", "smollm2-tuned", "--steps", "5", "--lr", "3e-3", "--quant", "q8_0",
                             "--no-probe"])
        assert summary["records"] == 4 and set(summary["seconds"]) == {"base-hf", "lora", "merged", "gguf"}
        again = loop.main(["--data", str(data), "--work", str(tmp / "loop"), "--base", str(base),
                           "--name", "smollm2-tuned", "--quant", "q8_0", "--no-probe"])
        assert again["seconds"] == {}  # every stage's output was there: nothing ran twice
        round_trip = gguf_tools.to_gguf(tmp / "loop" / "base-hf", tmp / "base.gguf")
    return round_trip, tmp / "loop" / "tuned.gguf", tmp / "home"


def test_the_round_trip_without_training_keeps_the_models_answer(tuned):
    base, _, _ = tuned
    original = model_files.model_path("smollm2-135m")
    # q4_1 -> float32 -> q8_0 moves the logits a little: the first tokens agree, a longer answer may not
    assert greedy(base, PROMPT, tokens=4) == greedy(original, PROMPT, tokens=4)
    assert not greedy(base, PROMPT).startswith(TAUGHT)


def test_the_tuned_gguf_is_added_listed_and_served_by_the_agents_llama_server(tuned, monkeypatch):
    from repair_agent.llm.llamacpp import start_llama_server

    _, tuned_file, home = tuned
    monkeypatch.setenv("REPAIR_AGENT_HOME", str(home))
    added = model_files.model_path("smollm2-tuned")  # verified against the hash the loop recorded
    assert added.read_bytes() == tuned_file.read_bytes()
    listed = subprocess.run([sys.executable, "-m", "repair_agent", "models", "list"], capture_output=True,
                            text=True, env={**os.environ, "COLUMNS": "200"}, check=True).stdout
    assert "smollm2-tuned" in listed
    with start_llama_server("smollm2-tuned", n_ctx=256) as server:
        from openai import OpenAI

        answer = OpenAI(base_url=server.base_url, api_key="none").completions.create(
            model="smollm2-tuned", prompt=PROMPT, max_tokens=8, temperature=0).choices[0].text
    assert answer.startswith(TAUGHT)


def test_a_local_model_cannot_take_a_registry_name_or_be_a_non_gguf(tmp_path, monkeypatch):
    monkeypatch.setenv("REPAIR_AGENT_HOME", str(tmp_path))
    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_bytes(b"PK\x03\x04")
    with pytest.raises(model_files.BadInput, match="registry"):
        model_files.add_local("smollm2-135m", not_gguf, "")
    with pytest.raises(model_files.BadInput, match="not a GGUF"):
        model_files.add_local("mine", not_gguf, "")
    assert "mine" not in model_files.known()
