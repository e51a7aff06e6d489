"""Build the infill training set from real packages: `traces synth` over pinned PyPI sdists.

    python -m train.build_data [--work DIR] [--out train/data] [--only NAME ...] [--sdists DIR]

Each package of PACKAGES (none a benchmark's: not QuixBugs, HumanEval or a BugsInPy project) is
fetched as its sdist (`pip download --no-binary :all: --no-deps NAME==VERSION`, checked against the
pinned sha256), unpacked, and given to `repair_agent.training.synth.synth` (Docker sandbox, the
embedded model's profile, seed 0) with its package folder as the only place mutated. Every kept
mutant with an infill shape is one record, the prompt exactly as the agent's infill source sends it
(the failure's evidence block included). The records of all packages are then merged:

- de-duplicated on the prompt with every run of whitespace made one space, and the completion;
- checked against the benchmarks by content: the normalized text (`training.normalize.function_keys`)
  of the mutated function is compared with every function of two or more lines in QuixBugs (buggy
  and fixed programs) and in the BugsInPy projects' code found here (their repositories under
  --bugsinpy-repos, and any of their packages installed in this Python); a record whose function
  matches is dropped and counted, and `benchmarks.code_refusal` (QuixBugs, HumanEval's names,
  BugsInPy paths) is asked of its file too.

A package's synth output (WORK/synth/NAME) is kept, so a stopped build goes on where it stopped.
Writes OUT/infill.jsonl and OUT/manifest.json (versions, sdist hashes, licences, counts, the data's sha256).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import re
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from repair_agent.training import benchmarks, synth
from repair_agent.training.normalize import function_keys

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "train" / "data"
DEFAULT_BUGSINPY = Path("/work/bugsinpy/repos")
SEED = 0


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    sha256: str  # of the sdist as PyPI serves it
    paths: tuple[str, ...]  # what is mutated: the package's own code (not docs/, noxfile.py, setup.py)
    max_mutants: int = 80
    test: tuple[str, ...] = field(default=())  # pytest arguments, where the default collection needs help


# Small pure-Python packages with no runtime dependencies whose sdists ship their tests.
PACKAGES = (
    Package("inflection", "0.5.1", "1a29730d366e996aaacffb2f1f1cb9593dc38e2ddd30c91250c6dde09ea9b417",
            ("inflection",)),
    Package("xmltodict", "1.0.4", "6d94c9f834dd9e44514162799d344d815a3a4faec913717a9ecbfa5be1bb8e61",
            ("xmltodict.py",)),
    Package("webcolors", "25.10.0", "62abae86504f66d0f6364c2a8520de4a0c47b80c03fc3a5f1815fedbef7c19bf",
            ("src/webcolors",)),
    Package("isodate", "0.7.2", "4cd1aa0f43ca76f4a6c6c0292a85f40b35ec2e43e315b59f06e6d32171a953e6",
            ("src/isodate",)),
    Package("cachetools", "8.0.3", "79245d0d90464e29355f13658cd769e57d98ed06242d3c6fbd71796ca0938ef9",
            ("src/cachetools",)),
    Package("semver", "3.2.0", "adf2c822d2d8908a1dce0121da7da6511851fbd33080e61da8d2ba1e0677e8f3",
            ("src/semver",)),
    Package("parse", "1.22.4", "706d458feed5a81b02768d3156e8070baf6cee7d150a3a3c0cd43101a875c3b5",
            ("parse",)),
    Package("toolz", "1.2.0", "9667a038e9d6ecba37995e26cb2f59ec6420b6ad8dd9677de59db9b956b08490",
            ("toolz",)),
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def refuse_benchmark_names(packages) -> None:
    """No package may be a BugsInPy project (by distribution or top-level package name)."""
    bugsinpy = {canonical(n) for pair in benchmarks.BUGSINPY_PACKAGES.items() for n in pair}
    bad = [p.name for p in packages if canonical(p.name) in bugsinpy
           or any(canonical(Path(path).parts[-1].removesuffix(".py")) in bugsinpy for path in p.paths)]
    if bad:
        raise SystemExit(f"benchmark projects in the package list: {', '.join(bad)}")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(pkg: Package, sdists: Path) -> Path:
    """The package's sdist in `sdists` (downloaded with pip when missing), its hash checked."""
    sdists.mkdir(parents=True, exist_ok=True)
    stem = f"{pkg.name.replace('-', '_')}-{pkg.version}"
    found = [p for p in sdists.glob("*.tar.gz") if canonical(p.name[:-len(f"-{pkg.version}.tar.gz")]) ==
             canonical(pkg.name) and p.name.endswith(f"-{pkg.version}.tar.gz")]
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
                        "-d", str(sdists), f"{pkg.name}=={pkg.version}"], check=True)
        found = [p for p in sdists.glob("*.tar.gz") if p.name.endswith(f"-{pkg.version}.tar.gz")
                 and canonical(p.name[:-len(f"-{pkg.version}.tar.gz")]) == canonical(pkg.name)]
    if not found:
        raise SystemExit(f"{stem}: no sdist downloaded")
    got = sha256(found[0])
    if got != pkg.sha256:
        raise SystemExit(f"{found[0]}: sha256 {got}, pinned {pkg.sha256}")
    return found[0]


