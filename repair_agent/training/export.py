"""Run records -> SFT data: one PyX-R shaped record per validated fix.

`export()` reads run directories (`RUN_DIR/records.jsonl`, written by `runs.RunRecorder`) and writes
JSONL that `train/` (and `datasets.load_dataset("json", ...)`) reads::

    {"fault": <the refine instruction the model was given in that round>,
     "response": <its answer: monologue + [Refined] code that passed the full suite>,
     "metadata": {"source_run", "source", "task", "model", "round", "index", "dataset", "validated"}}

`source` is where the run came from: "user" (a `fix` run), "synth" (`traces synth`) or
"benchmark" (then `dataset` names it).

Only candidates whose status is "fixed" (the failing tests and the full suite passed) become
records. Records are de-duplicated on the normalized buggy code (the `### Buggy Solution` block,
parsed and unparsed so whitespace and comments do not count).

Decontamination: every benchmark run is left out unless its benchmark is named in
`include_benchmarks` (validated benchmark fixes are the benchmark's answers). A run belongs to a
benchmark when

1. it lives in a benchmark output folder (`OUT/runs/RUN_ID` beside `OUT/records.jsonl`, the
   runner's per-task records): its dataset is the one the records name for its run id, else the
   folder's `summary.json` dataset; a run there whose dataset cannot be told (say, an interrupted
   task) counts as that folder's benchmark, and as "unknown" when even that is missing (included
   only by naming "unknown"); or
2. its run.json names a repository under such a folder's `work/<task>/` (the same, for runs moved
   elsewhere than `OUT/runs`); or
3. its buggy code holds a function of a shipped benchmark program (QuixBugs' buggy sources in
   `repair_agent/data/quixbugs`), whatever folder it came from.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .. import answers, patching
from ..llm.factory import DEFAULT_MODEL
from ..llm.profiles import profile_for
from ..search import SOURCES as SEARCH_SOURCES
from .benchmarks import code_refusal
from .normalize import CONTEXT_HEADER, normalize
from .shapes import explain_record, infill_record

BUGGY = re.compile(r"^### Buggy Solution[ \t]*\n```[\w+-]*[^\n]*\n(.*?)^```", re.S | re.M)
CONTEXT_PATH = re.compile(CONTEXT_HEADER.pattern.replace(r"^# \S+", r"^# (\S+)", 1), re.M)  # its file
BENCH_RECORDS = "records.jsonl"
UNKNOWN = "unknown"


# --------------------------------------------------------------------------------------------
# the buggy code of an instruction (normalize.py holds the normalization)
# --------------------------------------------------------------------------------------------

def buggy_code(fault: str) -> str:
    """The content of the `### Buggy Solution` python block of a refine instruction ("" if none)."""
    m = BUGGY.search(fault)
    return m.group(1) if m else ""


# --------------------------------------------------------------------------------------------
# finding runs and what they belong to
# --------------------------------------------------------------------------------------------

def _read_jsonl(path: Path) -> list[dict]:
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        if line.strip():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: the rest of the run is still good
            if isinstance(rec, dict):
                out.append(rec)
    return out


def _is_run_records(path: Path) -> bool:
    """A run's records.jsonl (event lines), not a benchmark's (task lines)."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    return isinstance(rec, dict) and "event" in rec and "run_id" in rec
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    return False


def find_runs(paths: Iterable[Path]) -> list[Path]:
    """Run directories among `paths` and below them, each once, in a stable order."""
    found: dict[Path, None] = {}
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"no such run directory or folder: {p}")
        files = [p / "records.jsonl"] if (p / "records.jsonl").is_file() and _is_run_records(p / "records.jsonl") \
            else sorted(p.rglob("records.jsonl"))
        for f in files:
            if "scratch" in f.relative_to(p).parts[:-1]:
                continue  # a live run's scratch copy of the user's tree
            if _is_run_records(f):
                found.setdefault(f.parent.resolve(), None)
    return list(found)


@dataclass
class Origin:
    dataset: str = ""  # "" for a user's run; a benchmark name; "synth"; "unknown" (some benchmark)
    task: str = ""


