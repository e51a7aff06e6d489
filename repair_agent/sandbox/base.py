"""What every sandbox shares: the protocol, the pytest command, JUnit parsing, crash notes, and
the overlay (a candidate's files written over the tree for one run)."""

from __future__ import annotations

import contextlib
import shlex
import signal
import uuid
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path
from typing import Iterator, Protocol

from ..errors import BadInput
from ..state import TestCase, TestRun

# The scripts that run inside the sandbox (package data). A real folder, not a zip member: the
# Docker sandbox mounts it and the local one runs the scripts from it.
TOOLS_DIR = Path(resources.files(__package__) / "tools")
OUTPUT_LIMIT = 64 * 1024  # bytes of console output kept per run
DETAILS_LIMIT = 4000
CRASH = "[repair-agent sandbox]"


class Sandbox(Protocol):
    """Runs commands against one repository tree (the scratch copy)."""

    workdir: Path
    python: str  # the interpreter that has pytest + coverage, as the sandbox sees it

    def tool(self, name: str) -> str:
        """Path, as the sandbox sees it, of a script in TOOLS_DIR (`repair_agent/sandbox/tools/`)."""
        ...

    def run_tests(self, args: list[str], timeout: float = 300, per_test_timeout: int = 60,
                  overlay: dict[str, str] | None = None) -> TestRun:
        """pytest `args` on the tree, with `overlay` (relative path -> new text) written over it."""
        ...

    def run(self, cmd: list[str], timeout: float = 300) -> tuple[int, str]: ...

    def close(self) -> None: ...


def pytest_command(args: list[str], junit: str, per_test_timeout: int) -> list[str]:
    return ["-m", "pytest", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
            f"--junitxml={junit}", f"--timeout={per_test_timeout}", "-q", "-rN", *args]


def shell_args(test: str | list[str] | None) -> list[str]:
    """pytest arguments from a shell-quoted string; a list (a benchmark's, already split) as it is."""
    return list(test) if isinstance(test, list) else shlex.split(test) if test else []


def overlay_path(root: Path, rel: str) -> Path:
    """`root / rel`, refusing a path that leaves the tree (absolute, `..`, or .git)."""
    parts = Path(rel).parts
    if not rel or Path(rel).is_absolute() or ".." in parts or ".git" in parts:
        raise BadInput(f"overlay path {rel!r} is outside the repository")
    return root / rel


@contextlib.contextmanager
def overlaid(root: Path, overlay: dict[str, str] | None) -> Iterator[None]:
    """Write the overlay's files into `root` for the length of the block, then put back the
    original bytes (or remove the files and folders that did not exist)."""
    saved: list[tuple[Path, bytes | None]] = []
    made: list[Path] = []
    try:
        for rel, text in (overlay or {}).items():
            path = overlay_path(root, rel)
            saved.append((path, path.read_bytes() if path.is_file() else None))
            for parent in reversed(path.relative_to(root).parents[:-1]):
                if not (root / parent).exists():
                    (root / parent).mkdir()
                    made.append(root / parent)
            path.write_text(text, encoding="utf-8")
        yield
    finally:
        for path, data in reversed(saved):
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()


def read_junit(path: Path, returncode: int, timed_out: bool, duration: float, output: str) -> TestRun:
    """Turn pytest's JUnit XML (xunit1, which names each test's file) into a TestRun."""
    data = path.read_bytes() if path.exists() else None
    return junit_run(data, returncode, timed_out, duration, output)


def junit_run(data: bytes | None, returncode: int, timed_out: bool, duration: float, output: str,
              oom_killed: bool = False, memory: str = "") -> TestRun:
    """A TestRun from JUnit XML bytes. When pytest left no report, the output's last line says why
    (killed by a signal, by the out-of-memory killer, ...): `crash_note()` reads it back."""
    by_id: dict[str, TestCase] = {}
    if data:
        try:
            root = ET.fromstring(data)
        except ET.ParseError:
            root = None
        for tc in root.iter("testcase") if root is not None else []:
            case = _case(tc)  # a test whose teardown errors after its call failed has a second entry:
            first = by_id.setdefault(case["id"], case)  # one case a test, the first that went wrong
            if first["outcome"] in ("passed", "skipped") and case["outcome"] in ("failed", "error"):
                by_id[case["id"]] = case
    cases = list(by_id.values())
    if not cases and not timed_out and (oom_killed or returncode > 128 or returncode < 0
                                        or (data is None and returncode == 0)):
        output = output.rstrip("\n") + "\n" + _crash_line(returncode, oom_killed, memory) + "\n"
    elif oom_killed and not timed_out:
        output = output.rstrip("\n") + f"\n{CRASH} a process hit the memory limit ({memory}) and was killed\n"
    return TestRun(cases=cases, returncode=returncode, timed_out=timed_out,
                   duration_s=round(duration, 3), output_tail=output[-OUTPUT_LIMIT:])


def _crash_line(rc: int, oom_killed: bool, memory: str) -> str:
    if oom_killed:
        why = f"was killed by the out-of-memory killer (memory limit {memory or 'reached'})"
    elif rc > 128 or rc < 0:
        num = rc - 128 if rc > 128 else -rc
        try:
            name = signal.Signals(num).name
        except ValueError:
            name = f"signal {num}"
        why = f"was killed by {name}"
    else:
        why = f"exited with code {rc}"
    return f"{CRASH} pytest {why} before it reported any result"


def crash_note(run: TestRun | None) -> str:
    """The sandbox's own line about a crashed run ("" when the run ended normally)."""
    for line in reversed((run or {}).get("output_tail", "").strip().splitlines()[-3:]):
        if line.startswith(CRASH):
            return line[len(CRASH):].strip()
    return ""


def _case(tc: ET.Element) -> TestCase:
    file = tc.get("file") or ""
    classname, name = tc.get("classname") or "", tc.get("name") or ""
    module = file[:-3].replace("/", ".") if file.endswith(".py") else ""
    inner = classname[len(module):].lstrip(".") if module and classname.startswith(module) else ""
    parts = [file or classname, *(inner.split(".") if inner else []), name]
    node_id = "::".join(p for p in parts if p)
    if module and not classname and name == module:  # a module that failed to collect: pytest runs it by file
        node_id = file
    outcome, message, details = "passed", "", ""
    for child in tc:
        if child.tag in ("failure", "error", "skipped"):
            outcome = {"failure": "failed"}.get(child.tag, child.tag)
            message = (child.get("message") or "").splitlines()[0][:500] if child.get("message") else ""
            details = (child.text or "")[-DETAILS_LIMIT:]
            break
    try:
        seconds = round(float(tc.get("time") or 0), 4)
    except ValueError:
        seconds = 0.0
    return TestCase(id=node_id, outcome=outcome, message=message, details=details, seconds=seconds)


def _fresh_junit(results: Path) -> tuple[Path, str]:
    name = f"junit-{uuid.uuid4().hex[:8]}.xml"
    return results / name, name