def unpack(sdist: Path, dest: Path) -> Path:
    """The sdist unpacked under `dest` (its one top folder), fresh."""
    with tarfile.open(sdist) as tar:
        tops = {m.name.split("/", 1)[0] for m in tar.getmembers()}
        if len(tops) != 1:
            raise SystemExit(f"{sdist}: expected one top folder, got {sorted(tops)}")
        root = dest / tops.pop()
        if root.exists():
            import shutil
            shutil.rmtree(root)
        tar.extractall(dest, filter="data")
    return root


# --------------------------------------------------------------------------------------------
# the benchmarks' functions
# --------------------------------------------------------------------------------------------

def _key_hash(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()


def _file_keys(path: Path) -> set[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    return {_key_hash(k) for k in function_keys(text) if k.count("\n") >= 1}  # two lines or more, as QuixBugs'


def benchmark_functions(bugsinpy_repos: Path | None, cache: Path | None = None,
                        installed: bool = False) -> tuple[dict[str, str], dict]:
    """sha1 of each normalized function (two or more lines) -> its benchmark, and what was read.

    QuixBugs: its programs, buggy and fixed (the shipped jsonl). BugsInPy: every .py file of each
    project's repository under `bugsinpy_repos` (its checked-out tree), and with `installed` the
    packages of its other projects installed in this Python (tqdm, pandas, ...: those not cloned here)."""
    if cache and cache.is_file():
        saved = json.loads(cache.read_text())
        return saved["keys"], saved["sources"]
    keys: dict[str, str] = {_key_hash(k): v for k, v in benchmarks.quixbugs_functions().items()}
    sources = {"quixbugs": {"functions": len(keys)}}
    roots: dict[str, list[Path]] = {}
    if bugsinpy_repos and bugsinpy_repos.is_dir():
        for repo in sorted(p for p in bugsinpy_repos.iterdir() if p.is_dir()):
            roots.setdefault(canonical(repo.name), []).append(repo)
    for project, package in benchmarks.BUGSINPY_PACKAGES.items() if installed else ():
        try:
            spec = importlib.util.find_spec(package) if canonical(project) not in roots else None
        except (ImportError, ValueError):
            spec = None
        if spec and spec.submodule_search_locations:
            roots.setdefault(canonical(project), []).extend(Path(p) for p in spec.submodule_search_locations)
    for project, dirs in sorted(roots.items()):
        files = funcs = 0
        for d in dirs:
            for path in sorted(d.rglob("*.py")):
                if ".git" in path.parts:
                    continue
                files += 1
                for h in _file_keys(path):
                    funcs += h not in keys
                    keys.setdefault(h, f"bugsinpy:{project}")
        sources[f"bugsinpy:{project}"] = {"paths": [str(d) for d in dirs], "files": files, "functions": funcs}
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"keys": keys, "sources": sources}))
    return keys, sources