@dataclass
class _Folders:
    """Per-folder lookups (benchmark outputs and synth outputs), read once."""
    bench: dict[Path, tuple[dict[str, dict], list[dict], str] | None] = field(default_factory=dict)
    synth: dict[Path, dict[str, str] | None] = field(default_factory=dict)

    def bench_of(self, out: Path) -> tuple[dict[str, dict], list[dict], str] | None:
        """({run_id: record}, all task records, dataset label) when `out` is a benchmark output folder."""
        if out not in self.bench:
            recs = [r for r in _read_jsonl(out / BENCH_RECORDS) if "task_id" in r]
            label = ""
            try:
                label = json.loads((out / "summary.json").read_text()).get("dataset") or ""
            except (OSError, ValueError, AttributeError):
                pass
            is_bench = bool(recs) or bool(label) or (out / "work").is_dir() and (out / "runs").is_dir()
            self.bench[out] = ({r["run_id"]: r for r in recs if r.get("run_id")}, recs, label) if is_bench else None
        return self.bench[out]

    def synth_of(self, out: Path) -> dict[str, str] | None:
        """{run_id: mutant id} when `out` is a `repair-agent traces synth` output folder."""
        if out not in self.synth:
            path = out / "mutants.jsonl"
            self.synth[out] = {r["run_id"]: r["id"] for r in _read_jsonl(path) if r.get("run_id")} \
                if path.is_file() else None
        return self.synth[out]


def origin(run_dir: Path, run_info: dict, folders: _Folders) -> Origin:
    run_id = run_info.get("run_id") or run_dir.name
    if run_dir.parent.name == "runs":
        out = run_dir.parent.parent
        bench = folders.bench_of(out)
        if bench is not None:
            by_run, _, label = bench
            rec = by_run.get(run_id)
            if rec:
                return Origin(str(rec.get("dataset") or label or UNKNOWN), str(rec["task_id"]))
            return Origin(label or UNKNOWN, _work_task(run_info.get("repo", "")) or run_info.get("repo", ""))
        synth = folders.synth_of(out)
        if synth is not None:
            return Origin("synth", synth.get(run_id, run_info.get("repo", "")))
    repo = run_info.get("repo", "")
    task = _work_task(repo)
    if task:  # the repository was a benchmark task's copy: OUT/work/TASK/repo
        out = Path(repo).parents[2]
        bench = folders.bench_of(out)
        if bench is not None:
            _, recs, label = bench
            named = {r.get("dataset") for r in recs if str(r.get("task_id", "")).replace("/", "_") == task}
            named.discard(None)
            return Origin(str(next(iter(named), "") or label or UNKNOWN), task)
    return Origin("", repo)


def _work_task(repo: str) -> str:
    parts = Path(repo).parts if repo else ()
    if len(parts) >= 3 and parts[-3] == "work" and parts[-1] == "repo":
        return parts[-2]
    return ""


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------

def _response(cand: dict) -> str:
    """The candidate's answer; when its passing code was not inside a `[Refined]` block, the text
    before that code plus the code in a `[Refined]` block, so every record teaches one layout."""
    text = (cand.get("response") or "").strip()
    code = cand.get("code") or ""
    if not code:
        return text  # a diff answer: as the model wrote it
    for refined in answers.REFINED.findall(text):
        if code.strip() in refined:
            return text
    at = text.find(code.strip())
    head = text[:at] if at >= 0 else text
    head = head[:head.rfind("```")] if at >= 0 and "```" in head else head
    return f"{head.rstrip()}\n\n[Refined]\n```python\n{code.rstrip()}\n```\n[/Refined]".strip()


def _user_message(messages: list[dict]) -> str:
    users = [m.get("content", "") for m in messages or [] if m.get("role") == "user"]
    return users[-1] if users else ""


def run_records(run_dir: Path) -> list[dict]:
    return _read_jsonl(Path(run_dir) / "records.jsonl")


