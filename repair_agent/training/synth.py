"""Synthetic bugs, PyX-R style: mutate a passing repository's functions and keep what tests catch.

`mutants()` makes small AST-guided edits inside non-test functions: an operator swap, an
off-by-one, a flipped comparison, a wrong variable, a dropped statement, a wrong constant. Each
edit is made on the source text at the node's own offsets, so the rest of the function keeps its
formatting and comments and the buggy code reads like code a person wrote; a mutant is applied by
replacing just that function's lines.

`synth()` checks that the repository's tests pass, commits each mutant into its own git copy
(`OUT/mutants/<id>/repo`), runs the tests in the sandbox and keeps the mutants that make at least
one test fail (`OUT/mutants.jsonl`); the others are dropped with the reason (`OUT/discarded.jsonl`).
Each kept mutant is a training record as the agent's infill prompt would ask for it (`shapes`):
the mutated line masked, the original line the answer (`OUT/infill.jsonl`). A repository holding
benchmark code (QuixBugs, HumanEval, BugsInPy's projects: `benchmarks.py`) is refused. With an
agent, each kept mutant is then repaired by `run_fix` (`OUT/runs/RUN_ID`) and the validated
repairs are exported as SFT records (`OUT/traces.jsonl`).
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
import shutil
import subprocess
import textwrap
from dataclasses import asdict, dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import Callable, Iterator

from .. import patching
from ..errors import BadInput, SandboxError
from ..llm.factory import DEFAULT_MODEL
from ..llm.profiles import profile_for
from ..outcomes import counts, failing_ids, failure_lines, ran
from ..sandbox import open_sandbox
from ..syntax import SLIP, SYMBOL, Source, block_of, first_line, parameters, top_level
from .benchmarks import repo_refusal
from .shapes import infill_record

KINDS = ("operator", "off_by_one", "comparison", "wrong_variable", "dropped_statement", "wrong_constant")

SKIP_DIRS = {".git", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache", ".pytest_cache", "node_modules",
             "build", "dist", ".eggs"}


@dataclass
class Mutant:
    id: str
    file: str  # relative to the repository root
    function: str  # qualified name, e.g. "Stack.push"
    kind: str  # one of KINDS
    description: str
    start: int  # the function's first line (decorators included), 1-based
    end: int  # its last line
    original: str  # the function's lines before
    source: str  # the function's lines after (replaces lines start..end)

    def apply(self, root: Path) -> None:
        """Replace the function's lines in `root/file` with the mutated ones."""
        path = Path(root) / self.file
        path.write_text(self.applied_to(path.read_text(encoding="utf-8")), encoding="utf-8")

    def applied_to(self, text: str) -> str:
        """The file's text `text` with the function's lines replaced by the mutated ones."""
        lines = text.splitlines(keepends=True)
        if "".join(lines[self.start - 1:self.end]) != self.original:
            raise ValueError(f"{self.file}:{self.start}-{self.end} is not {self.function} as mutated")
        lines[self.start - 1:self.end] = [self.source]
        return "".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# edits at node offsets
# --------------------------------------------------------------------------------------------

def _slip(text: Source, line: int, kind: str, left: ast.AST, right: ast.AST, op: ast.AST, suffix: str = ""):
    """The operator between two operands made its likeliest slip (`suffix`: "=" for `+=`)."""
    old, new = SYMBOL[type(op)] + suffix, SYMBOL[SLIP[type(op)]] + suffix
    a, b = text.between(left, right)
    gap = text.raw[a:b].decode()
    pos = gap.split("#")[0].find(old)
    if pos >= 0:
        yield kind, f"line {line}: `{old}` became `{new}`", text.splice(a, b, gap[:pos] + new + gap[pos + len(old):])


def _is_docstring(node: ast.AST, fn: ast.AST) -> bool:
    return bool(fn.body) and isinstance(fn.body[0], ast.Expr) and fn.body[0].value is node