def shared_functions(repo: Path, paths, bench: dict[str, str]) -> dict:
    """How many functions (two lines or more) the mutated files hold, and which of them equal a
    benchmark's: their text may stand in a record's prompt as context, though no record's answer
    comes from them (those records are dropped)."""
    total, shared = 0, []
    for rel in synth.source_files(repo, list(paths)):
        for key in function_keys((repo / rel).read_text(encoding="utf-8", errors="replace")):
            if key.count("\n") >= 1:
                total += 1
                if _key_hash(key) in bench:
                    shared.append(f"{rel}: {key.splitlines()[0].strip()} = {bench[_key_hash(key)]}")
    return {"functions": total, "functions_shared_with_benchmarks": shared}


def contamination(row: dict, file_text: str, bench: dict[str, str]) -> str:
    """Why a kept mutant's record is benchmark code, or "": its function (normalized) is one of the
    benchmarks', or its file is refused by `benchmarks.code_refusal`."""
    for key in function_keys(row["original"]):
        hit = bench.get(_key_hash(key))
        if hit:
            return f"{hit} ({row['function']})"
    return benchmarks.code_refusal(file_text, row["file"])


# --------------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------------

def dedup_key(record: dict) -> str:
    """The prompt's text (a chat prompt's contents) with every run of whitespace, line ends included,
    made one space, and the completion stripped."""
    prompt = record["prompt"]
    text = prompt if isinstance(prompt, str) else "\0".join(f"{m['role']}:{m['content']}" for m in prompt)
    return "\0".join((record["metadata"]["kind"], re.sub(r"\s+", " ", text).strip(), record["completion"].strip()))


def run_synth(pkg: Package, repo: Path, out: Path, log=print) -> dict:
    done = out / "synth.json"
    if done.is_file():
        log(f"{pkg.name}: synth already done ({done})")
        return json.loads(done.read_text())
    started = time.monotonic()
    summary = synth.synth(repo, out, max_mutants=pkg.max_mutants, sandbox_kind="docker", seed=SEED,
                          test_args=list(pkg.test), paths=list(pkg.paths), log=log)
    summary["seconds"] = round(time.monotonic() - started, 1)
    done.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def merge(packages, work: Path, out: Path, bench: dict[str, str], log=print) -> dict:
    """The records of every package's synth output, de-duplicated and benchmark code dropped."""
    records, seen = [], set()
    per: dict[str, dict] = {}
    for pkg in packages:
        folder = work / "synth" / pkg.name
        summary = json.loads((folder / "synth.json").read_text())
        repo = Path(json.loads((work / "synth" / f"{pkg.name}.source.json").read_text())["repo"])
        kept = {r["id"]: r for r in map(json.loads, (folder / "mutants.jsonl").read_text().splitlines())}
        stats = {"version": pkg.version, "licence": summary["licence"], "tests": summary["tests"],
                 "tried": summary["tried"], "kept": summary["kept"], "infill_records": summary["infill_records"],
                 "duplicates": 0, "benchmark_code": 0, "records": 0, "seconds": summary.get("seconds"),
                 "refused": [], **shared_functions(repo, pkg.paths, bench)}
        for line in (folder / "infill.jsonl").read_text().splitlines():
            rec = json.loads(line)
            row = kept[rec["metadata"]["task"]]
            why = contamination(row, (repo / row["file"]).read_text(encoding="utf-8"), bench)
            if why:
                stats["benchmark_code"] += 1
                stats["refused"].append(why)
                continue
            key = dedup_key(rec)
            if key in seen:
                stats["duplicates"] += 1
                continue
            seen.add(key)
            rec["metadata"].update({"package": pkg.name, "version": pkg.version,
                                    "licence": summary["licence"].rsplit(" (", 1)[0], "function": row["function"]})
            records.append(rec)
            stats["records"] += 1
        per[pkg.name] = stats
        log(f"{pkg.name}: {stats['records']} record(s) ({stats['duplicates']} duplicate(s), "
            f"{stats['benchmark_code']} benchmark code)")
    out.mkdir(parents=True, exist_ok=True)
    data = out / "infill.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records),
                    encoding="utf-8")
    return {"records": len(records), "packages": per, "file": data.name, "sha256": sha256(data),
            "bytes": data.stat().st_size}


