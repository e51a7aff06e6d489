"""Run records: one JSONL line per node event, flushed as the graph goes, so nothing is lost.

The same record format serves `fix`, benchmarks (one run per task) and training-data export.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path

from .redact import redact


def default_runs_root() -> Path:
    home = os.environ.get("REPAIR_AGENT_HOME")
    base = Path(home) if home else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "repair-agent"
    return base / "runs"


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


class RunRecorder:
    """Appends `{"t", "run_id", "event", ...}` lines to `records.jsonl` in the run directory."""

    def __init__(self, run_dir: Path, run_id: str):
        self.run_dir = Path(run_dir)
        self.run_id = run_id
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "records.jsonl"

    def write(self, event: str, **data) -> None:
        line = json.dumps({"t": round(time.time(), 3), "run_id": self.run_id, "event": event, **data},
                          default=str)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(redact(line) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
