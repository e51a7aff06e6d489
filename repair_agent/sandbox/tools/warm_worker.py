"""The warm test worker: lives in the sandbox container for a task and runs each candidate's tests
in a forked child, so that Python, pytest, its plugins and the third-party imports are paid once.

Runs inside the container with the sandbox venv's python (stdlib + pytest only). It reads one JSON
request per line on stdin,
    {"id": ..., "args": [pytest args], "junit": path, "overlay": {relpath: text}, "timeout": s}
(`args` is the whole pytest command line, built by the host as for the exec path), and answers
each with one JSON line on stdout,
    {"id", "rc", "timed_out", "oom_killed", "seconds", "cpu_s", "zygote", "output": str, "junit": base64 | null}
or {"id", "error": why} when the workspace could not be made. Its first line is
{"ready": true, "preloaded": [...], "seconds": s}.

Per request: /workspace is brought to /src (the scratch tree as it is now, so the host never has to
say when it changed) with the overlay written over it, rewriting only the files that differ from
what the worker wrote there or that the last candidate changed (see Workspace; version control and
caches left out, on the exec path too); /tmp is emptied; a child in its own process group runs
pytest there, its stdout and stderr going into a pipe of which the parent keeps the last 64 KiB.
The child is forked from a zygote, a child of the worker that has read pytest's configuration for
the request's pytest arguments, imported the tree's modules that the selected test files import
(see Preloaded: a candidate that changes only function bodies gets its code swapped into the
imported functions, any other change imports the tree anew) and started the session (see
Zygote), or, the first time a zygote refuses or with `--no-zygotes`, from the worker itself,
which then runs pytest.main(). The worker itself never imports the tree's own modules.
At the deadline it kills the child's process group; after every child it kills what it left behind
(forks that left the group, daemons), as the exec path's shell wrapper does. The parent is not dumpable, so the child cannot reopen its pipes through /proc.

`warm_worker.py --local SRC PRIVATE` is the local sandbox's worker, on the host: the tree is SRC,
the workspace and the emptied temporary folder are PRIVATE/workspace and PRIVATE/tmp, never the
host's /tmp (it refuses a PRIVATE without the local sandbox's marker file), only the child's process
group is killed (every other process on the host is not the worker's to kill), and the memory
limit is the host's rlimit, so no out-of-memory count is read.
"""

from __future__ import annotations

import __future__
import ast
import base64
import dis
import errno
import fcntl
import functools
import gc
import hashlib
import importlib
import importlib.util
import inspect
import json
import linecache
import operator
import os
import pathlib
import re
import select
import shutil
import signal
import stat
import sys
import threading
import time
import traceback
import types
import warnings

SRC, WORKSPACE, TMP = "/src", "/workspace", "/tmp"  # in the container; --local sets its own
LOCAL = False
MARKER = ".repair-agent-private"  # what the local sandbox writes into its private folder
OUTPUT_LIMIT = 64 * 1024
OOM_FILES = ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events")
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", "build", "dist"}
# what the candidate's workspace leaves out, on both paths: version control and tools' caches
# (bytecode in __pycache__ is never used there: the copies are newer than it, and no bytecode is written)
WORKSPACE_SKIP = {".git", ".hg", ".svn", "__pycache__", ".tox", ".nox", ".mypy_cache", ".pytest_cache"}
IMPORT = re.compile(r"^[ \t]*(?:from|import)[ \t]+([A-Za-z_]\w*)", re.M)
NEVER = {"this", "antigravity", "__main__"}  # stdlib modules whose import prints or opens things
SCAN_FILES = 5000  # a bound on the start-up scan of a huge tree
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux's number: Python names it from 3.10 on (bullseye: 3.9)
# files that change how pytest starts (the host sends a candidate that changes one the exec way)
STARTUP_FILES = {"conftest.py", "pytest.ini", "setup.cfg", "pyproject.toml", "tox.ini", "setup.py"}


def tree_names(root: str) -> tuple[set[str], set[str]]:
    """(the names the tree defines anywhere: its modules and folders; the top-level names it imports)."""
    own, imported, seen = set(), set(), 0
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
        own.update(dirs)
        for f in files:
            if f.endswith(".py"):
                own.add(f[:-3])
                if seen < SCAN_FILES and f != "setup.py":  # setup.py's imports are for packaging
                    seen += 1
                    with open(os.path.join(dirpath, f), errors="replace") as fh:
                        imported.update(IMPORT.findall(fh.read(1 << 20)))
    return own, imported


def top_names(root: str) -> set[str]:
    """The modules the tree puts on the path (its root and src/, as PYTHONPATH does)."""
    names = set()
    for folder in (root, os.path.join(root, "src")):
        for n in os.listdir(folder) if os.path.isdir(folder) else []:
            if n.endswith(".py") or os.path.isfile(os.path.join(folder, n, "__init__.py")):
                names.add(n[:-3] if n.endswith(".py") else n)
    return names


def preload(own: set[str], imported: set[str]) -> tuple[list[str], set[str], set[str]]:
    """Import pytest and the tree's third-party imports; never the tree's own code. Returns the names
    imported, every module that their import loaded, and the plugins' modules (which the warm-up
    imports, through pytest's assertion rewriter as a child's pytest would: then no child has to
    import them again)."""
    import pytest  # noqa: F401
    from _pytest.config import default_plugins
    from importlib.metadata import entry_points

    for name in default_plugins:
        importlib.import_module(f"_pytest.{name}")
    plugins = []
    found = entry_points()
    # Python 3.10+ selects by group; 3.8 and 3.9 (bullseye's base image) give a dict of groups
    for ep in found.select(group="pytest11") if hasattr(found, "select") else found.get("pytest11", []):
        plugins.append(ep.module)  # pytest-timeout and the like
    before, done = set(sys.modules), []
    for name in sorted(imported - own - NEVER - before):
        try:
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
                done.append(name)
        except BaseException:  # a broken or hostile import: the child imports it again, or fails there
            pass
    return done, set(sys.modules) - before, plugins


WARM_TEST = """\
import pytest


def helper(n):
    return helper(n + 1) if n < 30 else n


@pytest.fixture
def value():
    return 1


@pytest.mark.parametrize("x", [1, 2])
def test_passes_or_fails(x, value):
    assert helper(0) + x == 31 + value


def test_skipped():
    pytest.skip("warm-up")
"""


KEEP_FRAMES = 30


