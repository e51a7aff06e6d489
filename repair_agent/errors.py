"""Errors that end a run, each with the exit code the CLI maps it to."""


class RepairAgentError(Exception):
    exit_code = 3


class BadInput(RepairAgentError):
    """The user's input is wrong: a missing path, not a git repo, no tests collected."""

    exit_code = 2


class EnvFault(BadInput):
    """The tests cannot run for a reason outside the code (a missing module or plugin, a file that
    does not parse): no fix can help, so the run ends before any model is asked."""


class SandboxError(RepairAgentError):
    """The sandbox could not run (no engine, image build failed, container died)."""

    exit_code = 3


class DependencyError(SandboxError):
    """The sandbox's dependency image could not be built: pip failed on the repository's requirements
    (or on the project itself). Exit 3, with pip's last lines."""


class ModelError(RepairAgentError):
    """The model server could not be reached or kept failing after retries."""

    exit_code = 3


class PromptTooLong(RepairAgentError):
    """A prompt and the answer it asks for do not fit the model's context window: that request's
    fault, not the server's. The nodes that ask the model catch it (a refine round ends the loop, an
    infill hole is skipped, an explanation is written from the traces); one raised elsewhere is the
    task's error, and a benchmark goes on (a ModelError ends the run: every later task would fail
    the same way)."""

    exit_code = 3
