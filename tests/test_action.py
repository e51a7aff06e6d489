"""The GitHub Action: each input reaches the `ci` command line as the flag `ci` knows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ACTION = Path(__file__).resolve().parents[1] / "action.yml"


def test_every_input_is_used_and_min_confidence_becomes_the_flag():
    action = yaml.safe_load(ACTION.read_text())
    script = "\n".join(step.get("run", "") for step in action["runs"]["steps"])
    env = {k: v for step in action["runs"]["steps"] for k, v in (step.get("env") or {}).items()}
    for name in action["inputs"]:
        if name in ("python-version", "github-token"):  # used by the set-up steps and as GITHUB_TOKEN
            continue
        var = "INPUT_" + name.upper().replace("-", "_")
        assert f"inputs.{name}" in env.get(var, ""), name
        assert f"${var}" in script or f'"${var}"' in script, name
    assert action["inputs"]["min-confidence"]["default"] == "high"
    assert '--min-confidence "$INPUT_MIN_CONFIDENCE"' in script
    help_text = subprocess.run([sys.executable, "-m", "repair_agent", "ci", "--help"], capture_output=True,
                               text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}).stdout
    assert re.search(r"--min-confidence\b", help_text)