def short_recursion():
    """A pytest plugin: a RecursionError's traceback keeps its first KEEP_FRAMES frames from the test
    function on, and its last KEEP_FRAMES. pytest's report walks all thousand (half the time of a
    candidate whose tests recurse without end) to show those up to where the recursion repeats, or
    else the first and last ten."""
    import pytest
    from _pytest._code import Traceback

    class ShortRecursion:
        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_makereport(self, item, call):
            exc = call.excinfo
            if exc is None or not isinstance(exc.value, RecursionError):
                return
            frames, tb = [], exc.tb
            while tb is not None:
                frames.append(tb)
                tb = tb.tb_next
            test = getattr(getattr(item, "obj", None), "__code__", None)  # pytest's own frames come first
            first = next((i for i, tb in enumerate(frames) if tb.tb_frame.f_code is test), 0)
            if len(frames) - first > 2 * KEEP_FRAMES:
                frames[first + KEEP_FRAMES - 1].tb_next = frames[-KEEP_FRAMES]
                exc.traceback = Traceback(exc.tb)

    return ShortRecursion()


def warm_up(startup: list[str]) -> None:
    """One pytest run in the worker itself, on a made-up test (no code of the tree): the imports
    that pytest defers to a session and its caches are then paid once, not in every child."""
    folder = os.path.join(TMP, "repair-agent-warm-up")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "test_warm_up.py"), "w") as f:
        f.write(WARM_TEST)
    with open(os.path.join(folder, "pytest.ini"), "w") as f:  # no ini file or conftest from above it
        f.write("[pytest]\n")
    saved_path, saved_cwd, saved_fds = list(sys.path), os.getcwd(), (os.dup(1), os.dup(2))
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.chdir(folder)
        import pytest

        pytest.main([*startup, "-p", "no:cacheprovider", "-o", "junit_family=xunit1", f"--junitxml={folder}/junit.xml",
                     "--timeout=60", "-q", "-rN", "test_warm_up.py"], plugins=[short_recursion()])
    finally:
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for fd in (null, *saved_fds):
            os.close(fd)
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        sys.modules.pop("test_warm_up", None)
        clear(TMP)


def clear(folder: str) -> None:
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


