"""repair_agent.llm.transformers_backend.TransformersModel on a tiny model built locally."""

from __future__ import annotations

import json
import shutil
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# every test is listed, and each skipped (with the reason) where the `train` extra is missing
pytestmark = pytest.mark.skipif(not all(find_spec(m) for m in ("torch", "transformers")),
                                reason="torch or transformers missing (pip install -e '.[train]')")

from repair_agent.errors import ModelError  # noqa: E402
from repair_agent.llm.client import Sampling  # noqa: E402
from repair_agent.llm.transformers_backend import TransformersModel  # noqa: E402
from train import data, tiny  # noqa: E402

TEXTS = ["def add(a, b):\n    return a + b\n", "[MONOLOGUE]\n### Execution Simulation\nThe call returns 3.\n",
         data.render_prompt("### Problem\nFix add.") + "[Refined]\n```python\nx = 1\n```\n[/Refined]"]
MSGS = [{"role": "system", "content": "You fix bugs."}, {"role": "user", "content": "### Problem\nFix add."}]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return tiny.build_tiny(TEXTS, tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def model(tiny_dir) -> TransformersModel:
    return TransformersModel(tiny_dir, device="cpu")


def _variant(tiny_dir: Path, tmp_path: Path, **generation) -> Path:
    """A copy of the tiny model whose generation_config.json carries `generation`."""
    out = tmp_path / "variant"
    shutil.copytree(tiny_dir, out)
    cfg = json.loads((out / "generation_config.json").read_text())
    cfg.update(generation)
    (out / "generation_config.json").write_text(json.dumps(cfg))
    return out


def test_prompt_uses_the_chat_template_with_one_bos(model):
    tok = model.tokenizer
    assert model.render(MSGS) == (tok.bos_token + "You fix bugs.\n\n@@ Instruction\n### Problem\nFix add."
                                  "\n\n@@ Response\n")
    ids = model.encode(MSGS)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    gen = model.generate(MSGS, Sampling(max_tokens=3))
    assert gen.prompt_tokens == len(ids)


def test_prompt_without_a_chat_template_joins_contents(tiny_dir, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(tiny_dir, plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((plain / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(cfg))
    m = TransformersModel(plain, name="plain")
    assert m.name == "plain"
    assert m.render(MSGS) == "You fix bugs.### Problem\nFix add."
    assert m.encode(MSGS)[0] == m.tokenizer.bos_token_id  # the tokenizer adds BOS itself


def test_greedy_is_deterministic_and_n_copies(model):
    one = model.generate(MSGS, Sampling(max_tokens=8))
    three = model.generate(MSGS, Sampling(n=3, max_tokens=8))
    assert len(three.completions) == 3
    assert {c["text"] for c in three.completions} == {one.completions[0]["text"]}
    assert three.completion_tokens == 3 * one.completion_tokens
    assert three.prompt_tokens == one.prompt_tokens


def test_sampling_returns_n_samples_reproducibly_with_a_seed(model):
    s = Sampling(n=4, temperature=1.0, top_p=0.95, max_tokens=10, seed=7)
    a, b = model.generate(MSGS, s), model.generate(MSGS, s)
    assert len(a.completions) == 4
    assert [c["text"] for c in a.completions] == [c["text"] for c in b.completions]
    assert len({c["text"] for c in a.completions}) > 1  # a random 300-token model: samples differ
    assert 4 <= a.completion_tokens <= 40


def test_length_finish_when_max_tokens_hit(tiny_dir, tmp_path):
    m = TransformersModel(_variant(tiny_dir, tmp_path, suppress_tokens=[2]))  # EOS (id 2) impossible
    gen = m.generate(MSGS, Sampling(n=2, temperature=0.9, max_tokens=6, seed=0))
    assert [c["finish_reason"] for c in gen.completions] == ["length", "length"]
    assert gen.completion_tokens == 12


def test_stop_finish_on_eos(tiny_dir, tmp_path):
    tok_len = TransformersModel(tiny_dir).tokenizer.__len__()
    m = TransformersModel(_variant(tiny_dir, tmp_path, suppress_tokens=[i for i in range(tok_len) if i != 2]))
    gen = m.generate(MSGS, Sampling(max_tokens=6))
    assert gen.completions == [{"text": "", "finish_reason": "stop"}]
    assert gen.completion_tokens == 1


def test_stop_strings_truncate(tiny_dir, tmp_path):
    m = TransformersModel(_variant(tiny_dir, tmp_path, suppress_tokens=[2]))
    full = m.generate(MSGS, Sampling(max_tokens=30)).completions[0]["text"]
    assert len(full) >= 12
    stop = full[6:9]
    expected = full[:full.find(stop)]
    gen = m.generate(MSGS, Sampling(max_tokens=30, stop=[stop, "never-appears"]))
    assert gen.completions == [{"text": expected, "finish_reason": "stop"}]
    assert gen.completion_tokens < 30  # generation ended at the stop string


def test_prompt_longer_than_the_context_is_a_model_error(model):
    with pytest.raises(ModelError, match="context"):
        model.generate([{"role": "user", "content": "x7\u00e9" * 3000}], Sampling(max_tokens=4))


def test_missing_directory_is_a_model_error(tmp_path):
    with pytest.raises(ModelError):
        TransformersModel(tmp_path / "nope")
