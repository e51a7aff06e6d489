"""`repair-agent bench`'s flags reach the settings each task runs with (the harness itself is
tests/test_bench_runner.py's)."""

from __future__ import annotations

from typer.testing import CliRunner

from repair_agent.bench import report, runner
from repair_agent.cli import app


def bench_settings(monkeypatch, tmp_path, *flags):
    seen = {}

    def run_benchmark(tasks, settings, out, **kw):
        seen["settings"] = settings
        return {}

    monkeypatch.setattr(runner, "run_benchmark", run_benchmark)
    monkeypatch.setattr(report, "print_summary", lambda *a, **kw: None)
    res = CliRunner().invoke(app, ["bench", "quixbugs", "--ids", "gcd", "--out", str(tmp_path), *flags])
    assert res.exit_code == 0, res.output
    return seen["settings"]


def test_per_test_timeout_is_a_flag_with_default_5(monkeypatch, tmp_path):
    assert bench_settings(monkeypatch, tmp_path).per_test_timeout_s == 5
    assert bench_settings(monkeypatch, tmp_path, "--per-test-timeout", "20").per_test_timeout_s == 20
    help_text = CliRunner().invoke(app, ["bench", "quixbugs", "--help"], env={"COLUMNS": "200"}).output
    assert "--per-test-timeout" in help_text and "default: 5" in help_text