class Workspace:
    """WORKSPACE kept equal to SRC (less WORKSPACE_SKIP) with the request's overlay over it, rewriting
    only what differs: a full copy of a big tree costs more than a candidate's tests (youtube-dl's 900
    files, about 35 ms). The worker records each file it wrote: what it wrote (SRC's file by its stat,
    or the overlay's text) and the copy's stat (inode, size, times, mode). A file whose copy's stat
    changed was written by the code under test (any write, chmod or utime changes its ctime, also
    through a shared mmap), and one whose source changed is stale: both are written anew; what the
    worker did not write goes. The exec path copies the same files (docker.py's WRAPPER)."""

    def __init__(self):
        self.made: dict[str, tuple] = {}  # relative path -> (what was written, the copy's stat)
        self.py_files: frozenset[str] = frozenset()  # the tree's Python files, at the last sync

    def sync(self, overlay: dict[str, str]) -> str:
        """Returns a fingerprint of what pytest's start-up reads: the start-up files' text, every
        other non-Python file's size and time. The scratch tree changes between requests (a patch
        applied, then reset), and a zygote serves only its own."""
        want, dirs, seen = {}, {""}, []
        for rel, name, st in walk(SRC):
            if stat.S_ISDIR(st.st_mode):
                dirs.add(rel)
                continue
            if name in STARTUP_FILES:
                with open(os.path.join(SRC, rel), "rb") as f:
                    seen.append(f"{rel}\0{hashlib.sha256(f.read()).hexdigest()}")
            elif not name.endswith(".py"):
                seen.append(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}")
            if stat.S_ISLNK(st.st_mode):
                want[rel] = ("link", os.readlink(os.path.join(SRC, rel)))
            elif stat.S_ISREG(st.st_mode):
                want[rel] = ("src", st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
        for rel, text in overlay.items():
            path = os.path.normpath(os.path.join(WORKSPACE, rel))
            if not path.startswith(WORKSPACE + "/"):
                raise OSError(f"overlay path {rel!r} leaves the workspace")
            rel = os.path.relpath(path, WORKSPACE)
            want[rel] = ("overlay", text)
            parent = os.path.dirname(rel)
            while parent not in dirs:
                dirs.add(parent)
                parent = os.path.dirname(parent)
        self.py_files = frozenset(rel for rel in want if rel.endswith(".py"))
        kept = {}
        for sub, _, st in walk(WORKSPACE, into=dirs):  # what is there now: kept where it is what the worker wrote
            if stat.S_ISDIR(st.st_mode) and sub in dirs:
                kept[sub] = None
            elif stat.S_ISDIR(st.st_mode):
                shutil.rmtree(os.path.join(WORKSPACE, sub))
            elif sub in want and self.made.get(sub) == (want[sub], signature(st)):
                kept[sub] = self.made[sub]
            else:
                os.unlink(os.path.join(WORKSPACE, sub))
        self.made = {}
        for rel in sorted(dirs - {""} - kept.keys()):
            os.makedirs(os.path.join(WORKSPACE, rel), exist_ok=True)
        for rel, what in want.items():
            self.made[rel] = kept.get(rel) or (what, write(rel, what))
        return hashlib.sha256("\n".join(seen).encode()).hexdigest()

    def reset(self) -> None:
        """Forget what was written: the next sync empties the workspace and writes it all."""
        self.made.clear()
        clear(WORKSPACE)


def walk(root: str, into: "set[str] | None" = None):
    """(relative path, name, lstat) of what is under root: all of it but WORKSPACE_SKIP, or only in
    the folders `into` names."""
    todo = [""]
    while todo:
        rel = todo.pop()
        prefix = rel + "/" if rel else ""
        with os.scandir(os.path.join(root, rel)) as entries:
            for entry in entries:
                if into is None and entry.name in WORKSPACE_SKIP:
                    continue
                sub = prefix + entry.name
                st = entry.stat(follow_symlinks=False)
                yield sub, entry.name, st
                if stat.S_ISDIR(st.st_mode) and (into is None or sub in into):
                    todo.append(sub)


def signature(st: os.stat_result) -> tuple:
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode


def write(rel: str, what: tuple) -> tuple:
    """Writes one file of the workspace; returns its stat's signature."""
    path = os.path.join(WORKSPACE, rel)
    if what[0] == "link":
        os.symlink(what[1], path)
    elif what[0] == "src":
        shutil.copy(os.path.join(SRC, rel), path)
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(what[1])
        if os.path.isfile(os.path.join(SRC, rel)):  # the mode of the file it replaces, as on the exec path
            shutil.copymode(os.path.join(SRC, rel), path)
    return signature(os.lstat(path))


def oom_kills() -> int:
    for name in () if LOCAL else OOM_FILES:  # the host's cgroup counts are not this run's
        try:
            for line in open(name):
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return 0


def set_dumpable(flag: int) -> None:
    """A process that is not dumpable has its /proc/PID/fd closed to others without CAP_SYS_PTRACE
    (which Docker drops): the code under test cannot reopen the worker's pipe to the host."""
    prctl(4, flag)  # PR_SET_DUMPABLE


def prctl(option: int, arg: int) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def pids() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


def kill_leftovers(pgid: int, keep: set[int]) -> None:
    """The child's process group, then every process that was not there when the worker started."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    if LOCAL:
        return
    for _ in range(3):  # a fork bomb forks while we kill
        for pid in pids() - keep:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def plugin_args(modules: list[str]) -> list[str]:
    """The installed plugins named on the command line, with pytest's own search for them off: in
    every child that search reads every installed package's metadata again (a tenth of a run)."""
    import pytest

    if getattr(pytest, "version_tuple", (0,)) < (8, 4):  # no --disable-plugin-autoload before 8.4
        return []
    return ["--disable-plugin-autoload", *(arg for m in modules for arg in ("-p", m))]


def as_candidate() -> None:
    """What each candidate's process does first: its own process group (which the worker kills),
    dumpable as a fresh python is, the first pick of the memory limit's killer, its own random state."""
    os.setpgid(0, 0)
    set_dumpable(1)
    if LOCAL:
        prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG: on the host, the child dies with its parent
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    if "random" in sys.modules:
        sys.modules["random"].seed()  # not the parent's state, the same for every child


def redirect(out: int, keep: tuple[int, ...] = ()) -> None:
    """stdin from /dev/null, stdout and stderr into `out`, every other descriptor but `keep` closed:
    the code under test must not write on the host's channel, nor on a zygote's."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:  # the listing's own descriptor
                pass


def into_tree(args: list[str], forget: list[str], base_path: list[str]) -> None:
    """As `python -m pytest ARGS` in the workspace: its path, folder and argv, the tree's names unloaded."""
    os.chdir(WORKSPACE)
    sys.path[:] = [WORKSPACE, os.path.join(WORKSPACE, "src"), *base_path]
    fresh_path_cache()
    for name in forget:
        sys.modules.pop(name, None)  # imported again, as on the exec path
    import pytest

    sys.argv = [os.path.join(os.path.dirname(pytest.__file__), "__main__.py"), *args]


def fresh_path_cache() -> None:
    """Python's cache of path entries as a fresh interpreter in the workspace has it: the worker
    started before its workspace held src/, and a path that did not exist is cached as None (nothing
    to import there, for good): a src-layout package then came from its copy installed in the image,
    or from nowhere (webcolors 25.10.0: no mutant failed a test under the worker)."""
    for entry, finder in list(sys.path_importer_cache.items()):
        if finder is None or entry == WORKSPACE or entry.startswith(WORKSPACE + os.sep):
            del sys.path_importer_cache[entry]  # made anew at the next import


def in_workspace(path) -> bool:
    return isinstance(path, str) and path.startswith(WORKSPACE + os.sep)


def exit_now(rc: int) -> None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(rc)


def exit_with(body) -> None:
    """Runs body() in a forked process and exits with the code it returns: never returns."""
    rc = 1
    try:
        rc = int(body())
    except SystemExit as exc:
        rc = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        exit_now(rc)


def child(args: list[str], w: int, forget: list[str], base_path: list[str]) -> None:
    """Runs in the forked child: never returns."""
    def body() -> int:
        as_candidate()
        redirect(w)
        into_tree(args, forget, base_path)
        import pytest

        return pytest.main(args, plugins=[short_recursion()])

    exit_with(body)


# -- zygotes ---------------------------------------------------------------------------------------
PRECOMPILE_S = 2.0  # the zygote's time for compiling the tree ahead of its candidates
MADV_POPULATE_WRITE = 23  # Linux's number (5.14+); Python's mmap module names it only for its own maps
PREFAULT_CHUNK = 256 << 10  # a spare looks for its start between chunks
PREFAULT_BYTES = 64 << 20  # at most this much of the zygote's memory is copied ahead
MAX_ZYGOTES = 4  # one per pytest argument list (and tree fingerprint): the failing tests', the suite's, ...


class ZygoteDied(Exception):
    """The zygote exited or garbled its answer while a candidate ran."""


class Zygote:
    """A child of the worker that has read pytest's configuration for one argument list and one state
    of the tree's start-up files (ini files, conftest.py: the fingerprint of `Workspace.sync`; a
    candidate whose overlay changes one never reaches the worker) and started the session. Each
    candidate's process is forked from it and pays only for collection and its tests. The worker itself stays clean: only the zygote ran conftest.py, the same for every
    candidate, and it refuses where that imported more of the tree (`tree_modules`).

    It imported the tree's modules that the selected tests import (`preimport`), from the tree as it
    was without any overlay, and each candidate brings them up to its own workspace (`refresh`);
    The worker names the files it wrote since the zygote started (a candidate's overlay, a file of
    the scratch tree that changed, one that a test changed): "run [paths]"; "fresh [paths]" where
    the tree's Python files are not those the zygote saw (a file added or removed could change what
    an import finds): that candidate imports the tree anew.

    It speaks on two pipes, a line each: "run" -> its candidate's pid and the next one's, forked
    ahead as a spare (which the worker keeps alive as its own); "exited" when that candidate
    has exited (not yet reaped, so that its process group's id stays its own while the worker kills
    what it left); "reap" -> "STATUS CPU_SECONDS". Candidates write to the zygote's output pipe."""

    def __init__(self, args: list[str], forget: list[str], base_path: list[str], workspace: Workspace):
        self.base = dict(workspace.made)  # the workspace's files when it started, as the worker wrote them
        self.py_files = workspace.py_files
        go_r, self.go = os.pipe()
        self.msg, msg_w = os.pipe()
        self.out, out_w = os.pipe()
        try:
            fcntl.fcntl(self.out, F_SETPIPE_SZ, 1 << 20)  # as for the plain child
        except OSError:
            pass
        self.buf, self.spare = b"", None
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            zygote_main(args, go_r, msg_w, out_w, forget, base_path)
        for fd in (go_r, msg_w, out_w):
            os.close(fd)

    def line(self, deadline: float) -> str:
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.msg], [], [], left)[0]:
                raise ZygoteDied("it did not answer in time")
            data = os.read(self.msg, 4096)
            if not data:
                raise ZygoteDied("it exited")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode(errors="replace")

    def ready(self, deadline: float) -> bool:
        try:
            ok = self.line(deadline) == "ready"
        except ZygoteDied:
            ok = False
        self.drain(bytearray())  # pytest's start-up output is no candidate's
        return ok

    def drain(self, tail: bytearray, reads: int = 64) -> bytearray:
        """What the candidates wrote so far (a bounded number of reads: a flood never ends)."""
        for _ in range(reads):
            if not select.select([self.out], [], [], 0)[0]:
                break
            tail += os.read(self.out, 1 << 20)
            del tail[:-2 * OUTPUT_LIMIT]
        return tail

    def run(self, deadline: float, keep: set[int], workspace: Workspace) -> tuple[int, float, bool, bytearray]:
        """One candidate, on the workspace as it is: (its wait status, its CPU seconds, whether it
        timed out, its output's tail)."""
        tail, pid, timed_out = bytearray(), None, False
        changed = [rel for rel, made in workspace.made.items() if self.base.get(rel) is not made]
        # a link changed: a preloaded module's file may now be another (modules are known by the
        # resolved paths of their files)
        link = any(made[0][0] == "link" for rel in changed
                   for made in (workspace.made[rel], self.base.get(rel)) if made)
        how = b"run " if workspace.py_files == self.py_files and not link else b"fresh "
        try:
            os.write(self.go, how + json.dumps(changed).encode() + b"\n")
            pid, self.spare = map(int, self.line(time.monotonic() + 10).split())
            keep = keep | {self.spare}
            while b"exited\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    kill_leftovers(pid, keep)
                    break
                ready = select.select([self.out, self.msg], [], [], left)[0]
                if self.out in ready:
                    self.drain(tail, reads=1)
                if self.msg in ready:
                    data = os.read(self.msg, 4096)
                    if not data:
                        raise ZygoteDied("it exited")
                    self.buf += data
            if self.line(time.monotonic() + 10) != "exited":
                raise ZygoteDied("it garbled its answer")
            kill_leftovers(pid, keep)  # before the reap: the group's id stays the candidate's until then
            os.write(self.go, b"reap\n")
            status, cpu = self.line(time.monotonic() + 10).split()
            return int(status), float(cpu), timed_out, self.drain(tail)
        except (OSError, ValueError, ZygoteDied) as exc:
            if pid is not None:
                kill_leftovers(pid, keep - {self.pid})
            raise ZygoteDied(str(exc)) from exc

    def close(self) -> None:
        for pid in filter(None, (self.pid, self.spare)):  # no spare before its first candidate
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.waitpid(self.pid, 0)
        except OSError:
            pass
        for fd in (self.go, self.msg, self.out):
            os.close(fd)


