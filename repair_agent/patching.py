"""Candidates become edits in a scratch copy of the user's repository; the user's tree is untouched.

The scratch copy holds the user's tracked and untracked (not ignored) files, committed as one
snapshot, so the diff is against exactly what the user has. Candidates replace whole functions
at the AST level (or apply a unified diff), and the scratch copy is reset between candidates.
"""

from __future__ import annotations

import ast
import difflib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import git

from .errors import BadInput, RepairAgentError
from .localize.frames import is_test_file  # noqa: F401  (the test-tamper guard's rule)

AUTHOR = git.Actor("repair-agent", "repair-agent@users.noreply.github.com")
DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def open_repo(path: Path) -> git.Repo:
    path = Path(path)
    if not path.exists():
        raise BadInput(f"path does not exist: {path}")
    try:
        return git.Repo(path, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise BadInput(f"not a git repository: {path} (run `git init` and commit first)") from None


def make_scratch(repo_path: Path, dest: Path) -> Path:
    """Copy the user's files (tracked + untracked, not ignored) into `dest`, a fresh git repo."""
    repo = open_repo(repo_path)
    root = Path(repo.working_tree_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for rel in repo.git.ls_files("-z", "--cached", "--others", "--exclude-standard").split("\0"):
        src = root / rel
        if rel and src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    scratch = git.Repo.init(dest)
    with scratch.config_writer() as cw:
        cw.set_value("user", "name", AUTHOR.name)
        cw.set_value("user", "email", AUTHOR.email)
        cw.set_value("core", "autocrlf", "false")
    scratch.git.add("-A")
    scratch.git.commit("-q", "--allow-empty", "-m", "snapshot of the user's tree")
    return dest


def reset(scratch: Path) -> None:
    r = git.Repo(scratch)
    r.git.reset("-q", "--hard")
    r.git.clean("-fdxq")


def current_diff(scratch: Path) -> str:
    r = git.Repo(scratch)
    r.git.add("-A")
    diff = r.git.diff("--cached", "--no-color", "--no-ext-diff")
    r.git.reset("-q")
    return diff + "\n" if diff else ""


def overlay_diff(root: Path, overlay: dict[str, str], context: int = 3) -> str:
    """The unified diff of `overlay`'s texts against the tree's files, without git or a write."""
    lines: list[str] = []
    for rel, text in overlay.items():
        try:
            old = (root / rel).read_text(encoding="utf-8")
        except (OSError, ValueError):
            old = ""
        lines += difflib.unified_diff(old.splitlines(), text.splitlines(), f"a/{rel}", f"b/{rel}", n=context,
                                      lineterm="")
    return "\n".join(lines)


def changed_files(patch: str) -> list[str]:
    return sorted({line[6:].strip() for line in patch.splitlines() if line.startswith("+++ b/")} |
                  {line[6:].strip() for line in patch.splitlines() if line.startswith("--- a/")})


@dataclass
class Applied:
    ok: bool
    reason: str = ""
    files: tuple[str, ...] = ()


def apply_diff(scratch: Path, patch: str) -> Applied:
    r = git.Repo(scratch)
    with tempfile.NamedTemporaryFile("w", suffix=".diff", delete=False) as f:
        f.write(patch)
    try:
        r.git.apply("--recount", "--whitespace=nowarn", f.name)
    except git.GitCommandError as exc:
        return Applied(False, f"diff does not apply: {exc.stderr.strip().splitlines()[-1:] or exc}")
    finally:
        Path(f.name).unlink()
    return Applied(True, files=tuple(changed_files(patch)))


def apply_code(scratch: Path, code: str, hint_files: list[str]) -> Applied:
    """Replace the functions/classes that `code` defines in the file that holds most of them."""
    try:
        new = ast.parse(code)
    except SyntaxError as exc:
        return Applied(False, f"syntax error in the candidate: {exc.msg} (line {exc.lineno})")
    names = {n.name for n in new.body if isinstance(n, DEFS) and not n.name.lower().startswith("test")}
    if not names:
        return Applied(False, "the candidate defines no function or class")
    target = _target_file(scratch, names, hint_files)
    if target is None:
        return Applied(False, f"no file in the repository defines {', '.join(sorted(names))}")
    path = scratch / target
    source = path.read_text()
    patched = replace_definitions(source, code)
    if patched == source:
        return Applied(False, "the candidate is identical to the current code")
    path.write_text(patched)
    return Applied(True, files=(target,))


def _target_file(scratch: Path, names: set[str], hint_files: list[str]) -> str | None:
    candidates = list(dict.fromkeys(hint_files)) + sorted(
        str(p.relative_to(scratch)) for p in scratch.rglob("*.py")
        if ".git" not in p.parts and not is_test_file(str(p.relative_to(scratch))))
    best, best_hits = None, 0
    for rel in candidates:
        try:
            tree = ast.parse((scratch / rel).read_text())
        except (OSError, SyntaxError, ValueError):
            continue
        hits = len(names & set(_definitions(tree)))
        if hits > best_hits:
            best, best_hits = rel, hits
    return best


def _definitions(tree: ast.Module) -> dict[str, ast.AST]:
    """Top-level defs, then methods and functions nested in a top-level function, each under its
    own name when no def before it shares it (models write a nested helper out at top level)."""
    found: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, DEFS):
            found[node.name] = node
    for node in tree.body:
        if isinstance(node, DEFS):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found.setdefault(item.name, item)
    return found


def _span(node: ast.AST) -> tuple[int, int]:
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return start - 1, node.end_lineno


def replace_definitions(source: str, code: str) -> str:
    """Swap each definition of `code` into `source`; add new imports and new helper definitions.

    Top-level statements of `code` other than imports and definitions (example calls, pasted
    test lines) are dropped: they are not part of a fix and often crash on import.
    """
    old_tree, new_tree = ast.parse(source), ast.parse(code)
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    new_lines = code.splitlines(keepends=True)
    existing = _definitions(old_tree)
    edits: list[tuple[int, int, list[str]]] = []
    appended: list[str] = []
    for node in new_tree.body:
        if not isinstance(node, DEFS) or (node.name.lower().startswith("test") and node.name not in existing):
            continue  # statements and pasted tests are not part of a fix
        a, b = _span(node)
        text = [ln if ln.endswith("\n") else ln + "\n" for ln in new_lines[a:b]]
        old = existing.get(node.name)
        if old is None:
            appended += ["\n", "\n", *text]
            continue
        oa, ob = _span(old)
        indent = lines[old.lineno - 1][: len(lines[old.lineno - 1]) - len(lines[old.lineno - 1].lstrip())]
        edits.append((oa, ob, [indent + ln if ln.strip() else ln for ln in text]))
    spans = {(oa, ob): text for oa, ob, text in edits}  # a def written twice: the last one counts
    # a nested def inside an outer def that is also replaced: the outer one is the whole answer
    edits = [(a, b, t) for (a, b), t in spans.items()
             if not any(oa <= a and b <= ob and (oa, ob) != (a, b) for oa, ob in spans)]
    for oa, ob, text in sorted(edits, reverse=True):
        lines[oa:ob] = text
    imports = _new_imports(old_tree, new_tree, new_lines)
    if imports:
        at = max((_span(n)[1] for n in old_tree.body if isinstance(n, (ast.Import, ast.ImportFrom))),
                 default=_docstring_end(old_tree))
        shift = sum(len(t) - (ob - oa) for oa, ob, t in edits if oa < at)
        lines[at + shift:at + shift] = imports
    return "".join(lines + appended)


def _docstring_end(tree: ast.Module) -> int:
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
            and isinstance(first.value.value, str):
        return first.end_lineno
    return 0


def _new_imports(old_tree: ast.Module, new_tree: ast.Module, new_lines: list[str]) -> list[str]:
    have = {ast.dump(n) for n in old_tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
    out = []
    for n in new_tree.body:
        if isinstance(n, (ast.Import, ast.ImportFrom)) and ast.dump(n) not in have:
            out += [ln if ln.endswith("\n") else ln + "\n" for ln in new_lines[n.lineno - 1:n.end_lineno]]
    return out


def apply_to_tree(repo_path: Path, patch: str) -> None:
    """`--apply`: write the fix into the user's working tree."""
    applied = apply_diff(Path(open_repo(repo_path).working_tree_dir), patch)
    if not applied.ok:
        raise RepairAgentError(f"could not apply the fix to {repo_path}: {applied.reason}")


def commit_on_branch(repo_path: Path, patch: str, branch: str, message: str) -> str:
    """`--branch NAME`: one new commit on a new branch from HEAD; the checkout is left alone."""
    repo = open_repo(repo_path)
    if branch in repo.heads:
        raise BadInput(f"branch {branch!r} already exists")
    tmp = Path(tempfile.mkdtemp(prefix="repair-agent-branch-"))
    wt = tmp / "wt"
    repo.git.worktree("add", "-q", "-b", branch, str(wt), "HEAD")
    try:
        applied = apply_diff(wt, patch)
        if not applied.ok:
            raise BadInput(f"the fix does not apply to HEAD: {applied.reason}")
        wrepo = git.Repo(wt)
        wrepo.git.add("-A")
        wrepo.index.commit(message, author=AUTHOR, committer=AUTHOR)
        return wrepo.head.commit.hexsha
    except BaseException:
        repo.git.worktree("remove", "--force", str(wt))
        repo.git.branch("-D", branch)
        raise
    finally:
        if wt.exists():
            repo.git.worktree("remove", "--force", str(wt))
        repo.git.worktree("prune")
        shutil.rmtree(tmp, ignore_errors=True)
