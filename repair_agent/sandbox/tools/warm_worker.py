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

Per request: /workspace is refilled from /src (the scratch tree as it is now, so the host never
has to say when it changed: copying a 200-file tree costs about 10 ms) and the overlay is written
over it; /tmp is emptied; a child in its own process group runs pytest there, its stdout and stderr
going into a pipe of which the parent keeps the last 64 KiB. The child is forked from a zygote, a
child of the worker that has read pytest's configuration for the request's pytest arguments and
started the session (see Zygote), or, the first time a zygote refuses or with `--no-zygotes`, from
the worker itself, which then runs pytest.main(). The parent never imports the tree's own modules.
At the deadline it kills the child's process group; after every child it kills what it left behind
(forks that left the group, daemons), as the exec path's shell wrapper does. The parent is not dumpable, so the child cannot reopen its pipes through /proc.

`warm_worker.py --local SRC PRIVATE` is the local sandbox's worker, on the host: the tree is SRC,
the workspace and the emptied temporary folder are PRIVATE/workspace and PRIVATE/tmp, never the
host's /tmp (it refuses a PRIVATE without the local sandbox's marker file), only the child's process
group is killed (every other process on the host is not the worker's to kill), and the memory
limit is the host's rlimit, so no out-of-memory count is read.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import gc
import hashlib
import importlib
import importlib.util
import json
import os
import pathlib
import re
import select
import shutil
import signal
import sys
import time
import traceback

SRC, WORKSPACE, TMP = "/src", "/workspace", "/tmp"  # in the container; --local sets its own
LOCAL = False
MARKER = ".repair-agent-private"  # what the local sandbox writes into its private folder
OUTPUT_LIMIT = 64 * 1024
OOM_FILES = ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events")
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", "build", "dist"}
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


def fresh_workspace(overlay: dict[str, str]) -> str:
    """The tree with the overlay over it. Returns a fingerprint of what pytest's start-up reads: the
    start-up files' text, every other non-Python file's size and time (outside .git). The scratch
    tree changes between requests (a patch applied, then reset), and a zygote serves only its own."""
    clear(WORKSPACE)
    seen = hashlib.sha256()

    def copy(src: str, dst: str) -> str:
        name = os.path.basename(src)
        if name in STARTUP_FILES:
            with open(src, "rb") as f:
                seen.update(src.encode() + b"\0" + f.read())
        elif not name.endswith(".py") and "/.git/" not in src:
            st = os.lstat(src)
            seen.update(f"{src}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        return shutil.copy(src, dst)

    shutil.copytree(SRC, WORKSPACE, symlinks=True, dirs_exist_ok=True, copy_function=copy)
    for rel, text in overlay.items():
        path = os.path.normpath(os.path.join(WORKSPACE, rel))
        if not path.startswith(WORKSPACE + "/"):
            raise OSError(f"overlay path {rel!r} leaves the workspace")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return seen.hexdigest()


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
    for name in forget:
        sys.modules.pop(name, None)  # imported again, as on the exec path
    import pytest

    sys.argv = [os.path.join(os.path.dirname(pytest.__file__), "__main__.py"), *args]


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
    of the tree's start-up files (ini files, conftest.py: the fingerprint of `fresh_workspace`; a
    candidate whose overlay changes one never reaches the worker) and started the session. Each
    candidate's process is forked from it and pays only for collection and its tests. The worker itself stays clean: only the zygote ran conftest.py, the same for every
    candidate, and it refuses where that imported more of the tree (`tree_modules`).

    It speaks on two pipes, a line each: "run" -> its candidate's pid and the next one's, forked
    ahead as a spare (which the worker keeps alive as its own); "exited" when that candidate
    has exited (not yet reaped, so that its process group's id stays its own while the worker kills
    what it left); "reap" -> "STATUS CPU_SECONDS". Candidates write to the zygote's output pipe."""

    def __init__(self, args: list[str], forget: list[str], base_path: list[str]):
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

    def run(self, deadline: float, keep: set[int]) -> tuple[int, float, bool, bytearray]:
        """One candidate: (its wait status, its CPU seconds, whether it timed out, its output's tail)."""
        tail, pid, timed_out = bytearray(), None, False
        try:
            os.write(self.go, b"run\n")
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
            deadline: float) -> Zygote | None:
        key = (*args, fingerprint)
        if key in self.refused:
            return None
        zygote = self.by_args.pop(key, None)
        if zygote is None:
            zygote = Zygote(args, forget, base_path)
            if not zygote.ready(deadline) or os.listdir(TMP):  # files in /tmp: every candidate's or none's
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


