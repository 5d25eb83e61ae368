"""History store, change points and report: unit tests on generated series, and the real nightly history."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bench.core.files import read_run, run_dirs
from bench.core.records import RUN_FILE
from bench.regress import history

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results" / "reference"
HISTORY = REFERENCE / "history"  # the real nightlies: README.md there says how they ran


def _night(src: Path, dst: Path, started_at: str) -> Path:
    """A copy of a real results folder's run.json files that claims another start time: another night."""
    for d in run_dirs(src):
        data = json.loads((d / RUN_FILE).read_text())
        data["started_at"] = data["provenance"]["time"] = started_at
        (dst / d.name).mkdir(parents=True)
        (dst / d.name / RUN_FILE).write_text(json.dumps(data))
    return dst


def test_run_points_of_a_real_sweep() -> None:
    points = history.run_points(REFERENCE / "cpu")
    assert set(points["variant"]) == {"single", "spec_ngram", "spec_draft", "pp2", "awq", "tp2"}
    ok = points[points["status"] == "ok"]
    assert ok["value"].notna().all() and (ok["low"] <= ok["value"]).all() and (ok["value"] <= ok["high"]).all()
    assert points[points["variant"] == "tp2"]["value"].isna().all()  # failed: kept, with no figure
    one = ok[(ok["variant"] == "single") & (ok["metric"] == "output_tok_per_s")].iloc[0]
    assert one["value"] == pytest.approx(11.63, abs=0.01)  # summary.csv's figure for this run
    assert one["vllm_version"] == "0.32.0" and one["hardware"] == "AMD EPYC, 2 cores" and one["n_passes"] == 1
    assert points["run_key"].nunique() == 1


def test_add_twice_keeps_one_file(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert history.add(REFERENCE / "cpu", store) is not None
    assert history.add(REFERENCE / "cpu", store) is None
    assert len(list((store / history.RUNS).iterdir())) == 1
    assert len(history.load(store)) == len(history.run_points(REFERENCE / "cpu"))


def _add_at_once(results_dir: Path, store: Path, barrier: Any) -> None:
    barrier.wait()  # every process past its imports, so the adds overlap
    history.add(results_dir, store)


def test_processes_adding_at_once_neither_corrupt_nor_duplicate(tmp_path: Path) -> None:
    a = _night(REFERENCE / "cpu", tmp_path / "a", "2026-11-27T02:23:00+00:00")
    b = _night(REFERENCE / "cpu", tmp_path / "b", "2026-11-28T02:23:00+00:00")
    store = tmp_path / "store"
    ctx = multiprocessing.get_context("fork")  # separate processes, as two jobs would be; fork starts fast
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_add_at_once, args=(d, store, barrier)) for d in (a, a, b, b)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    files = sorted(p.name for p in (store / history.RUNS).iterdir())
    assert len(files) == 2 and all(f.endswith(".parquet") for f in files)  # no temp file left behind
    df = history.load(store)
    assert len(df) == 2 * len(history.run_points(a)) and df["run_key"].nunique() == 2


def test_change_indices_finds_a_step_and_no_step_in_noise() -> None:
    rng = np.random.default_rng(7)
    noise = 20 + rng.normal(0, 1, 16)
    assert history.change_indices(noise) == []
    step = noise.copy()
    step[9:] -= 5
    assert history.change_indices(step) == [9]
    assert history.change_indices(step[:5]) == []  # too few nights to say anything


def test_a_series_never_crosses_hardware(tmp_path: Path) -> None:
    # 12 nights alternating between two machines whose speeds differ by 2x: two flat series, no change.
    store = tmp_path / "store"
    for n in range(12):
        d = _night(REFERENCE / "cpu", tmp_path / f"n{n}", f"2026-11-{n + 1:02d}T02:23:00+00:00")
        for run_dir in run_dirs(d):
            data = json.loads((run_dir / RUN_FILE).read_text())
            data["provenance"]["cpu"] = "Intel Xeon" if n % 2 else "AMD EPYC"
            for t in data["trials"]:
                t["output_tok_per_s"] = (20.0 if n % 2 else 10.0) * (1 + 0.01 * (n % 3))
            (run_dir / RUN_FILE).write_text(json.dumps(data))
        history.add(d, store)
    df = history.load(store)
    tok = df[(df["metric"] == "output_tok_per_s") & (df["variant"] == "single")]
    assert sorted(k[1] for k, _ in history.series(tok)) == ["AMD EPYC, 2 cores", "Intel Xeon, 2 cores"]
    assert [c for c in history.find_changes(tok)] == []


