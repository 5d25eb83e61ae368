"""bench.load / bench.compare / bench.history against the committed reference folders, and the notebook on them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import bench
from bench.core.records import RunResult

ROOT = Path(__file__).resolve().parents[1]
CPU = ROOT / "results" / "reference" / "cpu"


def test_import_bench_stays_light() -> None:
    code = "import sys, bench; bench.__version__; print(sorted({'pandas', 'matplotlib', 'hydra'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_load_gives_typed_runs_and_the_reports_tables() -> None:
    r = bench.load(CPU)
    assert set(r.runs) == {"single", "awq", "pp2", "spec_draft", "spec_ngram", "tp2"}
    assert all(isinstance(run, RunResult) for run in r.runs.values())
    assert r.runs["tp2"].status == "failed" and "attention heads" in (r.runs["tp2"].reason or "")
    # each run with its RunSpec: what it measured, as resolved (migrated from the stored schema)
    specs = {name: run.spec for name, run in r.runs.items()}
    assert all(spec is not None for spec in specs.values())
    assert specs["tp2"].server.tensor_parallel_size == 2 and specs["single"].server.tensor_parallel_size == 1
    assert specs["spec_ngram"].server.speculative_config and specs["single"].engine == "cpu"
    summary = r.summary()
    assert set(summary["variant"]) == set(r.runs)
    assert summary.set_index("variant").loc["single", "speedup"] == pytest.approx(1.0)
    requests = r.requests()
    ok = [name for name, run in r.runs.items() if run.status == "ok"]
    assert set(requests["variant"]) == set(ok)
    assert len(requests) == sum(r.runs[name].n_requests for name in ok)
    trials = r.trials()
    assert set(trials["variant"]) == set(ok) and "output_tok_per_s" in trials
    assert {title for title, _ in r.charts()} and r.errors == []


def test_load_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no results folder"):
        bench.load(tmp_path / "nope")


def test_compare_gives_the_verdict_table_as_records() -> None:
    rows = bench.compare(CPU, CPU)
    assert rows and all({"variant", "metric", "verdict", "change_pct"} <= set(row) for row in rows)
    # a folder against itself: nothing regresses; tp2 failed on both sides, so it is missing, not noise
    assert not [row for row in rows if row["verdict"] == "regression"]
    assert {row["verdict"] for row in rows if row["variant"] == "tp2"} == {"missing"}
    timed = [row for row in rows if row["metric"] == "output_tok_per_s" and row["variant"] == "single"]
    assert timed and timed[0]["change_pct"] == pytest.approx(0.0)


def test_history_reads_the_reference_store() -> None:
    hist = bench.history(ROOT / "results" / "reference" / "history" / "store")
    assert hist.table["run_key"].nunique() >= 16 and hist.changes
    assert hist.exit_status in (0, 1) and not hist.changes_table().empty


def test_review_notebook_runs_from_any_folder_on_its_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BENCH_RESULTS", "BENCH_HISTORY", "BENCH_BASELINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(ROOT / "notebooks" / "review.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert str(CPU) in text and "6 runs" in text
    charts = len(list(bench.load(CPU).charts()))
    assert sum("image/png" in o.get("data", {}) for o in outputs) == charts + 2