class Zygotes:
    """At most MAX_ZYGOTES, the least recently used dropped first. An argument list (with its tree
    fingerprint) whose zygote refused or died runs the plain way from then on."""

    def __init__(self):
        self.by_args: dict[tuple, Zygote] = {}
        self.refused: set[tuple] = set()

    def pids(self) -> set[int]:
        return {pid for z in self.by_args.values() for pid in (z.pid, z.spare) if pid}

    def get(self, args: list[str], fingerprint: str, forget: list[str], base_path: list[str],
            deadline: float, workspace: Workspace, overlay: dict[str, str]) -> Zygote | None:
        key = (*args, fingerprint)
        if key in self.refused:
            return None
        zygote = self.by_args.pop(key, None)
        if zygote is None:
            if overlay:  # it imports the tree as it is, not as this candidate changed it
                workspace.sync({})
            zygote = Zygote(args, forget, base_path, workspace)
            ok = zygote.ready(deadline) and not os.listdir(TMP)  # files in /tmp: every candidate's or none's
            if overlay:
                workspace.sync(overlay)
            if not ok:
                zygote.close()
                self.refused.add(key)
                return None
            while len(self.by_args) >= MAX_ZYGOTES:
                self.by_args.pop(next(iter(self.by_args))).close()
        self.by_args[key] = zygote  # now the most recently used
        return zygote

    def drop(self, args: list[str], fingerprint: str) -> None:
        key = (*args, fingerprint)
        self.refused.add(key)
        zygote = self.by_args.pop(key, None)
        if zygote is not None:
            zygote.close()


def zygotes_work() -> bool:
    """The zygote uses two names inside pytest (checked on 8.x and 9.x); without them, no zygotes."""
    import _pytest.config
    import _pytest.main

    return hasattr(_pytest.config, "_prepareconfig") and hasattr(_pytest.main, "_main")


def tree_modules() -> list[str]:
    """The tree's modules loaded so far, but for its conftest.py files."""
    return sorted(name for name, module in list(sys.modules.items())
                  if isinstance(path := getattr(module, "__file__", None), str)
                  and path.startswith(WORKSPACE + os.sep) and os.path.basename(path) != "conftest.py")


def zygote_main(args: list[str], go: int, msg: int, out: int, forget: list[str], base_path: list[str]) -> None:
    """Runs in the zygote, and at its end in each candidate: never returns."""
    def body() -> int:
        os.setpgid(0, 0)  # not in any candidate's group
        if LOCAL:
            prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        redirect(out, keep=(go, msg))
        into_tree(args, forget, base_path)
        import _pytest.main
        import pytest
        from _pytest.config import _prepareconfig

        os.environ["PYTEST_VERSION"] = pytest.__version__  # as pytest.main sets it
        config = _prepareconfig(args, plugins=[short_recursion()])
        run_session = _pytest.main._main
        # pytest's own command-line hook runs as in pytest.main; where it would run the session, the
        # zygote waits, and each candidate forked there runs the session to its end
        _pytest.main._main = lambda config, session: serve(config, session, go, msg, run_session)
        try:
            return config.hook.pytest_cmdline_main(config=config)
        except pytest.UsageError as exc:  # a test id that names nothing, say: as pytest.main says it
            for line in exc.args:
                sys.stderr.write(f"ERROR: {line}\n")
            return pytest.ExitCode.USAGE_ERROR
        finally:
            config._ensure_unconfigure()

    exit_with(body)


def precompile(config) -> None:
    """Compile the tree's modules once, in the zygote, for all its candidates: the sandbox writes no
    bytecode, so every import compiled its file again (on a big package, most of a run). Compiled,
    never run. A candidate's import takes the code only for the same path and the same bytes, so a
    file that the candidate changed compiles as before; test modules are compiled as pytest's
    assertion rewriter compiles them. At most PRECOMPILE_S seconds: the rest compiles as before."""
    from importlib.machinery import SourceFileLoader

    from _pytest.assertion import rewrite
    from _pytest.pathlib import fnmatch_ex

    plain, rewritten, stop = {}, {}, time.monotonic() + PRECOMPILE_S
    test_files = config.getini("python_files")
    for dirpath, dirs, files in os.walk(WORKSPACE):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
        for name in files:
            if not name.endswith(".py") or name == "conftest.py":  # conftest.py: the zygote imported it
                continue
            if time.monotonic() > stop:
                break
            path = os.path.join(dirpath, name)
            try:
                with open(path, "rb") as f:
                    data = f.read()
                if any(fnmatch_ex(pattern, path) for pattern in test_files):
                    rewritten[path, data] = rewrite._rewrite_test(pathlib.Path(path), config)
                else:
                    plain[path, data] = compile(data, path, "exec", dont_inherit=True)
            except (OSError, SyntaxError, ValueError):  # the candidate's own import says it
                pass
    source_to_code, rewrite_test = SourceFileLoader.source_to_code, rewrite._rewrite_test

    def compiled(loader, data, path, *args, **kwargs):
        code = plain.get((path, bytes(data)))
        return code if code is not None else source_to_code(loader, data, path, *args, **kwargs)

    def rewritten_test(fn, config):
        with open(fn, "rb") as f:
            done = rewritten.get((str(fn), f.read()))
        return done if done is not None else rewrite_test(fn, config)

    SourceFileLoader.source_to_code = compiled
    rewrite._rewrite_test = rewritten_test