def _model_name(run_dir: Path, events: list[dict], info: dict) -> str:
    for ev in reversed(events):
        if ev.get("event") == "result" and isinstance(ev.get("result"), dict) and ev["result"].get("model"):
            return str(ev["result"]["model"])
    try:
        name = json.loads((run_dir / "result.json").read_text()).get("model")
        if name:
            return str(name)
    except (OSError, ValueError, AttributeError):
        pass
    settings = info.get("settings") or {}
    return str(settings.get("model") or settings.get("model_path") or "")


def source_of(dataset: str) -> str:
    """"user", "synth" or "benchmark" for an `Origin.dataset`."""
    return "user" if not dataset else "synth" if dataset == "synth" else "benchmark"


def _result(run_dir: Path, events: list[dict]) -> dict:
    for ev in reversed(events):
        if ev.get("event") == "result" and isinstance(ev.get("result"), dict):
            return ev["result"]
    try:
        res = json.loads((run_dir / "result.json").read_text())
        return res if isinstance(res, dict) else {}
    except (OSError, ValueError):
        return {}


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """git with bytes in and out: a file's line endings are part of its blob hash."""
    return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"})


def file_before(repo: Path, patch: str) -> tuple[str, str, str] | None:
    """(file, its text before, after) for a one-file patch whose file before is found: the blob
    its `index` line names in the repository's objects, else the file in the tree when its hash is
    that blob's (a run keeps no copy of the tree; the repository is where the run read it)."""
    files = patching.changed_files(patch)
    index = re.search(r"^index ([0-9a-f]{7,})\.\.([0-9a-f]{7,})", patch, re.M)
    repo = Path(repo)
    if len(files) != 1 or not index or not repo.is_dir():
        return None
    file, (old, new) = files[0], index.groups()
    blob = _git(repo, "cat-file", "blob", old)
    before = blob.stdout if blob.returncode == 0 else None
    if before is None and (repo / file).is_file() \
            and _git(repo, "hash-object", "--", file).stdout.decode().startswith(old):
        before = (repo / file).read_bytes()
    if before is None:
        return None
    with tempfile.TemporaryDirectory(prefix="repair-agent-export-") as tmp:
        path = Path(tmp) / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(before)
        if _git(Path(tmp), "apply", "-", stdin=patch.encode()).returncode != 0:
            return None
        after = path.read_bytes()
    if not _git(repo, "hash-object", "--stdin", stdin=after).stdout.decode().startswith(new):
        return None
    try:
        return file, before.decode("utf-8"), after.decode("utf-8")
    except UnicodeDecodeError:
        return None


def search_records(run_dir: Path, info: dict, events: list[dict], result: dict,
                   profile_name: str | None) -> tuple[list[dict], str]:
    """A fix found by the search (mutate, infill) as the records the agent's prompts would make:
    the infill prompt of the model's profile with the fixed line as the fill, and the explanation
    prompt with its checked answer when the run has one. Returns (records, why none)."""
    settings = info.get("settings") or {}
    profile = profile_for(_model_name(run_dir, events, info) or DEFAULT_MODEL, profile_name or settings.get("profile"))
    found = file_before(Path(info.get("repo") or ""), result.get("patch") or "")
    if found is None:
        return [], "fixed file not found (the repository moved or changed, or the patch spans files)"
    file, buggy, fixed = found
    told = next((ev.get("failure") or "" for ev in events if ev.get("event") == "search"), "")
    shaped = infill_record(buggy, fixed, profile, settings.get("infill_context_tokens"), told)
    if shaped is None:
        return [], "the fix is no masked line (a deletion, or more than one place)"
    meta = {"kind": "infill", "fix_source": result.get("source"), "profile": profile.name, "file": file,
            "line": shaped["line"], "mask": shaped["mask"], "refusal": code_refusal(buggy, file)}
    out = [{"prompt": shaped["prompt"], "completion": shaped["completion"], "metadata": meta}]
    explained = explain_record(events, result, profile)
    if explained:
        out.append({**explained, "metadata": {**meta, "kind": "explain"}})
    return out, ""


