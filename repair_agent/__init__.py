"""repair-agent: an autonomous debug-and-repair agent for Python repositories."""

__version__ = "0.1.0"
