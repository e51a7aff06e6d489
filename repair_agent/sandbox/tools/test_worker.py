"""The warm test worker: lives in the sandbox container for a task and runs each candidate's tests
in a forked child, so that Python, pytest, its plugins and the third-party imports are paid once.

Runs inside the container with the sandbox venv's python (stdlib + pytest only). It reads one JSON
request per line on stdin,
    {"id": ..., "args": [pytest args], "junit": path, "overlay": {relpath: text}, "timeout": s}
(`args` is the whole pytest command line, built by the host as for the exec path), and answers
each with one JSON line on stdout,
    {"id", "rc", "timed_out", "oom_killed", "seconds", "cpu_s", "output": str, "junit": base64 | null}
or {"id", "error": why} when the workspace could not be made. Its first line is
{"ready": true, "preloaded": [...], "seconds": s}.

Per request: /workspace is refilled from /src (the scratch tree as it is now, so the host never
has to say when it changed: copying a 200-file tree costs about 10 ms) and the overlay is written
over it; /tmp is emptied; a child in its own process group runs pytest.main() there, its stdout
and stderr going into a pipe of which the parent keeps the last 64 KiB. The parent never imports
the tree's own modules. At the deadline it kills the child's process group; after every child it
kills what the child left behind (forks that left the group, daemons), as the exec path's shell
wrapper does. The parent is not dumpable, so the child cannot reopen its pipes through /proc.

`test_worker.py --local SRC PRIVATE` is the local sandbox's worker, on the host: the tree is SRC,
the workspace and the emptied temporary folder are PRIVATE/workspace and PRIVATE/tmp, never the
host's /tmp (it refuses a PRIVATE without the local sandbox's marker file), only the child's process
group is killed (every other process on the host is not the worker's to kill), and the memory
limit is the host's rlimit, so no out-of-memory count is read.
"""

from __future__ import annotations

import base64
import fcntl
import gc
import importlib
import importlib.util
import json
import os
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
                     "--timeout=60", "-q", "-rN", "test_warm_up.py"])
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


def fresh_workspace(overlay: dict[str, str]) -> None:
    clear(WORKSPACE)
    shutil.copytree(SRC, WORKSPACE, symlinks=True, dirs_exist_ok=True, copy_function=shutil.copy)
    for rel, text in overlay.items():
        path = os.path.normpath(os.path.join(WORKSPACE, rel))
        if not path.startswith(WORKSPACE + "/"):
            raise OSError(f"overlay path {rel!r} leaves the workspace")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


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


def child(args: list[str], r: int, w: int, proto: int, forget: list[str], base_path: list[str]) -> None:
    """Runs in the forked child: never returns."""
    rc = 1
    try:
        os.setpgid(0, 0)
        set_dumpable(1)  # as a fresh pytest would be
        if LOCAL:
            prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG: on the host, the child dies with the worker
        os.close(r)
        os.close(proto)  # the code under test must not write on the host's channel
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(w, 1)
        os.dup2(w, 2)
        os.close(null)
        os.close(w)
        try:  # the memory limit's killer picks the candidate, not the worker
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
        except OSError:
            pass
        os.chdir(WORKSPACE)
        sys.path[:] = [WORKSPACE, os.path.join(WORKSPACE, "src"), *base_path]  # as `python -m pytest`
        for name in forget:
            sys.modules.pop(name, None)  # imported again, as on the exec path
        if "random" in sys.modules:
            sys.modules["random"].seed()  # not the parent's state, the same for every child
        import pytest

        sys.argv = [os.path.join(os.path.dirname(pytest.__file__), "__main__.py"), *args]  # as `-m pytest`
        rc = int(pytest.main(args))
    except SystemExit as exc:
        rc = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)


def run(req: dict, proto: int, keep: set[int], forget: list[str], base_path: list[str]) -> dict:
    try:
        fresh_workspace(req.get("overlay") or {})
    except OSError as exc:
        return {"id": req["id"], "error": str(exc)[-300:]}
    clear(TMP)
    junit = req["junit"]
    if os.path.exists(junit):
        os.unlink(junit)
    oom0 = oom_kills()
    start = time.monotonic()
    deadline = start + float(req["timeout"])
    r, w = os.pipe()
    try:
        # fewer wake-ups for a test that floods its output; Linux's 1031: Python names it from 3.10 on
        fcntl.fcntl(r, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except OSError:
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        child(req["args"], r, w, proto, forget, base_path)
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
    seconds = time.monotonic() - start
    while not eof and select.select([r], [], [], 1.0)[0]:  # the rest of the output: its writers are gone
        data = os.read(r, 1 << 16)
        eof = not data
        tail = (tail + data)[-OUTPUT_LIMIT:]
    os.close(r)
    clear(TMP)
    code = os.waitstatus_to_exitcode(status)
    rc = 124 if timed_out else (128 - code if code < 0 else code)  # 128+N for signal N, as in sh
    data = None
    if os.path.exists(junit):
        with open(junit, "rb") as f:
            data = base64.b64encode(f.read()).decode()
    return {"id": req["id"], "rc": rc, "timed_out": timed_out, "oom_killed": oom_kills() > oom0,
            "seconds": round(seconds, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "output": bytes(tail[-OUTPUT_LIMIT:]).decode(errors="replace"), "junit": data}


def use_private(src: str, private: str) -> None:
    """The local sandbox's folders, in place of the container's."""
    global SRC, WORKSPACE, TMP, LOCAL
    private = os.path.realpath(private)
    if not os.path.isfile(os.path.join(private, MARKER)):
        sys.exit(f"test_worker: {private} is not a private folder of the local sandbox (no {MARKER})")
    SRC, WORKSPACE, TMP, LOCAL = os.path.realpath(src), os.path.join(private, "workspace"), \
        os.path.join(private, "tmp"), True
    if not (os.path.isdir(WORKSPACE) and os.path.isdir(TMP)):  # made before the start: PYTHONPATH names one
        sys.exit(f"test_worker: {private} lacks its workspace and tmp folders")


def main() -> None:
    if sys.argv[1:2] == ["--local"]:
        use_private(*sys.argv[2:4])
    elif not os.path.ismount(WORKSPACE):  # the container's tmpfs: anywhere else, /tmp is not ours to empty
        sys.exit(f"test_worker: {WORKSPACE} is not a mount point: not in the sandbox's container (use --local)")
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
    for line in sys.stdin.buffer:
        if line.strip():
            req = json.loads(line)
            req["args"] = [*startup, *req["args"]]
            out.write(json.dumps(run(req, proto, keep, forget, base_path)) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