# -- the tree's own modules in the zygote ------------------------------------------------------------
PRELOAD = True  # `--no-preload`: the zygote imports none of the tree (the benchmark's comparison)
PRELOAD_PARSE_S = 1.0  # the zygote's time for reading the selected test files' imports
CO_OPTIMIZED = 1  # a function's code (inspect.CO_OPTIMIZED); a class body's or a module's has not
FUTURE_FLAGS = functools.reduce(operator.or_, (getattr(__future__, name).compiler_flag
                                               for name in __future__.all_feature_names))
FIRST_COLUMN_NOT = ("", " ", "\t", "#", ")", "]", "}", "\f", "\r")  # how no top-level statement begins


class Preloaded:
    """The tree's modules that the zygote imported for its candidates (`preimport`), and how each
    candidate brings them up to its own workspace (`refresh`).

    A candidate changes a file or two of the tree: most often inside a function. Where a module's
    new text differs from what the zygote imported only inside the bodies of functions that did not
    run during the import (their syntax trees equal once those bodies are left out), the new code
    goes into the existing function objects (`__code__`), so that every module that did
    `from .utils import f` sees it, and the functions after it get their shifted line numbers
    (tracebacks read the workspace's file, the candidate's text). Anything else changed (a constant,
    a default, a decorator, a class body, a module-level statement, a function that ran at import
    time and may have left its results in the module) and the candidate forgets all the tree's
    modules and imports them anew, as without preloading. A candidate is a fork: what its tests do
    to the modules stays in it."""

    def __init__(self):
        self.names: list[str] = []  # the modules the import added under the tree's names
        self.files: dict[str, tuple] = {}  # path -> (its source, its module code or None)
        self.real: dict[str, list[str]] = {}  # a file's resolved path -> the paths its modules were loaded by
        self.functions: dict[str, list] = {}  # path -> the function objects its code made
        self.ran: set = set()  # the tree's code objects that ran during the import
        self.fresh = False  # in a candidate: the tree's Python files are not those the zygote imported
        self.changed: list[str] = []  # in a candidate: the files the worker wrote since the zygote started

    def refresh(self) -> None:
        """In a candidate: the tree's modules as its workspace has them (see the class)."""
        for name in [name for name in linecache.cache if name.startswith(WORKSPACE + os.sep)]:
            del linecache.cache[name]  # source lines are read from the candidate's files
        if not self.names:
            return
        if self.fresh:
            return self.forget()
        # a changed file by its resolved path: a module imported through a symlink is that file's
        for path in (p for rel in self.changed
                     for p in self.real.get(os.path.realpath(os.path.join(WORKSPACE, rel)), ())):
            source, code = self.files[path]
            try:
                with open(path, "rb") as f:
                    new = f.read()
            except OSError:
                return self.forget()
            if new != source and not self.swap(path, source, new, code):
                return self.forget()

    def forget(self) -> None:
        for name in self.names:
            sys.modules.pop(name, None)

    def swap(self, path: str, source: bytes, new: bytes, code) -> bool:
        """The new text's code into the module's functions, if only their bodies changed (see the
        class); False, having changed nothing, where it cannot."""
        try:
            a, b = importlib.util.decode_source(source).split("\n"), importlib.util.decode_source(new).split("\n")
            n = min(len(a), len(b))  # the lines both begin with, and end with: what differs lies between
            same = next((i for i in range(n) if a[i] != b[i]), n)
            tail = next((i for i in range(n - same) if a[-1 - i] != b[-1 - i]), n - same)
            # the top-level statements around the change, [lo, hi) in the old text's line numbers
            starts = [line for _, line in dis.findlinestarts(code)
                      if line and line <= len(a) and a[line - 1][:1] not in FIRST_COLUMN_NOT]
            lo = max((line for line in starts if line <= same + 1), default=1)
            hi = min((line for line in starts if line > len(a) - tail and line >= lo), default=len(a) + 1)
            shift = len(b) - len(a)
            old_part, new_part = "\n".join(a[lo - 1:hi - 1]), "\n".join(b[lo - 1:hi - 1 + shift])
            flags = code.co_flags & FUTURE_FLAGS
            if bodies_left_out(old_part, flags) != bodies_left_out(new_part, flags):
                return False
            part = compile("\n" * (lo - 1) + new_part, path, "exec", flags=flags, dont_inherit=True)
            new_code: dict = {}
            if not pair(codes_of(code, lo, hi), codes_of(part, lo, hi + shift), new_code, self.ran):
                return False
            swaps = []
            for function in self.functions.get(path, ()):
                old = function.__code__
                if old in new_code:
                    swaps.append((function, new_code[old]))
                elif old.co_firstlineno >= hi and shift:
                    swaps.append((function, shifted(old, shift)))
                elif lo <= old.co_firstlineno < hi:
                    return False  # made by code that ran at import time: not one the pairing knows
        except Exception:  # a text that does not decode or parse, say: the import says it, as on the exec path
            return False
        for function, new_code in swaps:
            function.__code__ = new_code
        return True


def bodies_left_out(text: str, flags: int) -> str:
    """The text's syntax tree, every function's body left out but for its docstring."""
    tree = compile(text, "<part>", "exec", flags | ast.PyCF_ONLY_AST, dont_inherit=True)
    todo = [tree]
    while todo:  # a body is left out before the walk would go into it
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.body = node.body[:1] if ast.get_docstring(node, clean=False) is not None else []
        todo.extend(ast.iter_child_nodes(node))
    return ast.dump(tree)


def codes_of(code, lo: int, hi: int) -> list:
    """The code objects that `code` makes on lines [lo, hi), in order."""
    return [c for c in code.co_consts if isinstance(c, types.CodeType) and lo <= c.co_firstlineno < hi]


def pair(olds: list, news: list, new_code: dict, ran: set) -> bool:
    """Matches the old text's code objects with the new one's, the same statements in the same
    order (their syntax trees are equal outside function bodies): a function's code is replaced
    whole; a class body's functions are matched in turn; lambdas and comprehensions (outside any
    function's body, so unchanged) take their new line numbers. False where a function ran at
    import time, or its closure would not fit."""
    if len(olds) != len(news):
        return False
    for old, new in zip(olds, news):
        if old.co_name != new.co_name:
            return False
        if not old.co_flags & CO_OPTIMIZED:  # a class body
            if not pair(codes_of(old, 0, 1 << 30), codes_of(new, 0, 1 << 30), new_code, ran):
                return False
            continue
        if old.co_freevars != new.co_freevars or (old in ran and not old.co_name.startswith("<")):
            return False
        new_code[old] = new
    return True


