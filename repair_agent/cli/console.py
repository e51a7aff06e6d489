"""What every command shares: the stderr console, its log and warning lines, and how a command ends
(exit codes, errors, signals, a broken pipe)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import RepairAgentError


class PipeConsole(Console):
    """On a broken pipe rich exits 1 by itself; raise instead, so that `fix` can drop its scratch
    tree and exit as a broken pipe should (see broken_pipe)."""

    def on_broken_pipe(self) -> None:
        import errno
        import os

        self.quiet = True  # nothing more to write there
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


console = PipeConsole(stderr=True)
EXIT = {"fixed": 0, "no_failures": 0, "diagnosed": 0, "not_fixed": 1, "error": 3}


def log(msg: str) -> None:
    console.print(f"[dim]{msg}[/dim]", highlight=False)


def warn(msg: str) -> None:
    console.print(f"[yellow]warning:[/yellow] {escape(msg)}", highlight=False, soft_wrap=True)


def fail(exc: RepairAgentError) -> None:
    from ..redact import redact

    text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())  # one line, always
    console.print(f"[bold red]error:[/bold red] {escape(redact(text))}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cancelled CI job): unwinds like Ctrl-C, so every `with` in run_fix cleans up."""


def on_signals() -> None:
    """SIGINT and SIGTERM raise (once) in the main thread; a second signal during the cleanup that
    follows is ignored, so that the sandbox's containers are always removed."""
    import signal

    def handler(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated("SIGTERM") if signum == signal.SIGTERM else KeyboardInterrupt("SIGINT")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def interrupted(exc: KeyboardInterrupt, path: Path, run_dir: Optional[Path]) -> None:
    """Exit 130 (SIGINT) or 143 (SIGTERM) with the command that continues the run."""
    name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
    run_id = getattr(exc, "run_id", None)
    how = (f"continue with `repair-agent fix {path} --resume {run_id}"
           + (f" --run-dir {run_dir}`" if run_dir else "`") if run_id else "it stopped before the run started")
    console.print(f"[yellow]interrupted[/yellow] by {name}: {escape(how)}", highlight=False, soft_wrap=True)
    raise typer.Exit(143 if name == "SIGTERM" else 130)


def broken_pipe() -> None:
    """The reader went away (`| head`): exit 141 (128 + SIGPIPE, what the shell reports for a Unix
    tool the broken pipe killed) and say nothing, as nobody reads. The streams go to /dev/null
    first, so that the interpreter's last flush cannot fail a second time."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):  # a stream with no file descriptor
            pass
    raise typer.Exit(141)


def unexpected(exc: Exception) -> None:
    """An exception no layer turned into a RepairAgentError: still one line and a defined code (3)."""
    import errno
    import os

    from ..redact import redact

    if os.environ.get("REPAIR_AGENT_DEBUG"):
        raise exc
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    full = f"{exc} {getattr(exc, 'stderr', '') or ''}".lower()
    if getattr(exc, "errno", None) == errno.ENOSPC or "no space left" in full or "disk is full" in full:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        text = (f"no space left on the device{where}; free some space, or put the runs elsewhere with "
                "--run-dir DIR or REPAIR_AGENT_HOME")
    elif isinstance(exc, OSError):
        text = f"{exc.strerror or text}: {exc.filename}" if exc.filename else text
    else:
        text = f"internal error ({type(exc).__name__}: {text}); set REPAIR_AGENT_DEBUG=1 for the traceback"
    console.print(f"[bold red]error:[/bold red] {escape(redact(text))}", highlight=False, soft_wrap=True)
    raise typer.Exit(3)
