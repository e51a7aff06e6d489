"""The training set's builder (train/build_data.py) and what synth needs for an unpacked sdist:
mutating only the package's own files, the licence read from PKG-INFO, the benchmark check by
normalized function, de-duplication. The end-to-end test builds a real sdist (a tar.gz of
tests/fixtures/synth_repo with docs/ and PKG-INFO, as PyPI serves one), runs synth in Docker and
merges; a copy of one of its functions planted in a fake BugsInPy project must drop its records.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import textwrap
from pathlib import Path

import pytest
from helpers import FIXTURES

from repair_agent.training import synth
from train import build_data
from train.build_data import Package

PKG_INFO = "Metadata-Version: 2.4\nName: mathx\nVersion: 1.0\n{licence}\nRequires-Python: >=3.9\n\nLong text.\nLicense: not this\n"
PYPROJECT = ('[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
             '[project]\nname = "mathx"\nversion = "1.0"\n')
CONF = "def setup(app):\n    app.add_css('x.css')\n    return {'parallel_read_safe': 1 + 1}\n"


def make_sdist(folder: Path, licence: str = "License-Expression: MIT") -> Path:
    """mathx-1.0.tar.gz: the fixture's package under src/ (installed into the sandbox's image by its
    pyproject.toml, as most sdists are), its tests, docs/conf.py and PKG-INFO, one top folder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mathx-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for src in sorted((FIXTURES / "synth_repo").rglob("*")):
            if src.is_file() and "__pycache__" not in src.parts:
                rel = src.relative_to(FIXTURES / "synth_repo").as_posix()
                tar.add(src, arcname=f"mathx-1.0/{'src/' if rel.startswith('mathx/') else ''}{rel}")
        for name, text in (("PKG-INFO", PKG_INFO.format(licence=licence)), ("docs/conf.py", CONF),
                           ("pyproject.toml", PYPROJECT)):
            data = text.encode()
            info = tarfile.TarInfo(f"mathx-1.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_synth_mutates_only_the_paths_given(tmp_path):
    repo = build_data.unpack(make_sdist(tmp_path / "sdists"), tmp_path / "src")
    everywhere = {m.file for m in synth.all_mutants(repo)}
    assert "docs/conf.py" in everywhere  # an sdist's docs are code synth would mutate (and no test catches)
    assert {m.file for m in synth.all_mutants(repo, ["src/mathx"])} == {"src/mathx/core.py"}
    assert synth.source_files(repo, ["src/mathx/core.py"]) == ["src/mathx/core.py"]
    assert synth.source_files(repo, ["src/math"]) == []  # a folder, not a name's prefix
    made = synth.mutants(repo, max_mutants=5, seed=0, paths=["src/mathx/"])
    assert len(made) == 5 and all(m.file == "src/mathx/core.py" for m in made)


@pytest.mark.parametrize("header, want", [
    ("License-Expression: MIT", "MIT (PKG-INFO)"),
    ("License: BSD-3-Clause\nClassifier: License :: OSI Approved :: BSD License", "BSD-3-Clause (PKG-INFO)"),
    # isodate 0.7.2: a copyright line in the field, the licence in the classifier
    ("License: Copyright (c) 2021, Someone\nClassifier: License :: OSI Approved :: BSD License", "BSD License (PKG-INFO)"),
    ("License: UNKNOWN", "unknown"),
])
def test_the_licence_is_read_from_the_sdists_metadata(tmp_path, header, want):
    (tmp_path / "PKG-INFO").write_text(PKG_INFO.format(licence=header))
    assert synth.licence_of(tmp_path) == want


def test_a_bugsinpy_project_cannot_be_in_the_package_list():
    with pytest.raises(SystemExit, match="youtube_dl"):
        build_data.refuse_benchmark_names([Package("youtube_dl", "1", "0", ("youtube_dl",))])
    with pytest.raises(SystemExit, match="PySnooper"):
        build_data.refuse_benchmark_names([Package("PySnooper", "1", "0", ("pysnooper",))])
    build_data.refuse_benchmark_names(build_data.PACKAGES)  # the shipped list is clean


def test_the_pinned_hash_is_checked(tmp_path):
    sdist = make_sdist(tmp_path / "sdists")
    good = Package("mathx", "1.0", hashlib.sha256(sdist.read_bytes()).hexdigest(), ("mathx",))
    assert build_data.fetch(good, tmp_path / "sdists") == sdist
    with pytest.raises(SystemExit, match="pinned"):
        build_data.fetch(Package("mathx", "1.0", "0" * 64, ("mathx",)), tmp_path / "sdists")


def test_benchmark_functions_are_recognized_by_normalized_content(tmp_path):
    repos = tmp_path / "repos"
    (repos / "sanic" / "sanic").mkdir(parents=True)
    (repos / "sanic" / "sanic" / "helpers.py").write_text(textwrap.dedent('''\
        def limit(v, lo, hi):
            """Docstrings and comments do not hide it."""
            if v < lo:  # below
                return lo
            return min(v, hi)

        def one_line():
            return 1
        '''))
    bench, sources = build_data.benchmark_functions(repos, tmp_path / "cache.json")
    assert sources["bugsinpy:sanic"]["files"] == 1 and sources["quixbugs"]["functions"] > 50
    assert build_data.benchmark_functions(repos, tmp_path / "cache.json")[0] == bench  # from the cache
    row = {"function": "Box.limit", "file": "box/core.py",
           "original": "    def limit(v, lo, hi):\n        if v < lo:\n            return lo\n\n        return min(v,hi)\n"}
    assert build_data.contamination(row, row["original"], bench) == "bugsinpy:sanic (Box.limit)"
    row["original"] = "def limit(v, lo, hi):\n    return max(lo, min(v, hi))\n"
    assert build_data.contamination(row, row["original"], bench) == ""
    from repair_agent.training.benchmarks import quixbugs_functions
    key, program = next((k, v) for k, v in quixbugs_functions().items() if v == "quixbugs:bitcount")
    row = {"function": "bitcount", "file": "bits/ops.py", "original": key + "\n"}
    assert build_data.contamination(row, key, bench) == "quixbugs:bitcount (bitcount)"


def test_duplicates_differ_only_in_whitespace():
    a = {"prompt": "x = 1\n    <hole>\n", "completion": "y", "metadata": {"kind": "infill"}}
    b = {"prompt": "x = 1\n  <hole>  \n", "completion": "y", "metadata": {"kind": "infill"}}
    c = {"prompt": "x = 1\n  <hole>  \n", "completion": "z", "metadata": {"kind": "infill"}}
    assert build_data.dedup_key(a) == build_data.dedup_key(b) != build_data.dedup_key(c)


def test_an_sdist_becomes_records_shaped_as_the_agents_infill_prompt(tmp_path, docker_ready):
    sdists = tmp_path / "sdists"
    sdist = make_sdist(sdists)
    pkg = Package("mathx", "1.0", hashlib.sha256(sdist.read_bytes()).hexdigest(), ("src/mathx",), max_mutants=12)
    repos = tmp_path / "bugsinpy"  # a BugsInPy project holding a copy of the fixture's clamp
    (repos / "luigi" / "luigi").mkdir(parents=True)
    core = (FIXTURES / "synth_repo" / "mathx" / "core.py").read_text()
    (repos / "luigi" / "luigi" / "util.py").write_text(core[core.index("def clamp"):core.index("def running_total")])
    manifest = build_data.build([pkg], work=tmp_path / "work", out=tmp_path / "out", sdists=sdists,
                                bugsinpy_repos=repos, installed=False, log=lambda m: None)
    records = [json.loads(line) for line in (tmp_path / "out" / "infill.jsonl").read_text().splitlines()]
    stats = manifest["packages"][0]
    assert stats["licence"] == "MIT (PKG-INFO)" and stats["version"] == "1.0"
    assert stats["benchmark_code"] >= 1 and all(w.startswith("bugsinpy:luigi (clamp)") for w in stats["refused"])
    assert stats["functions"] == 4 and stats["functions_shared_with_benchmarks"] == [
        "src/mathx/core.py: def clamp(value, low, high): = bugsinpy:luigi"]
    # the tests import the mutant, not the copy of the package installed into the sandbox's image
    assert stats["kept"] >= 6 and records and stats["records"] == len(records) == manifest["records"]
    assert stats["records"] + stats["benchmark_code"] + stats["duplicates"] == stats["infill_records"]
    assert manifest["sha256"] == hashlib.sha256((tmp_path / "out" / "infill.jsonl").read_bytes()).hexdigest()
    kept = {json.loads(line)["id"]: json.loads(line)
            for line in (tmp_path / "work" / "synth" / "mathx" / "mutants.jsonl").read_text().splitlines()}
    for rec in records:
        meta = rec["metadata"]
        row = kept[meta["task"]]
        assert meta["file"] == "src/mathx/core.py" and meta["function"] != "clamp"
        assert (meta["package"], meta["licence"], meta["source"]) == ("mathx", "MIT", "synth")
        assert rec["prompt"].startswith("<|fim_prefix|>") and "# A test fails:" in rec["prompt"]
        assert rec["completion"] in row["original"]
    assert len({build_data.dedup_key(r) for r in records}) == len(records)
    # a second build reuses the synth output and writes the same bytes
    again = build_data.build([pkg], work=tmp_path / "work", out=tmp_path / "out2", sdists=sdists,
                             bugsinpy_repos=repos, installed=False, log=lambda m: None)
    assert again["sha256"] == manifest["sha256"]
