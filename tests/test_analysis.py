"""Pure analysis functions on hand-made tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.console import time_split


def test_time_split_says_how_much_of_a_sweep_went_to_starting_and_stopping_servers() -> None:
    table = pd.DataFrame(
        {"startup_s": [50.0, 110.0, None], "shutdown_s": [5.0, 5.0, None], "replay_s": [20.0, 10.0, None]}
    )  # the third variant failed before its server started
    assert time_split(table) == "server time: start-up 160 s, replay 30 s, shutdown 10 s (85% starting and stopping)"


def test_time_split_of_runs_that_never_started_a_server_is_empty() -> None:
    assert time_split(pd.DataFrame({"startup_s": [None], "replay_s": [None]})) == ""


def test_a_run_with_failed_requests_never_reads_as_plain_ok():
    from bench.report.console import format_summary

    # An older run.json can say ok with failed requests; bench now records those as partial.
    table = pd.DataFrame(
        {"variant": ["single", "old"], "status": ["ok", "ok"], "n_failed": [0, 3], "reason": [None, None]}
    )
    lines = format_summary(table).splitlines()
    assert lines[1].split()[:2] == ["single", "ok"] and "ok, 3 failed" in lines[2]


def test_startup_phases_add_up_every_start_of_a_sweep_by_phase(tmp_path) -> None:
    import json

    from bench.report.console import startup_phases

    runs = {"a": [{"importing vLLM": 30.0, "compiling": 10.0}], "b": [{"importing vLLM": 20.0}, {}]}
    for name, phases in runs.items():
        (tmp_path / name).mkdir()
        starts = [{"status": "ok", "startup_phases_s": p} for p in phases]
        (tmp_path / name / "run.json").write_text(json.dumps({"variant": name, "status": "ok", "starts": starts}))
    expected = "start-up by phase over 2 starts: importing vLLM 50 s (83%), compiling 10 s (17%)"
    assert startup_phases(tmp_path) == expected


def test_the_summary_says_when_f1_means_nothing() -> None:
    from bench.report.console import quality_note, random_weights

    ref = Path(__file__).resolve().parents[1] / "results" / "reference"
    # The 8B-shaped model of the two-GPU reference ran with --load-format dummy; the CPU reference is real.
    assert random_weights(ref / "gpu-h100x2" / "parallel") == ["pp2", "single", "tp2"]
    assert "random weights" in quality_note(ref / "gpu-h100x2" / "parallel")
    assert random_weights(ref / "cpu") == [] and quality_note(ref / "cpu") == ""