def shifted(code, lines: int):
    return code.replace(co_firstlineno=code.co_firstlineno + lines, co_consts=tuple(
        shifted(c, lines) if isinstance(c, types.CodeType) else c for c in code.co_consts))


def preimport(config) -> Preloaded:
    """In the zygote: imports the tree's modules that the selected test files import at their top
    level (`test_imports`), as their collection would, from the tree as the workspace holds it (the
    worker makes a zygote from the tree without the request's overlay). Records what `refresh` needs:
    each file's source and module code, the functions it made, the tree's code that ran. An
    import that fails is undone; the warnings filters an import sets are undone, as pytest undoes
    those of a collection."""
    from importlib.machinery import SourceFileLoader

    done, names = Preloaded(), test_imports(config)
    if not names:
        return done
    source_to_code, codes, ran, before = SourceFileLoader.source_to_code, {}, set(), set(sys.modules)

    def recorded(loader, data, path, *args, **kwargs):
        codes[path] = source_to_code(loader, data, path, *args, **kwargs)
        return codes[path]

    cwd, tracer = os.getcwd(), sys.gettrace()
    SourceFileLoader.source_to_code = recorded
    sys.settrace(lambda frame, event, arg: ran.add(frame.f_code))  # calls only: no line events
    try:
        with warnings.catch_warnings():
            for name in names:
                loaded = set(sys.modules)
                try:
                    importlib.import_module(name)
                except BaseException:  # not imported, as today: each candidate's own import says why
                    for added in set(sys.modules) - loaded:
                        del sys.modules[added]
    finally:
        sys.settrace(tracer)
        SourceFileLoader.source_to_code = source_to_code
        os.chdir(cwd)
    top = top_names(WORKSPACE)
    for name in set(sys.modules) - before:
        path = getattr(sys.modules[name], "__file__", None)
        mine = in_workspace(path)
        if mine or name.partition(".")[0] in top:
            done.names.append(name)
        if mine and path not in done.files:
            with open(path, "rb") as f:
                done.files[path] = (f.read(), codes.get(path))
            done.real.setdefault(os.path.realpath(path), []).append(path)
    if any(isinstance(getattr(sys.modules[name], "__file__", None), str)
           and not in_workspace(sys.modules[name].__file__) for name in done.names):
        # one of the tree's names came from elsewhere (an installed copy, say): a candidate's change
        # to the tree would not reach it; none preloaded, each candidate imports as the exec path does
        done.forget()
        return Preloaded()
    done.ran = {code for code in ran if code.co_filename in done.files}
    for obj in gc.get_objects():
        if type(obj) is types.FunctionType and obj.__code__.co_filename in done.files:
            done.functions.setdefault(obj.__code__.co_filename, []).append(obj)
    return done


def test_imports(config) -> list[str]:
    """The tree's modules that the selected test files import at their top level (outside functions
    and classes), in order; not a test module or conftest. Only a name that resolves to the same
    file from the zygote's path (the tree's root, src/) as from the path the test module imports it
    with: pytest's rootdir of the test module (first, as --import-mode=prepend puts it), then what
    the module's own `sys.path.insert/append(...)` of os.path calls made (youtube-dl's tests put the
    tree's root first). After any other statement that touches sys.path, none of that file's."""
    from _pytest.pathlib import fnmatch_ex

    patterns, mode = config.getini("python_files"), config.getoption("importmode", "prepend")
    top, names, stop = top_names(WORKSPACE), [], time.monotonic() + PRELOAD_PARSE_S
    for path in selected_files(config, patterns):
        if time.monotonic() > stop:
            break
        folder = os.path.dirname(path)
        while os.path.isfile(os.path.join(folder, "__init__.py")):  # pytest's rootdir of the test's package
            folder = os.path.dirname(folder)
        its_path = {"prepend": [folder, *sys.path], "append": [*sys.path, folder]}.get(mode, list(sys.path))
        try:
            with open(path, "rb") as f:
                tree = ast.parse(f.read())
        except (OSError, SyntaxError, ValueError):
            continue
        for node in top_level(tree):
            if isinstance(node, ast.stmt) and not isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                    isinstance(n, ast.Attribute) and n.attr == "path" and isinstance(n.value, ast.Name)
                    and n.value.id == "sys" for n in ast.walk(node)) and not path_change(node, path, its_path):
                break
            found = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and not node.level and node.module else []
            for name in found:
                first, last = name.partition(".")[0], name.rpartition(".")[2]
                if first in top and name not in names and last != "conftest" \
                        and not any(fnmatch_ex(pattern, last + ".py") for pattern in patterns) \
                        and (where := found_at(first, its_path)) == found_at(first, sys.path) \
                        and where is not None and all(map(in_workspace, [where[0], *where[1]])):
                    names.append(name)
    return names


def path_change(node, test_file: str, path: list[str]) -> bool:
    """Makes the statement's change to `path` where it is `sys.path.insert(i, X)` or
    `sys.path.append(X)` with X made of os.path calls, `__file__` and strings; False for any other."""
    call = node.value if isinstance(node, ast.Expr) else None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and not call.keywords
            and len(call.args) == {"insert": 2, "append": 1}.get(call.func.attr)
            and ast.dump(call.func.value) == ast.dump(ast.parse("sys.path", mode="eval").body)):
        return False
    value = call.args[-1]
    for n in ast.walk(value):
        if isinstance(n, ast.Name) and n.id not in ("os", "__file__") or isinstance(n, ast.Attribute) \
                and isinstance(n.value, ast.Name) and n.value.id == "os" and n.attr != "path":
            return False
    try:
        folder = eval(compile(ast.Expression(value), test_file, "eval"), {"__builtins__": {}, "os": os,
                                                                          "__file__": test_file})
        path.insert(ast.literal_eval(call.args[0]) if call.func.attr == "insert" else len(path), str(folder))
    except Exception:
        return False
    return True


def found_at(name: str, path: list[str]):
    """Where an import of the top-level `name` finds it on `path`."""
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec(name, path)
    return None if spec is None else (spec.origin, list(spec.submodule_search_locations or ()))


def top_level(node):
    """The statements of a module outside its functions and classes, and their parts, in order."""
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            yield child
            yield from top_level(child)


def selected_files(config, patterns: list[str]):
    """The test files that the session's arguments name, or hold (a bounded walk)."""
    from _pytest.pathlib import fnmatch_ex

    seen = 0
    for arg in config.args:
        path = os.path.join(str(config.invocation_params.dir), arg.split("::")[0])
        if os.path.isfile(path) and path.endswith(".py"):
            yield path
        for dirpath, dirs, files in os.walk(path) if os.path.isdir(path) else ():
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
            for name in sorted(files):
                seen += 1
                if seen > SCAN_FILES:
                    return
                if name.endswith(".py") and any(fnmatch_ex(p, os.path.join(dirpath, name)) for p in patterns):
                    yield os.path.join(dirpath, name)