def _locals(fn: ast.FunctionDef) -> list[str]:
    names = parameters(fn)
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.append(node.id)
    return [n for n in dict.fromkeys(names) if n not in ("self", "cls", "_")]


def _nested(fn: ast.AST) -> Iterator[ast.AST]:
    """The nodes of `fn`'s body, nested functions and classes left out (they get their own turn)."""
    stack = list(fn.body)
    while stack:
        node = stack.pop(0)
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                stack.append(child)


def _edits(fn: ast.FunctionDef, text: Source) -> Iterator[tuple[str, str, str]]:
    """(kind, description, new function text) for each mutation site in `fn`."""
    local = _locals(fn)
    roots: set[int] = set()  # an index, a slice bound, a range() argument
    in_index: set[int] = set()  # and everything inside one
    for node in _nested(fn):
        parts: list = []
        if isinstance(node, ast.Subscript):
            sl = node.slice
            parts = [sl.lower, sl.upper] if isinstance(sl, ast.Slice) else [sl]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
            parts = list(node.args)
        for part in parts:
            if part is not None and not isinstance(part, ast.Tuple):
                roots.add(id(part))
                in_index.update(id(n) for n in ast.walk(part))
    for node in _nested(fn):
        line = getattr(node, "lineno", fn.lineno)
        # operator swap
        if isinstance(node, ast.BinOp) and type(node.op) in SLIP:
            yield from _slip(text, line, "operator", node.left, node.right, node.op)
        elif isinstance(node, ast.AugAssign) and type(node.op) in SLIP:
            yield from _slip(text, line, "operator", node.target, node.value, node.op, "=")
        elif isinstance(node, ast.BoolOp) and len(node.values) == 2:
            yield from _slip(text, line, "operator", *node.values, node.op)
        # comparison flip
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            yield from _slip(text, line, "comparison", node.left, node.comparators[0], node.ops[0])
        # off-by-one in an index, a slice bound or a range() argument
        int_const = isinstance(node, ast.Constant) and type(node.value) is int
        if id(node) in in_index and (int_const or id(node) in roots and (
                isinstance(node, (ast.Name, ast.Call, ast.Attribute, ast.Subscript))
                or isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)))):
            seg = text.get(node)
            if int_const:
                for delta in (1, -1):
                    v = node.value + delta
                    if v >= 0 or node.value < 0:
                        yield "off_by_one", f"line {line}: `{seg}` became `{v}`", \
                            text.replace(node, str(v))
            elif not (isinstance(node, ast.BinOp) and isinstance(node.right, ast.Constant)):
                wrap = seg  # a name, a call or a sum: `x + 1` needs no parentheses
                for sign in ("+", "-"):
                    new = f"{wrap} {sign} 1"
                    yield "off_by_one", f"line {line}: `{seg}` became `{new}`", \
                        text.replace(node, new)
        # wrong constant (outside indices: those are off-by-ones)
        elif isinstance(node, ast.Constant) and not _is_docstring(node, fn) \
                and not (int_const and id(node) in in_index):
            v = node.value
            if isinstance(v, bool):
                new = repr(not v)
            elif isinstance(v, int):
                new = str({0: 1, 1: 0}.get(v, v + 1))
            elif isinstance(v, float):
                new = repr(v + 1.0) if v not in (0.0, 1.0) else repr(1.0 - v)
            elif v is None:
                continue
            else:
                continue
            seg = text.get(node)
            if seg.startswith("-") or not seg:
                continue
            yield "wrong_constant", f"line {line}: `{seg}` became `{new}`", \
                text.replace(node, new)
        # wrong variable: a local read swapped for another local
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in local:
            for other in local:
                if other != node.id:
                    yield "wrong_variable", f"line {line}: `{node.id}` became `{other}`", \
                        text.replace(node, other)
        # dropped statement: one that has its lines to itself, in a body with something left
        if isinstance(node, ast.stmt) and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = block_of(fn, node)
            if body is not None and len([s for s in body if not _is_doc_stmt(s, fn)]) > 1 \
                    and not _is_doc_stmt(node, fn) and _alone(text, node):
                yield "dropped_statement", f"line {line}: dropped `{text.line(node.lineno).strip()}`", \
                    text.drop_lines(node.lineno, node.end_lineno)