def build(packages=PACKAGES, work: Path = Path("/tmp/repair-agent-data"), out: Path = DEFAULT_OUT,
          sdists: Path | None = None, bugsinpy_repos: Path | None = DEFAULT_BUGSINPY, installed: bool = True,
          log=print) -> dict:
    refuse_benchmark_names(packages)
    work = work.resolve()
    sdists = (sdists or work / "sdists").resolve()
    started = time.monotonic()
    bench, sources = benchmark_functions(bugsinpy_repos, work / "benchmark-functions.json", installed)
    log(f"benchmark functions: {len(bench)} ({', '.join(sorted(sources))})")
    for pkg in packages:
        sdist = fetch(pkg, sdists)
        repo = unpack(sdist, work / "src")
        (work / "synth").mkdir(parents=True, exist_ok=True)
        (work / "synth" / f"{pkg.name}.source.json").write_text(json.dumps({"repo": str(repo), "sdist": sdist.name}))
        summary = run_synth(pkg, repo, work / "synth" / pkg.name, log=log)
        log(f"{pkg.name} {pkg.version}: {summary['kept']} of {summary['tried']} mutants kept, "
            f"{summary['infill_records']} records, {summary.get('seconds')} s")
    merged = merge(packages, work, out, bench, log=log)
    manifest = {
        "command": "python -m train.build_data", "seed": SEED, "profile": "qwen2.5-coder (the embedded model's)",
        "sandbox": "docker", "packages": [{"name": p.name, "version": p.version, "sdist_sha256": p.sha256,
                                           "mutated": list(p.paths), "max_mutants": p.max_mutants,
                                           **merged["packages"][p.name]} for p in packages],
        "records": merged["records"], "file": merged["file"], "sha256": merged["sha256"], "bytes": merged["bytes"],
        "benchmark_sources": sources, "benchmark_functions": len(bench),
        "seconds": round(time.monotonic() - started, 1),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"{merged['records']} record(s) -> {out / merged['file']} (sha256 {merged['sha256']})")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/repair-agent-data"),
                    help="Where sdists are unpacked and synth writes (kept: a stopped build goes on).")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Where infill.jsonl and manifest.json go.")
    ap.add_argument("--sdists", type=Path, default=None, help="A folder of the sdists (default WORK/sdists; "
                    "missing ones are downloaded with pip).")
    ap.add_argument("--bugsinpy-repos", type=Path, default=DEFAULT_BUGSINPY,
                    help="BugsInPy's project repositories, whose functions no record may hold.")
    ap.add_argument("--no-installed", action="store_true", help="Leave out the BugsInPy projects' packages "
                    "installed in this Python (pandas, matplotlib, tqdm, ...) from the benchmark check.")
    ap.add_argument("--only", action="append", default=[], help="Build from these packages only (repeatable).")
    args = ap.parse_args(argv)
    packages = [p for p in PACKAGES if not args.only or p.name in args.only]
    if not packages:
        ap.error(f"no such package: {', '.join(args.only)}; known: {', '.join(p.name for p in PACKAGES)}")
    build(packages, args.work, args.out, args.sdists, args.bugsinpy_repos, not args.no_installed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