def export(run_dirs: list[Path], out: Path, include_benchmarks: list[str] | None = None,
           profile: str | None = None) -> dict:
    """Write one record per validated fix found under `run_dirs` to `out` (JSONL); return stats.

    A refine fix is a PyX-R record; a fix found by the search is an infill record (and an explain
    record when the run's explanation passed its checks), for `profile` (default: the run's).
    Benchmark runs, and any run whose buggy code is benchmark code (`benchmarks.code_refusal`),
    are left out unless `include_benchmarks` names their dataset (e.g. "quixbugs", "humanevalfix").
    """
    included = {n.strip().lower() for n in include_benchmarks or [] if n.strip()}
    folders = _Folders()
    stats = {"runs": 0, "runs_with_proposals": 0, "fixed_candidates": 0, "search_fixes": 0, "records": 0,
             "duplicates": 0, "excluded": {}, "skipped": {}}
    seen: set[str] = set()
    records: list[dict] = []

    def skip(why: str) -> None:
        stats["skipped"][why] = stats["skipped"].get(why, 0) + 1

    def refused(dataset: str, refusal: str) -> bool:
        """Counts and says whether a record of this origin (and benchmark code found in it) is left out."""
        benchmark = dataset if source_of(dataset) == "benchmark" else None
        dropped = next((n for n in (benchmark, refusal.split(":")[0]) if n and n.lower() not in included), None)
        if dropped:
            stats["excluded"][dropped] = stats["excluded"].get(dropped, 0) + 1
        return bool(dropped)

    def keep(key: str, record: dict) -> None:
        if key in seen:
            stats["duplicates"] += 1
            return
        seen.add(key)
        records.append(record)

    for run_dir in find_runs(run_dirs):
        stats["runs"] += 1
        events = run_records(run_dir)
        try:
            info = json.loads((run_dir / "run.json").read_text())
        except (OSError, ValueError):
            info = {"run_id": events[0].get("run_id", run_dir.name) if events else run_dir.name}
        run_id = str(info.get("run_id") or run_dir.name)
        where = origin(run_dir, info, folders)
        model = _model_name(run_dir, events, info)
        base = {"source_run": run_id, "source": source_of(where.dataset), "task": str(where.task), "model": model}
        result = _result(run_dir, events)
        if result.get("status") == "fixed" and result.get("source") in SEARCH_SOURCES:
            stats["search_fixes"] += 1
            shaped, why = search_records(run_dir, info, events, result, profile)
            if why:
                skip(why)
            for rec in shaped:
                meta = rec["metadata"]
                if refused(where.dataset, meta.pop("refusal")):
                    break
                rec["metadata"] = {**base, **meta, "dataset": where.dataset, "validated": True}
                prompt = re.sub(r"\s+", " ", json.dumps(rec["prompt"]))
                keep(f"{meta['kind']}\0{prompt}\0{rec['completion']}", rec)
            continue
        if not any(e.get("event") == "propose" for e in events):
            continue
        stats["runs_with_proposals"] += 1
        faults: dict[int, str] = {}
        for ev in events:  # a resumed run may hold a round twice: the last word counts
            if ev.get("event") == "propose":
                faults[int(ev.get("round", 0))] = _user_message(ev.get("messages"))
        for ev in events:
            cand = ev.get("candidate") if ev.get("event") == "validate" else None
            if not isinstance(cand, dict) or cand.get("status") != "fixed":
                continue
            stats["fixed_candidates"] += 1
            rnd, idx = int(cand.get("round", 0)), int(cand.get("index", 0))
            fault = faults.get(rnd, "")
            response = _response(cand)
            if not fault or not response:
                skip("no instruction or response")
                continue
            buggy = buggy_code(fault)
            in_files = (code_refusal("", path) for path in CONTEXT_PATH.findall(buggy))  # a BugsInPy package's
            if refused(where.dataset, code_refusal(buggy) or next(filter(None, in_files), "")):
                continue
            keep(normalize(buggy) if buggy.strip() else normalize(fault), {
                "fault": fault, "response": response, "metadata": {
                    **base, "round": rnd, "index": idx, "dataset": where.dataset, "validated": True}})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.replace(out)
    stats["records"] = len(records)
    stats["out"] = str(out)
    return stats