def _is_doc_stmt(s: ast.stmt, fn: ast.AST) -> bool:
    return isinstance(s, ast.Expr) and _is_docstring(s.value, fn)


def _alone(text: Source, stmt: ast.stmt) -> bool:
    """Nothing before the statement on its first line, nothing but a comment after it on its last."""
    a, b = text.span(stmt)
    before = text.raw[text.offset(stmt.lineno, 0):a].decode()
    after = text.raw[b:text.offset(stmt.end_lineno + 1, 0)].decode()
    return not before.strip() and not after.split("#")[0].strip()


# --------------------------------------------------------------------------------------------
# mutants
# --------------------------------------------------------------------------------------------

def source_files(repo: Path, paths: list[str] | None = None) -> list[str]:
    """The repository's non-test Python files, relative, sorted; with `paths` (files or folders,
    relative) only those under one of them (an sdist ships docs/conf.py and noxfile.py too)."""
    repo = Path(repo)
    under = [Path(p).as_posix().strip("/") for p in paths or []]
    out = []
    for p in sorted(repo.rglob("*.py")):
        rel = p.relative_to(repo)
        if under and not any(rel.as_posix() == u or rel.as_posix().startswith(u + "/") for u in under):
            continue
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        if patching.is_test_file(rel.as_posix()) or rel.name in ("setup.py", "conftest.py"):
            continue
        out.append(rel.as_posix())
    return out


def functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef]]:
    """Top-level functions and the methods of top-level classes, not tests."""
    for name, fn, cls in top_level(tree):
        if not fn.name.startswith("test") and not (cls and cls.name.startswith("Test")):
            yield name, fn


def all_mutants(repo: Path, paths: list[str] | None = None) -> list[Mutant]:
    """Every mutant of every non-test function (of the files under `paths`), in file and line order."""
    repo = Path(repo)
    out: list[Mutant] = []
    for rel in source_files(repo, paths):
        try:
            source = (repo / rel).read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
            continue
        lines = source.splitlines(keepends=True)
        for qualname, fn in functions(tree):
            start = first_line(fn)
            original = "".join(lines[start - 1:fn.end_lineno])
            if not original.endswith("\n"):
                original += "\n"
            try:
                before = ast.dump(_parse_fn(original))
            except SyntaxError:
                continue
            seen: set[str] = set()
            for kind, desc, new in _edits(fn, Source(original, start)):
                if not new.endswith("\n"):
                    new += "\n"
                try:
                    after = ast.dump(_parse_fn(new))
                except SyntaxError:
                    continue
                if after == before or new in seen:
                    continue  # no change to the program (or a mutant already made)
                seen.add(new)
                digest = hashlib.sha1(f"{rel}\0{qualname}\0{new}".encode()).hexdigest()[:8]
                out.append(Mutant(id=f"{Path(rel).stem}-{qualname.replace('.', '-')}-{kind}-{digest}", file=rel,
                                  function=qualname, kind=kind, description=f"{qualname}: {desc}", start=start,
                                  end=fn.end_lineno, original=original, source=new))
    return out


def _parse_fn(text: str) -> ast.Module:
    return ast.parse(textwrap.dedent(text))


