"""`repair-agent serve`: the vLLM command line, its preconditions, and the start-and-wait logic."""

from __future__ import annotations

import json
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from repair_agent import serve as serve_mod
from repair_agent.errors import BadInput, ModelError
from repair_agent.llm.llamacpp import MissingExtra
from repair_agent.serve import serve, vllm_command

PYTHON = sys.executable  # this venv's interpreter (the bare_path fixture hides sys.executable)


def test_vllm_command_is_pinned():
    assert vllm_command(port=8123) == [
        "vllm", "serve", "semcoder/semcoder_s_1030", "--max-model-len", "4096", "--dtype", "bfloat16",
        "--served-model-name", "semcoder", "--host", "127.0.0.1", "--port", "8123",
        "--gpu-memory-utilization", "0.9", "--tensor-parallel-size", "1"]
    cmd = vllm_command("/models/sc", port=9000, gpu_memory_utilization=0.85, tensor_parallel_size=2,
                       max_model_len=8192, served_model_name="sc")
    assert " ".join(cmd) == ("vllm serve /models/sc --max-model-len 8192 --dtype bfloat16 --served-model-name sc "
                             "--host 127.0.0.1 --port 9000 --gpu-memory-utilization 0.85 --tensor-parallel-size 2")


@pytest.fixture
def bare_path(tmp_path, monkeypatch):
    """A PATH with nothing on it, and an interpreter path with no `vllm` beside it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python-here"))
    return bin_dir


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!{sys._base_executable if hasattr(sys, '_base_executable') else sys.executable}\n"
                    + textwrap.dedent(body))
    path.chmod(0o755)


def test_without_vllm_names_the_serve_extra_and_the_gpu(bare_path):
    with pytest.raises(MissingExtra) as info:
        serve("vllm")
    msg = str(info.value)
    assert "pip install -e '.[serve]'" in msg and "GPU" in msg and "--engine llama-cpp" in msg
    assert info.value.exit_code == 2


def test_without_a_gpu(bare_path):
    _script(bare_path / "vllm", "import sys; sys.exit(0)\n")
    with pytest.raises(MissingExtra, match="needs an NVIDIA GPU"):
        serve("vllm")
    _script(bare_path / "nvidia-smi", "print('GPU 0: NVIDIA H100 (UUID: GPU-x)')\n")
    with pytest.raises(BadInput, match="needs 2 GPUs, found 1"):
        serve("vllm", tensor_parallel_size=2)


FAKE_VLLM = """
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
argv = sys.argv[1:]
open({record!r}, "w").write(json.dumps(argv))
port = int(argv[argv.index("--port") + 1])
name = argv[argv.index("--served-model-name") + 1]
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"object": "list", "data": [{{"id": name, "object": "model"}}]}}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def test_serve_vllm_starts_and_waits_for_the_api(bare_path, tmp_path):
    """A stand-in `vllm` executable (a tiny HTTP server) checks the launch, the argv and the wait."""
    record = tmp_path / "argv.json"
    _script(bare_path / "vllm", FAKE_VLLM.format(record=str(record)))
    _script(bare_path / "nvidia-smi", "print('GPU 0: NVIDIA H100 (UUID: GPU-x)')\n")
    with serve("vllm", max_model_len=2048, gpu_memory_utilization=0.8, timeout=30) as handle:
        argv = json.loads(record.read_text())
        assert argv == vllm_command(port=handle.port, max_model_len=2048, gpu_memory_utilization=0.8)[1:]
        with urllib.request.urlopen(handle.base_url + "/models", timeout=5) as resp:
            assert json.load(resp)["data"][0]["id"] == "semcoder"
        assert handle.alive()
    assert not handle.alive()


def test_a_server_that_dies_reports_its_log(bare_path):
    _script(bare_path / "vllm", "import sys; print('torch.OutOfMemoryError: CUDA out of memory'); sys.exit(1)\n")
    _script(bare_path / "nvidia-smi", "print('GPU 0: NVIDIA H100 (UUID: GPU-x)')\n")
    with pytest.raises(ModelError, match="(?s)vLLM server exited with code 1.*CUDA out of memory"):
        serve("vllm", timeout=30)


def test_a_server_that_never_answers_times_out(bare_path):
    _script(bare_path / "vllm", "import time; time.sleep(60)\n")
    _script(bare_path / "nvidia-smi", "print('GPU 0: NVIDIA H100 (UUID: GPU-x)')\n")
    with pytest.raises(ModelError, match="did not answer .*/v1/models within 2 s"):
        serve("vllm", timeout=2)


def test_unknown_engine():
    with pytest.raises(BadInput, match="unknown engine 'tgi'"):
        serve("tgi")


@pytest.mark.model
def test_serve_llama_cpp_for_real():
    sys.path.insert(0, str(Path(__file__).parent))
    from model_server import have_llama_cpp, install_model

    if not have_llama_cpp():
        pytest.skip("llama-cpp-python[server] not installed")
    install_model("smollm2-135m")
    with serve("llama-cpp", "smollm2-135m", max_model_len=1024) as handle:
        with urllib.request.urlopen(handle.base_url + "/models", timeout=5) as resp:
            assert [m["id"] for m in json.load(resp)["data"]] == ["smollm2-135m"]
    assert not handle.alive()
    assert serve_mod.ENGINES == ("vllm", "llama-cpp")


def test_cli_passes_tensor_and_pipeline_parallel_sizes_to_vllm(bare_path, tmp_path):
    """`repair-agent serve --engine vllm --tensor-parallel-size 2 --pipeline-parallel-size 2`, run for real
    against a stand-in `vllm` (it records its argv) and an `nvidia-smi` that lists 4 GPUs; 3 are too few."""
    import os
    import signal
    import subprocess

    record = tmp_path / "argv.json"
    _script(bare_path / "vllm", FAKE_VLLM.format(record=str(record)))
    gpus = "".join(f"print('GPU {i}: NVIDIA H100 (UUID: GPU-{i})')\n" for i in range(3))
    _script(bare_path / "nvidia-smi", gpus)
    cli = [PYTHON, "-c", "from repair_agent.cli import app; app()", "serve", "--engine", "vllm",
           "--tensor-parallel-size", "2", "--pipeline-parallel-size", "2"]
    env = {**os.environ, "PATH": str(bare_path)}
    short = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "needs 4 GPUs, found 3" in short.stderr.replace("\n", " ")
    _script(bare_path / "nvidia-smi", gpus + "print('GPU 3: NVIDIA H100 (UUID: GPU-3)')\n")
    proc = subprocess.Popen(cli, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        base_url = proc.stdout.readline().strip()  # printed once /v1/models answers
        assert base_url.startswith("http://127.0.0.1:"), proc.stderr.read() if not base_url else base_url
        argv = json.loads(record.read_text())
        assert argv == vllm_command(port=int(base_url.rsplit(":", 1)[1].split("/")[0]), tensor_parallel_size=2,
                                    pipeline_parallel_size=2)[1:]
        assert argv[argv.index("--tensor-parallel-size") + 1] == "2"
        assert argv[argv.index("--pipeline-parallel-size") + 1] == "2"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) in (0, 130)  # Ctrl-C ends it, and its server with it