def _change(index: int, worse: bool | None) -> history.ChangePoint:
    return history.ChangePoint("m", "hw", "v", "output_tok_per_s", 1.0, index, "", "", 1, 1, 0, 0, 0, 0.001, worse)


def test_exit_status_follows_the_newest_change_of_each_series() -> None:
    assert history.exit_status([]) == 0
    assert history.exit_status([_change(5, True)]) == 1  # worse, and nothing after it
    assert history.exit_status([_change(5, True), _change(9, False)]) == 0  # fixed since
    assert history.exit_status([_change(5, False), _change(9, True)]) == 1
    assert history.exit_status([_change(5, None)]) == 0  # a metric with no better direction


def test_provenance_changes_are_named() -> None:
    old = pd.Series({"vllm_version": "0.32.0", "config_hash": "fc723b7f9ca925ba", "torch_version": "2.13.0+cpu"})
    new = pd.Series({"vllm_version": "0.33.0", "config_hash": "d504107c687f1d64", "torch_version": "2.13.0+cpu"})
    assert history.provenance_changes(old, new) == ["vLLM 0.32.0 -> 0.33.0", "config hash fc723b7f -> d504107c"]


def test_missing_folder_and_empty_store_are_one_line(tmp_path: Path) -> None:
    for args in (["add", str(tmp_path / "nope")], ["report", "--store", str(tmp_path / "empty")]):
        proc = subprocess.run(
            [sys.executable, "-m", "bench", "history", *args], capture_output=True, text=True, cwd=ROOT
        )
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "bench: error: no" in proc.stderr


# ---- the real history (results/reference/history/) -----------------------------------------------


def _nights() -> list[tuple[pd.Timestamp, bool]]:
    """(run time, speculation on?) of each committed night, read from its run.json, not from the store."""
    out = []
    for d in sorted((HISTORY / "nights").iterdir()):
        run = read_run(d / "spec_ngram")
        assert run is not None
        out.append((pd.Timestamp(run.started_at), run.spec.server.speculative_config is not None))
    return out


def test_real_history_change_point_is_where_speculation_went_off() -> None:
    nights = _nights()
    first_off = next(t for t, on in nights if not on)
    assert sum(on for _, on in nights) >= 7 and len(nights) >= 14
    df = history.load(HISTORY / "store")
    assert df["run_key"].nunique() == len(nights)
    tok = [c for c in history.find_changes(df) if c.metric == "output_tok_per_s"]
    assert len(tok) == 1, history.changes_table(tok)
    change = tok[0]
    assert pd.Timestamp(change.first_bad) == first_off
    assert change.worse and change.step_high < 0
    assert any(c.startswith("config hash") for c in change.changes)
    assert history.exit_status(history.find_changes(df)) == 1  # the newest night sits after it


def test_real_history_before_the_change_has_no_change_point() -> None:
    nights = _nights()
    first_off = next(t for t, on in nights if not on)
    df = history.load(HISTORY / "store")
    before = df[df["run_time"] < first_off]
    assert before["run_key"].nunique() >= 7
    changes = history.find_changes(before)
    assert changes == [], history.changes_table(changes)
    assert history.exit_status(changes) == 0


def test_report_of_the_real_history(tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(HISTORY / "store" / history.RUNS, store / history.RUNS)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "history", "report", "--store", str(store)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 1, proc.stderr  # a standing regression: what a CI job fails on
    assert "spec_ngram" in proc.stdout and "config hash" in proc.stdout
    page = (store / history.REPORT_DIR / "index.html").read_text()
    assert "Change points" in page and page.count("<img") == len(list((store / "report" / "charts").glob("*.png")))
    assert (store / "report" / "charts" / "spec_ngram-output_tok_per_s.png").stat().st_size > 10_000
