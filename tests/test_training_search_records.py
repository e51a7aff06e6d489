"""A fix found by the search becomes a training record shaped as the agent's infill prompt.

Real runs: `repair-agent fix` on the wrong_index fixture, tests in Docker. The mutation run needs
no model. The infill run's model is a SCRIPTED server on loopback (tests/scripted_server.py) named
like a Qwen model, so the agent sends the qwen2.5-coder profile's fill-in-the-middle prompt: the
server records that prompt, and the exported record must hold exactly it; its answers (the fill,
then the explanation) drive control flow only.
"""

from __future__ import annotations

import json
import subprocess

from helpers import CLI
from scripted_server import ScriptedServer

CAUSE = "The function returns items[2], the third element, where the test expects the second."
EXPLANATION = (f"[MONOLOGUE]\n### Execution Simulation\nsecond([4, 5, 6]) returns items[2], which is 6.\n\n"
               f"### Root Cause Analysis\n{CAUSE}\n[/MONOLOGUE]\n")


def fix(repo, runs_root, *args) -> dict:
    proc = subprocess.run([*CLI, "fix", str(repo), "--run-dir", str(runs_root), "--json", str(runs_root / "r.json"),
                           *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads((runs_root / "r.json").read_text())


def export(tmp_path, *run_dirs) -> tuple[list[dict], str]:
    out = tmp_path / "data.jsonl"
    proc = subprocess.run([*CLI, "traces", "export", *map(str, run_dirs), "--out", str(out)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    said = " ".join((proc.stdout + proc.stderr).split())
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()], said


def test_mutation_and_infill_fixes_become_the_agents_infill_prompt(make_repo, tmp_path, docker_ready):
    repo = make_repo("wrong_index")
    fill = ["    return items[1]"]  # the first request is the client's log-probability probe
    with ScriptedServer([fill, fill, [EXPLANATION], [EXPLANATION]], model="qwen2.5-coder-scripted") as srv:
        infilled = fix(repo, tmp_path / "infill-runs", "--strategies", "infill", "--base-url", srv.base_url,
                       "--infill-samples", "1", "--search-lines", "1")
        sent = [r["body"] for r in srv.requests]
    assert infilled["status"] == "fixed" and infilled["source"] == "infill"
    asked_fill = next(r for r in sent if r.get("n"))
    fim = asked_fill["prompt"]  # what the agent sent to /v1/completions for the masked line
    assert fim.startswith("<|fim_prefix|>") and "# buggy: return items[2]" in fim

    mutated = fix(repo, tmp_path / "mutate-runs", "--strategies", "mutate")
    assert mutated["status"] == "fixed" and mutated["source"] == "mutate"
    (rec,), said = export(tmp_path, tmp_path / "mutate-runs" / mutated["run_id"])
    assert "1 record(s) from 1 run(s)" in said
    # the mutation's fix is taught as the fill of the hole the infill source would have asked about
    assert rec["prompt"] == fim and rec["completion"] == "    return items[1]\n"
    assert rec["metadata"]["kind"] == "infill" and rec["metadata"]["fix_source"] == "mutate"
    assert rec["metadata"]["profile"] == "qwen2.5-coder" and rec["metadata"]["mask"] == "line"
    assert rec["metadata"]["file"] == "mylist/core.py" and rec["metadata"]["line"] == 10

    records, _ = export(tmp_path, tmp_path / "infill-runs" / infilled["run_id"])
    by_kind = {r["metadata"]["kind"]: r for r in records}
    assert by_kind["infill"]["prompt"] == fim and by_kind["infill"]["completion"] == "    return items[1]\n"
    assert by_kind["infill"]["metadata"]["fix_source"] == "infill"
    if infilled["explanation"]["replaced"]:  # the checks set the answer aside: it teaches nothing
        assert "explain" not in by_kind
    else:
        explain = by_kind["explain"]
        asked = next(r for r in sent if "messages" in r)
        assert explain["prompt"] == asked["messages"][:len(explain["prompt"])]
        assert explain["prompt"][-1]["role"] == "user" and CAUSE in explain["completion"]

    # both runs at once: the same hole and fill twice is one record
    records, said = export(tmp_path, tmp_path / "mutate-runs", tmp_path / "infill-runs")
    assert sum(r["metadata"]["kind"] == "infill" for r in records) == 1 and "1 duplicate(s)" in said