def serve(config, session, go: int, msg: int, run_session):
    """Where pytest would run the session: the zygote's loop. Returns only in a candidate, with the
    session's result (its exceptions are the session's, which pytest handles as usual)."""
    preloaded = fork_candidates(config, go, msg)
    if preloaded is None:
        exit_now(0)  # the worker has gone, or dropped this zygote
    as_candidate()
    own_capture(config)
    importlib.invalidate_caches()  # the workspace was made anew
    preloaded.refresh()
    return run_session(config, session)


def fork_candidates(config, go: int, msg: int) -> "Preloaded | None":
    """The zygote's side of the pipes (see Zygote); in each candidate, what the zygote preloaded of
    the tree (with the candidate's `fresh` set), None when done. Each candidate's process is forked
    one request ahead, as a Spare; "run" (or "fresh", see Zygote) starts it and forks the next."""
    def say(text: str) -> None:
        os.write(msg, text.encode() + b"\n")

    def command() -> bytes:
        """The worker's next line (it writes one and waits for the answer)."""
        line = b""
        while not line.endswith(b"\n"):
            data = os.read(go, 1 << 16)
            if not data:
                return b""
            line += data
        return line

    try:
        own = tree_modules()
        if own:  # the candidates would share this state of the tree's code
            say("refused: conftest.py imported " + ", ".join(own[:5]))
            return None
        precompile(config)
        threads = threading.active_count()
        preloaded = preimport(config) if PRELOAD else Preloaded()
        if threading.active_count() > threads:  # a fork copies none of them
            say("refused: the tree's import started a thread")
            return None
        # inspect's map of files to modules, which a failure's report reads: filled once here, for
        # every module loaded so far, and not in each candidate (a realpath per module: ~20 ms
        # with youtube-dl's 1,000)
        inspect.getmodule(object(), os.path.join(WORKSPACE, "<no module>"))
        gc.freeze()
        say("ready")
        spare = Spare(go, msg)
        while spare.pid and (cmd := command()).startswith((b"run ", b"fresh ")):
            how = cmd[:1] + cmd.partition(b" ")[2]  # "r" or "f", and the changed files
            while spare.pid and not spare.begin(how):  # it died while it waited: one forked now instead
                spare = Spare(go, msg)
            if not spare.pid:
                break
            pid, spare = spare.pid, Spare(go, msg)
            if not spare.pid:
                break
            say(f"{pid} {spare.pid}")
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            say("exited")
            if command() != b"reap\n":
                break
            _, status, usage = os.wait4(pid, 0)
            say(f"{status} {usage.ru_utime + usage.ru_stime}")
        if not spare.pid:
            how, changed = spare.wait()
            preloaded.fresh, preloaded.changed = how == b"f", json.loads(changed)
            return preloaded
    except BaseException:
        traceback.print_exc()
    return None


class Spare:
    """A candidate's process, forked from the zygote one request ahead: while it waits it copies the
    zygote's memory (`prefault`), off the request's time. It holds no end of the worker's pipes (the
    worker sees the zygote's death as their end). A running candidate can kill its waiting sibling
    (same user): a spare acknowledges its start, and one that died is replaced by a fresh fork."""

    def __init__(self, go: int, msg: int):
        start_r, self.start = os.pipe()
        self.ack, ack_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            for fd in (go, msg, self.start, self.ack):
                os.close(fd)
            self.start, self.ack = start_r, ack_w
        else:
            os.close(start_r)
            os.close(ack_w)

    def begin(self, how: bytes) -> bool:
        """In the zygote: start it ("r" or "f", and the changed files' line: see Zygote); False if
        it had died."""
        try:
            os.write(self.start, how)
            alive = os.read(self.ack, 1) == b"a"
        except OSError:
            alive = False
        os.close(self.start)
        os.close(self.ack)
        if not alive:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
            os.waitpid(self.pid, 0)
        return alive

    def wait(self) -> tuple[bytes, bytes]:
        """In the spare: copy pages until started, then return as the candidate, with how it was
        started ("r" or "f") and the rest of that line. The end of the pipe without a start (the
        zygote dropped or killed) ends it."""
        prefault(self.start)
        how, rest = os.read(self.start, 1), b""
        while how in (b"r", b"f") and not rest.endswith(b"\n"):
            data = os.read(self.start, 1 << 16)
            if not data:
                how = b""
            rest += data
        started = how in (b"r", b"f")
        if started:
            os.write(self.ack, b"a")
        os.close(self.start)
        os.close(self.ack)
        if not started:
            exit_now(0)
        return how, rest


def prefault(start: int) -> None:
    """Copy the zygote's writable pages into this process now, a chunk at a time until `start` has
    something to read. Every page a candidate writes is first copied from the zygote, one fault each
    (on this machine, ten of a gcd candidate's thirty-odd milliseconds); done ahead, off the request's
    time. Linux 5.14+ (MADV_POPULATE_WRITE); where madvise refuses it, nothing is copied ahead."""
    try:
        import ctypes

        madvise = ctypes.CDLL(None, use_errno=True).madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        with open("/proc/self/maps") as f:
            spans = [[int(x, 16) for x in fields[0].split("-")] for fields in map(str.split, f)
                     if fields[1] == "rw-p" and fields[5:6] not in (["[stack]"], ["[vvar]"], ["[vsyscall]"])]
    except (OSError, AttributeError, ValueError, IndexError):
        return
    left = PREFAULT_BYTES
    for low, high in spans:
        for at in range(low, high, PREFAULT_CHUNK):
            size = min(PREFAULT_CHUNK, high - at, left)
            if size <= 0 or select.select([start], [], [], 0)[0]:
                return
            if madvise(at, size, MADV_POPULATE_WRITE) != 0 and ctypes.get_errno() == errno.EINVAL:
                return  # an older kernel
            left -= size


def own_capture(config) -> None:
    """The zygote's capture files are open in every candidate forked from it: a candidate killed in a
    test would leave its output there for the next. Each candidate captures into files of its own."""
    capman = config.pluginmanager.getplugin("capturemanager")
    captures = getattr(capman, "_global_capturing", None)
    if captures is not None:
        captures.stop_capturing()
        capman._global_capturing = None
        capman.start_global_capturing()
        capman.suspend_global_capture()