def mutants(repo: Path, max_mutants: int = 20, seed: int | None = 0, paths: list[str] | None = None) -> list[Mutant]:
    """Up to `max_mutants` mutants, spread over functions and kinds (round robin over the
    (function, kind) pairs in a seeded random order), each one edit in one function."""
    pool = all_mutants(repo, paths)
    rng = random.Random(seed)
    buckets: dict[tuple[str, str, str], list[Mutant]] = {}
    for m in pool:
        buckets.setdefault((m.file, m.function, m.kind), []).append(m)
    keys = list(buckets)
    rng.shuffle(keys)
    for k in keys:
        rng.shuffle(buckets[k])
    # interleave so that every function comes round before any function's second kind
    by_fn: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for k in keys:
        by_fn.setdefault(k[:2], []).append(k)
    order: list[tuple[str, str, str]] = []
    lists = list(by_fn.values())
    while any(lists):
        for lst in lists:
            if lst:
                order.append(lst.pop(0))
    picked: list[Mutant] = []
    while len(picked) < max_mutants and any(buckets[k] for k in order):
        for k in order:
            if buckets[k] and len(picked) < max_mutants:
                picked.append(buckets[k].pop(0))
    return picked


# --------------------------------------------------------------------------------------------
# synth
# --------------------------------------------------------------------------------------------

def _git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "repair-agent synth", "GIT_AUTHOR_EMAIL": "synth@repair-agent.invalid",
           "GIT_COMMITTER_NAME": "repair-agent synth", "GIT_COMMITTER_EMAIL": "synth@repair-agent.invalid",
           "GIT_AUTHOR_DATE": "2000-01-01T00:00:00+0000", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00+0000",
           "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def _snapshot(repo: Path, dest: Path) -> Path:
    """A fresh git repository at `dest` holding the repository's files in one commit."""
    if (repo / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=repo, capture_output=True, text=True, check=True).stdout
        files = [f for f in listed.split("\0") if f]
    else:
        files = [p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()
                 and not any(part in SKIP_DIRS for part in p.relative_to(repo).parts)]
    dest.mkdir(parents=True)
    for rel in files:
        src = repo / rel
        if src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    if not (dest / ".gitignore").exists():
        (dest / ".gitignore").write_text("__pycache__/\n*.pyc\n.pytest_cache/\n")
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "snapshot")
    return dest


def _run_tests(kind: str, workdir: Path, test_args: list[str], image: str | None, timeout: float,
               per_test_timeout: int, log) -> dict:
    # one run per sandbox: the warm worker saves nothing here, and a plain pytest process keeps the
    # label ("the tests catch it") free of the worker's preloading (before 1eba575 it hid src-layout mutants)
    box = open_sandbox(kind, workdir, image=image, log=log, use_worker=False)
    try:
        return box.run_tests(test_args, timeout=timeout, per_test_timeout=per_test_timeout)
    finally:
        box.close()


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