def serve(config, session, go: int, msg: int, run_session):
    """Where pytest would run the session: the zygote's loop. Returns only in a candidate, with the
    session's result (its exceptions are the session's, which pytest handles as usual)."""
    if not fork_candidates(config, go, msg):
        exit_now(0)  # the worker has gone, or dropped this zygote
    as_candidate()
    own_capture(config)
    importlib.invalidate_caches()  # the workspace was made anew
    return run_session(config, session)


def fork_candidates(config, go: int, msg: int) -> bool:
    """The zygote's side of the pipes (see Zygote); True in each candidate, False when done. Each
    candidate's process is forked one request ahead, as a Spare; "run" starts it and forks the next."""
    def say(text: str) -> None:
        os.write(msg, text.encode() + b"\n")

    def command() -> bytes:
        line = b""
        while not line.endswith(b"\n"):
            data = os.read(go, 1)
            if not data:
                return b""
            line += data
        return line

    try:
        own = tree_modules()
        if own:  # the candidates would share this state of the tree's code
            say("refused: conftest.py imported " + ", ".join(own[:5]))
            return False
        precompile(config)
        gc.freeze()
        say("ready")
        spare = Spare(go, msg)
        while spare.pid and command() == b"run\n":
            while spare.pid and not spare.begin():  # it died while it waited: one forked now instead
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
            spare.wait()
            return True
    except BaseException:
        traceback.print_exc()
    return False


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

    def begin(self) -> bool:
        """In the zygote: start it; False if it had died."""
        try:
            os.write(self.start, b"g")
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

    def wait(self) -> None:
        """In the spare: copy pages until started, then return as the candidate. The end of the pipe
        without a start (the zygote dropped or killed) ends it."""
        prefault(self.start)
        started = os.read(self.start, 1) == b"g"
        if started:
            os.write(self.ack, b"a")
        os.close(self.start)
        os.close(self.ack)
        if not started:
            exit_now(0)


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


def run(req: dict, keep: set[int], forget: list[str], base_path: list[str],
        zygotes: "Zygotes | None" = None) -> dict:
    try:
        fingerprint = fresh_workspace(req.get("overlay") or {})
    except OSError as exc:
        return {"id": req["id"], "error": str(exc)[-300:]}
    clear(TMP)
    junit = req["junit"]
    if os.path.exists(junit):
        os.unlink(junit)
    oom0 = oom_kills()
    start = time.monotonic()
    deadline = start + float(req["timeout"])
    if zygotes is not None:
        zygote = zygotes.get(req["args"], fingerprint, forget, base_path, deadline)
        keep = keep | zygotes.pids()  # the worker's own, not a candidate's leftovers
        if zygote is not None:
            try:
                status, cpu, timed_out, tail = zygote.run(deadline, keep)
            except ZygoteDied:  # the candidate killed it, say: the candidate runs again, the plain way
                zygotes.drop(req["args"], fingerprint)
                return run(req, keep, forget, base_path)
            return reply(req, status, cpu, timed_out, tail, start, oom0, zygote=True)
        # it refused: the plain way, from a fresh workspace and with the full time
        return run(req, keep, forget, base_path)
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
    sys.path[:] = [p for p in sys.path if p not in ("", here) and not p.startswith((SRC, WORKSPACE))]
    base_path = list(sys.path)
    own, imported = tree_names(SRC)
    preloaded, loaded, plugins = preload(own, imported)
    top = top_names(SRC)  # what a preloaded library imported under a name the tree puts on the path
    forget = [m for m in sys.modules if m in loaded and m.partition(".")[0] in top]
    startup = plugin_args(plugins)
    warm_up(startup)
    gc.freeze()  # the children share these pages: keep the collector from touching them
    out = os.fdopen(proto, "w", closefd=False)
    out.write(json.dumps({"ready": True, "preloaded": preloaded,
                          "seconds": round(time.monotonic() - start, 3)}) + "\n")
    out.flush()
    zygotes = None if "--no-zygotes" in sys.argv or not zygotes_work() else Zygotes()
    # the benchmark's comparisons: spares that copy nothing ahead, zygotes that compile nothing
    global PREFAULT_BYTES, PRECOMPILE_S
    PREFAULT_BYTES = 0 if "--no-prefault" in sys.argv else PREFAULT_BYTES
    PRECOMPILE_S = 0 if "--no-precompile" in sys.argv else PRECOMPILE_S
    for line in sys.stdin.buffer:
        if line.strip():
            req = json.loads(line)
            req["args"] = [*startup, *req["args"]]
            out.write(json.dumps(run(req, keep, forget, base_path, zygotes)) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