def run(req: dict, keep: set[int], forget: list[str], base_path: list[str], workspace: Workspace,
        zygotes: "Zygotes | None" = None) -> dict:
    overlay = req.get("overlay") or {}
    try:
        try:
            fingerprint = workspace.sync(overlay)
        except OSError:  # what the code under test left there, say (a folder it cannot read): all anew
            workspace.reset()
            fingerprint = workspace.sync(overlay)
    except OSError as exc:
        workspace.reset()
        return {"id": req["id"], "error": str(exc)[-300:]}
    clear(TMP)
    junit = req["junit"]
    if os.path.exists(junit):
        os.unlink(junit)
    oom0 = oom_kills()
    start = time.monotonic()
    deadline = start + float(req["timeout"])
    if zygotes is not None:
        zygote = zygotes.get(req["args"], fingerprint, forget, base_path, deadline, workspace, overlay)
        keep = keep | zygotes.pids()  # the worker's own, not a candidate's leftovers
        if zygote is not None:
            try:
                status, cpu, timed_out, tail = zygote.run(deadline, keep, workspace)
            except ZygoteDied:  # the candidate killed it, say: the candidate runs again, the plain way
                zygotes.drop(req["args"], fingerprint)
                return run(req, keep, forget, base_path, workspace)
            return reply(req, status, cpu, timed_out, tail, start, oom0, zygote=True)
        # it refused: the plain way, from a fresh workspace and with the full time
        return run(req, keep, forget, base_path, workspace)
    r, w = os.pipe()
    try:
        fcntl.fcntl(r, F_SETPIPE_SZ, 1 << 20)  # fewer wake-ups for a test that floods its output
    except OSError:
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        child(req["args"], w, forget, base_path)
    os.close(w)
    try:
        os.setpgid(pid, pid)  # the child does this too: whichever runs first
    except OSError:
        pass
    tail, eof, timed_out = bytearray(), False, False
    while not os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        if eof:  # the child closed its output but runs on
            time.sleep(min(left, 0.002))
        elif select.select([r], [], [], min(left, 0.05))[0]:
            data = os.read(r, 1 << 20)
            eof = not data
            tail += data
            if len(tail) > 2 * OUTPUT_LIMIT:
                del tail[:-OUTPUT_LIMIT]
    kill_leftovers(pid, keep)  # before the reap: the group's id stays the child's until then
    _, status, usage = os.wait4(pid, 0)
    while not eof and select.select([r], [], [], 1.0)[0]:  # the rest of the output: its writers are gone
        data = os.read(r, 1 << 16)
        eof = not data
        tail = (tail + data)[-OUTPUT_LIMIT:]
    os.close(r)
    return reply(req, status, usage.ru_utime + usage.ru_stime, timed_out, tail, start, oom0)


def reply(req: dict, status: int, cpu: float, timed_out: bool, tail: bytes, start: float, oom0: int,
          zygote: bool = False) -> dict:
    seconds = time.monotonic() - start
    clear(TMP)
    code = os.waitstatus_to_exitcode(status)
    rc = 124 if timed_out else (128 - code if code < 0 else code)  # 128+N for signal N, as in sh
    data = None
    if os.path.exists(req["junit"]):
        with open(req["junit"], "rb") as f:
            data = base64.b64encode(f.read()).decode()
    return {"id": req["id"], "rc": rc, "timed_out": timed_out, "oom_killed": oom_kills() > oom0,
            "seconds": round(seconds, 3), "cpu_s": round(cpu, 3), "zygote": zygote,
            "output": bytes(tail[-OUTPUT_LIMIT:]).decode(errors="replace"), "junit": data}


def use_private(src: str, private: str) -> None:
    """The local sandbox's folders, in place of the container's."""
    global SRC, WORKSPACE, TMP, LOCAL
    private = os.path.realpath(private)
    if not os.path.isfile(os.path.join(private, MARKER)):
        sys.exit(f"warm_worker: {private} is not a private folder of the local sandbox (no {MARKER})")
    SRC, WORKSPACE, TMP, LOCAL = os.path.realpath(src), os.path.join(private, "workspace"), \
        os.path.join(private, "tmp"), True
    if not (os.path.isdir(WORKSPACE) and os.path.isdir(TMP)):  # made before the start: PYTHONPATH names one
        sys.exit(f"warm_worker: {private} lacks its workspace and tmp folders")


def to_forget(loaded: set[str], warmed: set[str], plugins: list[str], top: set[str]) -> list[str]:
    """The modules each candidate imports again from its workspace: those the preload or the warm-up
    loaded under a name the tree puts on the path. Where a plugin imported the tree's package at
    start-up (pytest-sanic imports sanic, from the image's installed copy: the warm-up runs outside
    the tree), the plugin goes too, so that it imports the tree's copy again, as under `python -m
    pytest` in the workspace; else every candidate would test the installed copy."""
    tree_named = {m for m in loaded | warmed if m.partition(".")[0] in top}
    if tree_named & warmed:  # a plugin imported it
        plugin_tops = {p.partition(".")[0] for p in plugins}
        tree_named |= {m for m in warmed if m.partition(".")[0] in plugin_tops}
    return sorted(tree_named)


def main() -> None:
    if sys.argv[1:2] == ["--local"]:
        use_private(*sys.argv[2:4])
    elif not os.path.ismount(WORKSPACE):  # the container's tmpfs: anywhere else, /tmp is not ours to empty
        sys.exit(f"warm_worker: {WORKSPACE} is not a mount point: not in the sandbox's container (use --local)")
    start = time.monotonic()
    set_dumpable(0)
    proto = os.dup(1)  # the host's channel; fd 1 now goes to stderr, whatever the imports print
    os.dup2(2, 1)
    keep = pids()
    here = os.path.dirname(os.path.abspath(__file__))
    # the tree's own entries go (into_tree puts them first); a folder of it that a .pth file of the
    # image adds (install_deps.from_tree: ansible's lib/) stays where a fresh interpreter has it
    sys.path[:] = [p for p in sys.path if p not in ("", here, WORKSPACE, os.path.join(WORKSPACE, "src"))
                   and not p.startswith(SRC)]
    base_path = list(sys.path)
    own, imported = tree_names(SRC)
    preloaded, loaded, plugins = preload(own, imported)
    startup = plugin_args(plugins)
    before_warm_up = set(sys.modules)
    warm_up(startup)
    forget = to_forget(loaded, set(sys.modules) - before_warm_up, plugins, top_names(SRC))
    gc.freeze()  # the children share these pages: keep the collector from touching them
    out = os.fdopen(proto, "w", closefd=False)
    out.write(json.dumps({"ready": True, "preloaded": preloaded,
                          "seconds": round(time.monotonic() - start, 3)}) + "\n")
    out.flush()
    zygotes = None if "--no-zygotes" in sys.argv or not zygotes_work() else Zygotes()
    # the benchmark's comparisons: spares that copy nothing ahead, zygotes that compile nothing or
    # import none of the tree
    global PREFAULT_BYTES, PRECOMPILE_S, PRELOAD
    PREFAULT_BYTES = 0 if "--no-prefault" in sys.argv else PREFAULT_BYTES
    PRECOMPILE_S = 0 if "--no-precompile" in sys.argv else PRECOMPILE_S
    PRELOAD = "--no-preload" not in sys.argv
    workspace = Workspace()
    workspace.reset()  # what was there before the worker is none of its own
    for line in sys.stdin.buffer:
        if line.strip():
            req = json.loads(line)
            req["args"] = [*startup, *req["args"]]
            out.write(json.dumps(run(req, keep, forget, base_path, workspace, zygotes)) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
