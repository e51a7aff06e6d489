"""llama.cpp backends: in-process (`LlamaCppModel`) and its OpenAI-compatible server.

Both need the `local` extra (`pip install -e '.[local]'`, llama-cpp-python[server]).
In-process, llama-cpp-python takes no `n`, so several samples are several calls; the server is
llama-cpp-python's with `n` answered by batched sampling (repair_agent.llm.llama_server).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path

from ..errors import ModelError, PromptTooLong, RepairAgentError
from .client import Completion, Generation, Sampling, mean_logprob

LOCAL_HINT = "pip install -e '.[local]'"
SERVER_MODULE = "repair_agent.llm.llama_server"  # llama-cpp-python's server, taking `n`


class MissingExtra(RepairAgentError):
    """An optional dependency (a pyproject extra) is not installed."""

    exit_code = 2


def require_llama_cpp(server: bool = False) -> None:
    mods = ["llama_cpp"] + (["uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"]
                            if server else [])
    missing = [m for m in mods if importlib.util.find_spec(m) is None]
    if missing:
        what = "llama.cpp server" if server else "llama.cpp"
        raise MissingExtra(f"{what} is not installed (missing {', '.join(missing)}): run {LOCAL_HINT}")


class LlamaCppModel:
    """The `Model` protocol in-process with `llama_cpp.Llama` (chat template from the GGUF)."""

    def __init__(self, gguf: str | os.PathLike, name: str | None = None, n_ctx: int = 4096,
                 n_threads: int | None = None, endpoint: str = "chat", seed: int | None = None,
                 verbose: bool = False, **llama_kwargs):
        require_llama_cpp()
        import llama_cpp

        from .model_files import known, resolve_gguf

        path = resolve_gguf(gguf)
        self.name = name or (str(gguf) if str(gguf) in known() else path.stem)
        self.endpoint = endpoint
        self.seed = seed
        self.n_ctx = n_ctx
        self.logits_all = bool(llama_kwargs.get("logits_all"))  # llama-cpp-python gives logprobs only then
        self._lock = threading.Lock()  # a Llama context is not thread-safe
        kwargs = dict(model_path=str(path), n_ctx=n_ctx, verbose=verbose, **llama_kwargs)
        if n_threads:
            kwargs.update(n_threads=n_threads, n_threads_batch=n_threads)
        if seed is not None:
            kwargs["seed"] = seed
        try:
            self.llm = llama_cpp.Llama(**kwargs)
        except Exception as exc:  # ValueError on a bad file, RuntimeError on others
            raise ModelError(f"llama.cpp could not load {path}: {exc}") from exc

    def _check_length(self, messages: list[dict]) -> None:
        text = "".join(m.get("content") or "" for m in messages)
        n_ctx = min(self.llm.n_ctx(), self.n_ctx)  # llama.cpp may round the context up; the Python buffers don't
        tokens = len(self.llm.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=False))
        if tokens >= n_ctx:  # llama-cpp-python would fail with an obscure numpy broadcast error
            raise PromptTooLong(f"llama.cpp refused the request: the prompt has at least {tokens} tokens but the "
                             f"context window (n_ctx) is {n_ctx}")

    def generate(self, messages: list[dict], sampling: Sampling) -> Generation:
        with self._lock:
            self._check_length(messages)
        if self.endpoint == "completions":
            prompt = "".join(m["content"] for m in messages)
            return self._sample(lambda kw: self.llm.create_completion(prompt=prompt, **kw), sampling)
        return self._sample(lambda kw: self.llm.create_chat_completion(messages=messages, **kw), sampling)

    def complete(self, prompt: str, sampling: Sampling, logprobs: bool = False) -> Generation:
        """A raw prompt (e.g. fill-in-the-middle). llama.cpp reuses the cached prefix of the last
        prompt, so repeated samples of one prompt cost only their new tokens. `logprobs` is taken
        only when the model was loaded with logits_all=True (llama-cpp-python needs it)."""
        with self._lock:
            self._check_length([{"content": prompt}])
        extra = {"logprobs": 1} if logprobs and self.logits_all else {}
        return self._sample(lambda kw: self.llm.create_completion(prompt=prompt, **kw, **extra), sampling)

    def _sample(self, create, sampling: Sampling) -> Generation:
        start = time.monotonic()
        gen = Generation(completions=[], requests=sampling.n)
        for i in range(sampling.n):
            kwargs = dict(temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens,
                          stop=list(sampling.stop) or [])
            seed = sampling.seed if sampling.seed is not None else self.seed
            if seed is not None:
                kwargs["seed"] = seed + i  # distinct samples, reproducible as a set
            with self._lock:
                try:
                    resp = create(kwargs)
                except (ValueError, RuntimeError) as exc:  # e.g. prompt + template exceed the context window
                    raise ModelError(f"llama.cpp refused the request: {exc}") from exc
            for c in resp["choices"]:
                text = c["message"]["content"] if "message" in c else c.get("text")
                comp = Completion(text=text or "", finish_reason=c.get("finish_reason") or "")
                mean = mean_logprob((c.get("logprobs") or {}).get("token_logprobs"))
                if mean is not None:
                    comp["logprob"] = mean
                gen.completions.append(comp)
            usage = resp.get("usage") or {}
            gen.prompt_tokens += usage.get("prompt_tokens", 0)
            gen.completion_tokens += usage.get("completion_tokens", 0)
        gen.seconds = time.monotonic() - start
        return gen


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerHandle:
    """A model server subprocess with an OpenAI-compatible API under `base_url`."""

    def __init__(self, proc: subprocess.Popen, host: str, port: int, log_path: Path, name: str = "server",
                 temp_log: bool = False):
        self.proc = proc
        self.temp_log = temp_log  # a log we created: removed by a clean stop(), kept after a failure
        self.host = host
        self.port = port
        self.log_path = log_path
        self.name = name
        self.base_url = f"http://{host}:{port}/v1"
        # a normal interpreter exit (or losing the handle) ends the server too
        self._finalizer = weakref.finalize(self, _terminate, proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, timeout: float) -> None:
        """Poll GET /v1/models until it answers 200; raise ModelError if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        url = self.base_url + "/models"
        while True:
            if not self.alive():
                raise ModelError(f"{self.name} exited with code {self.proc.returncode} before it was ready; "
                                 f"log {self.log_path}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200 and json.load(resp).get("data") is not None:
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop(keep_log=True)
                raise ModelError(f"{self.name} did not answer {url} within {timeout:.0f} s; "
                                 f"log {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.2)

    def wait(self) -> int:
        """Block until the server exits (for a foreground `serve`)."""
        return self.proc.wait()

    def stop(self, grace: float = 5.0, keep_log: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.temp_log and not keep_log:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        # Ctrl-C or SIGTERM: no grace, as the server would first finish the requests in flight
        self.stop(grace=0.5 if exc_type and issubclass(exc_type, KeyboardInterrupt) else 5.0)

    def __repr__(self) -> str:
        return f"<ServerHandle {self.name} pid={self.proc.pid} {self.base_url} alive={self.alive()}>"


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux only)
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort
        pass


def launch(cmd: list[str], host: str, port: int, name: str, timeout: float, env: dict | None = None,
           log_path: str | os.PathLike | None = None, die_with_parent: bool = True) -> ServerHandle:
    """Start `cmd` (a server listening on host:port) with its output in a log file; wait until ready.

    die_with_parent (default): the kernel sends SIGTERM to the server when the thread that started
    it ends, even by SIGKILL (Linux), so no orphaned servers are left behind. Turn it off when a
    short-lived worker thread starts a server that must outlive that thread.
    """
    temp_log = log_path is None
    if temp_log:
        fd, log_path = tempfile.mkstemp(prefix=f"repair-agent-{name.split()[0]}-", suffix=".log")
        os.close(fd)
    log_path = Path(log_path)
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **(env or {})},
                                    preexec_fn=_die_with_parent if die_with_parent and sys.platform == "linux" else None)
        except OSError as exc:
            raise ModelError(f"cannot start {name} ({cmd[0]}): {exc}") from exc
    handle = ServerHandle(proc, host, port, log_path, name, temp_log=temp_log)
    try:
        handle.wait_ready(timeout)
    except BaseException:
        handle.stop(keep_log=True)
        raise
    return handle