def synth(repo: Path, out_dir: Path, max_mutants: int = 20, sandbox_kind: str = "docker",
          run_agent: Callable[[Path, Path], dict] | bool | None = None, seed: int | None = 0,
          test_args: list[str] | None = None, image: str | None = None, timeout: float = 300,
          per_test_timeout: int = 10, settings=None, profile: str | None = None,
          paths: list[str] | None = None, log: Callable[[str], None] = print) -> dict:
    """Make mutants of `repo`, keep those its tests catch, optionally let the agent repair them.

    `run_agent`: a callable `(mutant_repo, runs_root) -> result dict`, or True for `run_fix` with
    `settings` (default `Settings.load(repo)` with this sandbox). `profile`: the model profile whose
    infill prompt the records take (default: the embedded model's). `paths`: mutate only the files
    under these (relative files or folders; the tests still run whole). Returns a summary dict; files:
    OUT/mutants.jsonl (kept), OUT/discarded.jsonl (with reasons), OUT/infill.jsonl (a record per
    kept mutant with an infill shape), OUT/mutants/<id>/repo (a git repository with the mutant
    committed), OUT/runs/ and OUT/traces.jsonl when the agent ran.
    """
    repo = Path(repo).resolve()
    out_dir = Path(out_dir).resolve()
    if not repo.is_dir():
        raise BadInput(f"path does not exist: {repo}")
    refusal = repo_refusal(repo, source_files(repo))
    if refusal:
        raise BadInput(f"{repo} holds benchmark code ({refusal}): QuixBugs, HumanEval(Fix) and BugsInPy "
                       f"code never becomes training data")
    args = list(test_args or [])
    said: set[str] = set()

    def box_log(msg: str) -> None:  # a sandbox's notices (the local sandbox's warning) once, not per mutant
        if msg not in said:
            said.add(msg)
            log(msg)

    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / "base"
    shutil.rmtree(base, ignore_errors=True)
    _snapshot(repo, base)
    log(f"checking that the tests of {repo} pass")
    before = _run_tests(sandbox_kind, base, args, image, timeout, per_test_timeout, box_log)
    if before["timed_out"]:
        raise BadInput(f"the tests of {repo} timed out before any mutation")
    if ran(before) == 0:
        raise BadInput(f"no tests ran in {repo}: synthetic bugs need a passing test suite")
    if failing_ids(before):
        bad = failing_ids(before)
        raise BadInput(f"the tests of {repo} must pass before mutating; {len(bad)} fail: {', '.join(bad[:3])}")
    made = mutants(base, max_mutants=max_mutants, seed=seed, paths=paths)
    if not made:
        where = f" under {', '.join(paths)}" if paths else ""
        raise BadInput(f"no mutable functions found in {repo}{where} (non-test .py files)")
    log(f"{ran(before)} tests pass; trying {len(made)} mutants")
    kept: list[dict] = []
    discarded: list[dict] = []
    for i, m in enumerate(made, 1):
        home = out_dir / "mutants" / m.id
        shutil.rmtree(home, ignore_errors=True)
        dest = home / "repo"
        shutil.copytree(base, dest)
        m.apply(dest)
        _git(dest, "add", "-A")
        _git(dest, "commit", "-q", "-m", "change")  # neutral: the agent is not told the bug
        patch = _git(dest, "diff", "HEAD~1", "HEAD")
        row = {**m.to_dict(), "repo": str(dest), "commit": _git(dest, "rev-parse", "HEAD").strip(),
               "patch": patch}
        try:
            run = _run_tests(sandbox_kind, dest, args, image, timeout, per_test_timeout, box_log)
        except SandboxError as exc:
            discarded.append({**row, "reason": f"sandbox error: {exc}"})
            shutil.rmtree(home, ignore_errors=True)
            continue
        failing = failing_ids(run)
        row["tests"] = counts(run)
        row["failing"] = failing
        row["failure"] = failure_lines(run)  # as the search tells the model
        if failing:
            kept.append(row)
            log(f"[{i}/{len(made)}] {m.id}: kept ({len(failing)} failing)")
        else:
            why = ("the test run timed out with no test failing" if run["timed_out"]
                   else f"all {ran(run)} tests pass (an equivalent or untested mutant)")
            discarded.append({**row, "reason": why})
            shutil.rmtree(home, ignore_errors=True)
            log(f"[{i}/{len(made)}] {m.id}: discarded ({why})")
    _write_jsonl(out_dir / "mutants.jsonl", kept)
    _write_jsonl(out_dir / "discarded.jsonl", discarded)
    records = infill_records(kept, base, profile_for(getattr(settings, "model", None) or DEFAULT_MODEL,
                                                     profile or getattr(settings, "profile", None)))
    _write_jsonl(out_dir / "infill.jsonl", records)
    summary = {"repo": str(repo), "licence": licence_of(repo), "out": str(out_dir), "tests": ran(before),
               "tried": len(made),
               "kept": len(kept), "discarded": len(discarded), "infill_records": len(records),
               "kinds": {k: sum(r["kind"] == k for r in kept) for k in KINDS}}
    if run_agent:
        summary["agent"] = _repair_all(kept, out_dir, run_agent, sandbox_kind, settings, repo, log)
    shutil.rmtree(base, ignore_errors=True)
    (out_dir / "synth.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def licence_of(repo: Path) -> str:
    """The repository's licence as it states it (package metadata, else a licence file's first
    line), with where it was read; "unknown" when it states none. For the data card."""
    try:  # an sdist's core metadata: mail-style headers, as the email package reads them
        text = (repo / "PKG-INFO").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    info = HeaderParser().parsestr(text)
    field = " ".join((info.get("License") or "").split())
    classifiers = [re.sub(r"^License :: (OSI Approved :: )?", "", c) for c in info.get_all("Classifier", [])
                   if c.startswith("License ::")]
    # the SPDX expression, a one-word License field ("MIT"), the classifier, else the field's text
    for found in (info.get("License-Expression"), field if " " not in field else "", *classifiers, field):
        if found and found.strip() not in ("UNKNOWN", "OSI Approved"):
            return f"{found.strip()[:80]} (PKG-INFO)"
    for meta, pattern in (("pyproject.toml", r"^\s*license\s*=\s*(?:\{\s*text\s*=\s*)?[\"']([^\"']+)"),
                          ("setup.cfg", r"^\s*license\s*=\s*(.+)$"), ("setup.py", r"\blicense\s*=\s*[\"']([^\"']+)")):
        try:
            found = re.search(pattern, (repo / meta).read_text(encoding="utf-8", errors="replace"), re.M)
        except OSError:
            continue
        if found and found.group(1).strip():
            return f"{found.group(1).strip()} ({meta})"
    for path in sorted(repo.glob("LICEN[CS]E*")) + sorted(repo.glob("COPYING*")):
        first = next((ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()
                      if ln.strip()), "")
        if first:
            return f"{first[:80]} ({path.name})"
    return "unknown"


def infill_records(kept: list[dict], base: Path, profile) -> list[dict]:
    """A record per kept mutant whose fix is a masked line, as the agent's infill prompt asks for
    it: the mutant's file with the hole, the original line(s) the answer; duplicates dropped."""
    out, seen = [], set()
    for row in kept:
        fixed = (base / row["file"]).read_text(encoding="utf-8")
        mutant = Mutant(**{k: row[k] for k in Mutant.__dataclass_fields__})
        shaped = infill_record(mutant.applied_to(fixed), fixed, profile, failure=row.get("failure", ""))
        if shaped is None or (key := json.dumps([shaped["prompt"], shaped["completion"]])) in seen:
            continue
        seen.add(key)
        out.append({"prompt": shaped["prompt"], "completion": shaped["completion"], "metadata": {
            "kind": "infill", "source": "synth", "dataset": "synth", "task": row["id"], "mutation": row["kind"],
            "profile": profile.name, "file": row["file"], "line": shaped["line"], "mask": shaped["mask"],
            "validated": True}})
    return out


def _repair_all(kept: list[dict], out_dir: Path, run_agent, sandbox_kind: str, settings, repo: Path, log) -> dict:
    from ..errors import RepairAgentError
    from .export import export

    if run_agent is True:
        from ..config import Settings
        from ..fix import run_fix

        settings = settings or Settings.load(repo, warn=log, sandbox=sandbox_kind)  # the repo: untrusted

        def run_agent(mutant_repo: Path, runs_root: Path) -> dict:
            return run_fix(mutant_repo, settings, runs_root=runs_root, log=lambda m: None)

    runs_root = out_dir / "runs"
    fixed = 0
    for row in kept:
        try:
            result = run_agent(Path(row["repo"]), runs_root)
        except RepairAgentError as exc:
            result = {"status": "error", "error": str(exc), "run_id": ""}
        row["run_id"] = result.get("run_id", "")
        row["agent_status"] = result.get("status", "")
        fixed += result.get("status") == "fixed"
        log(f"{row['id']}: agent {row['agent_status']}")
        _write_jsonl(out_dir / "mutants.jsonl", kept)  # as it goes: a crash keeps what ran
    stats = export([runs_root], out_dir / "traces.jsonl") if runs_root.exists() else {}
    return {"runs": len(kept), "fixed": fixed, "traces": stats.get("records", 0),
            "traces_file": str(out_dir / "traces.jsonl") if stats else ""}
