"""The embedded default path: what `fix` starts with no --base-url (`open_model`: llama.cpp's server
on loopback, the model from `repair-agent models`), here with SmolLM2-135M, not a scripted server.

llama.cpp's server takes no `n`, so every sample is a request of its own; its access log counts them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

import pytest
from model_server import MODEL, requires_llama_cpp, smollm_gguf  # noqa: F401  (fixture)

from repair_agent.config import Settings
from repair_agent.llm.client import Sampling
from repair_agent.llm.factory import open_model

pytestmark = [pytest.mark.model, requires_llama_cpp]
ASK = [{"role": "user", "content": "Write a Python function that returns the sum of two numbers."}]


def test_embedded_server_gets_one_request_per_sample(smollm_gguf, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the server's log goes here
    heard: list[str] = []
    with open_model(Settings(model=MODEL), log=heard.append) as model:
        assert model.base_url.startswith("http://127.0.0.1:") and model.name == MODEL
        assert model.batch_n is False  # it knows llama.cpp takes no `n`: no request asks for 3
        gen = model.generate(ASK, Sampling(n=3, temperature=1.0, top_p=0.95, max_tokens=24, seed=3))
        (log,) = tmp_path.glob("repair-agent-llama.cpp-*.log")
        posts = re.findall(r'"POST /v1/chat/completions HTTP/1\.1" 200', log.read_text(errors="replace"))
    assert heard == [f"serving {smollm_gguf.name} with llama.cpp on loopback"]
    assert len(gen.completions) == 3 and all(c["text"].strip() for c in gen.completions)
    assert gen.requests == 3 and len(posts) == 3  # one request per sample
    assert len({c["text"] for c in gen.completions}) > 1  # each with its own seed, else all alike
    assert gen.completion_tokens >= 3 and gen.prompt_tokens > 0


@pytest.mark.docker
@pytest.mark.slow
def test_fix_without_base_url_serves_the_model_itself(smollm_gguf, make_repo, tmp_path, docker_ready):  # noqa: F811
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "repair_agent", "fix", str(make_repo("wrong_index")),
                           "--model", MODEL, "--sandbox", "docker", "--strategies", "refine", "--rounds", "2",
                           "--samples", "2", "--json", str(out), "--run-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "REPAIR_AGENT_MAX_TOKENS": "96"})  # short answers: a weak model
    assert proc.returncode in (0, 1), proc.stderr
    assert f"serving {smollm_gguf.name} with llama.cpp on loopback" in proc.stderr
    result = json.loads(out.read_text())
    assert result["model"] == MODEL and result["tokens"]["completion"] > 0
    # round 0: one greedy answer; round 1 (when round 0 did not fix it): --samples answers
    assert [len(r["candidates"]) for r in result["rounds"]] in ([1], [1, 2])
    (run,) = (tmp_path / "runs").iterdir()
    proposals = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()
                 if '"event": "propose"' in line]
    assert [len(p["responses"]) for p in proposals] == [p["sampling"]["n"] for p in proposals]