def llama_server_command(gguf: str | os.PathLike, port: int, n_ctx: int = 4096, host: str = "127.0.0.1",
                         n_threads: int | None = None, model_alias: str | None = None,
                         logits_all: bool = False, batched: bool = True) -> list[str]:
    # logits_all (the server's default) keeps every position's logits, and a request for logprobs then
    # sorts the whole vocabulary in Python for each token: infill samples ran 3 to 4 times slower
    module = SERVER_MODULE if batched else "llama_cpp.server"  # (llama-cpp-python's own: no `n`)
    cmd = [sys.executable, "-m", module, "--model", str(gguf), "--host", host, "--port", str(port),
           "--n_ctx", str(n_ctx), "--logits_all", str(logits_all).lower()]
    if n_threads:
        cmd += ["--n_threads", str(n_threads), "--n_threads_batch", str(n_threads)]
    if model_alias:
        cmd += ["--model_alias", model_alias]
    return cmd


def start_llama_server(gguf: str | os.PathLike, port: int | None = None, n_ctx: int = 4096,
                       host: str = "127.0.0.1", n_threads: int | None = None, model_alias: str | None = None,
                       timeout: float = 120, log_path: str | os.PathLike | None = None,
                       die_with_parent: bool = True, batched: bool = True) -> ServerHandle:
    """Run llama-cpp-python's server (with `n`: SERVER_MODULE) on a free loopback port and wait until
    /v1/models answers.

    `gguf` is a registry name (see repair_agent.llm.model_files) or a path. The model id the server lists is
    `model_alias` (default: the registry name, else the file path). `batched=False`: llama-cpp-python's
    own server, which answers one choice whatever `n` asks.
    """
    require_llama_cpp(server=True)
    from .model_files import known, resolve_gguf

    path = resolve_gguf(gguf)
    if model_alias is None and str(gguf) in known():  # a registry model or one trained here (models add)
        model_alias = str(gguf)
    port = port or free_port(host)
    cmd = llama_server_command(path, port, n_ctx, host, n_threads, model_alias, batched=batched)
    return launch(cmd, host, port, "llama.cpp server", timeout, log_path=log_path, die_with_parent=die_with_parent)
