"""`repair-agent bench bugsinpy --ray`: BugsInPy's bugs as Ray tasks, on the local Ray that a bare
`--ray` starts for the run (and stops), through the real command line and the real Docker sandbox.

The BugsInPy folder and its project are the small ones test_bugsinpy.py makes (no BugsInPy data, no
network, no model: the mutation search alone): two bugs of a dev-set project (named thefuck, one that
reproduces, one that does not) and one of a held-out project (black), which the run must leave out.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_bugsinpy import bugsinpy, tools_only_image  # noqa: F401 - bugsinpy is a fixture
from test_ray_cluster import records, requires_ray, ray_pids, stopped, this_checkout_everywhere  # noqa: F401


@pytest.mark.slow
@requires_ray
def test_bench_bugsinpy_on_ray_runs_the_dev_projects_bugs_as_threads_do(bugsinpy, tmp_path, docker_ready):  # noqa: F811
    data, repos, _ = bugsinpy
    (data / "projects/thefuck/bugs/1/requirements.txt").write_text("pytest==5.4.2\n")  # no install: no network
    out = tmp_path / "out"
    before = ray_pids()
    with tools_only_image(tmp_path):
        proc = subprocess.run([sys.executable, "-m", "repair_agent", "bench", "bugsinpy", "--data", str(data),
                               "--repos", str(repos), "--out", str(out), "--strategies", "mutate",
                               "--sandbox", "docker", "--image", "repair-agent/base:bookworm", "--workers", "2",
                               "--ray"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stopped(before), "the local Ray that the run started is still there"
    recs = {r["task_id"]: r for r in records(out)}
    assert sorted(recs) == ["thefuck-1", "thefuck-2"]  # the held-out project's bug is not run
    one, two = recs["thefuck-1"], recs["thefuck-2"]
    assert one["status"] == "fixed" and one["verified"] is True and "+    return a + b" in one["patch"]
    assert one["correct"] is True and one["environment"]["reproduced"] is True
    assert two["status"] == "not_reproduced" and two["error"] == "passes on the buggy code: tests/test_calc.py::test_double"
    assert all(r["node"] and r["attempts"] == 1 for r in recs.values())  # each ran as a Ray task, once
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["ray"] == "local" and summary["fixed"] == 1 and summary["not_reproduced"] == 1
