"""The report, the `analyze` command and the review notebook, end to end on a results folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from bench.analyze.sweep import load_sweep
from bench.report.build import analyze
from bench.report.charts import latency
from bench.report.charts.registry import drawn

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ["single", "pp2", "tp2", "spec_ngram", "my-experiment"]


def test_report_is_written_self_contained_with_every_variant(fake_results: Path) -> None:
    report = analyze(fake_results)
    assert report == fake_results / "report.html"
    text = report.read_text()
    assert all(v in text for v in VARIANTS)
    # The charts with something to show: one load level per variant, so no load chart.
    assert text.count("data:image/png;base64,") == 5
    assert "http://" not in text and "https://" not in text  # opens from disk, offline
    assert "torn: run.json unreadable" in text  # a broken run is named, not silently missing
    assert "0.25.0" in text and "abc123" in text  # provenance
    md = (fake_results / "summary.md").read_text()
    assert "| single | ok |" in md and "failed" in md
    for name in ("wall_clock", "utilization", "latency", "quality_speed", "speculative"):
        assert (fake_results / "charts" / f"{name}.png").stat().st_size > 1000
        assert (fake_results / "charts" / f"{name}.svg").exists()
    assert not (fake_results / "charts" / "load.png").exists()


def test_charts_with_nothing_to_show_are_left_out(fake_results: Path) -> None:
    (fake_results / "charts").mkdir()
    (fake_results / "charts" / "speculative.png").write_bytes(b"an earlier run's chart")
    for d in fake_results.iterdir():  # no variant speculates
        if (d / "run.json").exists() and d.name != "torn":
            edit = json.loads((d / "run.json").read_text())
            edit["server_metrics"] = {"available": True}
            (d / "run.json").write_text(json.dumps(edit))
    text = analyze(fake_results).read_text()
    assert "Speculative decoding" not in text and "Throughput and latency vs load" not in text
    assert not (fake_results / "charts" / "speculative.png").exists()


def test_a_failing_chart_is_named_in_the_report(fake_results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise ValueError("odd data")

    monkeypatch.setattr(latency, "latency_chart", broken)
    text = analyze(fake_results).read_text()
    assert "chart &#x27;latency&#x27; failed: ValueError: odd data" in text
    assert text.count("data:image/png;base64,") == 4
    assert not (fake_results / "charts" / "latency.png").exists()


def test_analyze_never_raises_on_odd_data(fake_results: Path) -> None:
    (fake_results / "pp2" / "telemetry.csv").write_text("time,device\n1,gpu0\n\x00garbage,\n")
    (fake_results / "single" / "requests.jsonl").write_text('{"question_id": "q1"}\n{"torn')
    text = analyze(fake_results).read_text()
    assert "pp2" in text
    assert analyze(fake_results / "nothing-here").exists()


def test_cli_analyze_with_compare(fake_results: Path, fake_results_other: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "analyze", str(fake_results), "--compare", str(fake_results_other)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    # The fixture has a torn run.json: the report is written and says so, and the exit status is bad input.
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("torn/run.json")
    assert "report:" in proc.stdout and "single" in proc.stdout
    charts = fake_results / "charts"
    assert (charts / "compare_other_fake_wall_clock.png").exists()  # both folders are called "fake"
    assert "Compared: " in (fake_results / "report.html").read_text()


def test_cli_analyze_missing_folder(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "analyze", str(tmp_path / "nope")], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 2 and "no results folder" in proc.stderr


def test_review_notebook_executes(results_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BENCH_RESULTS", str(results_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("BENCH_HISTORY", raising=False)  # the default: the repository's reference store, found
    nb = nbformat.read(ROOT / "notebooks" / "review.ipynb", as_version=4)
    code = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    # the public API only: bench's internals may move without breaking users' notebooks
    assert "import bench" in code and "from bench" not in code and "bench.analyze" not in code
    # from a temporary folder, not notebooks/: the notebook finds its defaults itself
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    # every chart the report draws for this folder (from the same chart table), and the history section's two
    # trends (tok/s, TPOT) of the reference store
    charts = [c.name for c in drawn(load_sweep(results_dir))]
    assert {"wall_clock", "utilization", "latency", "quality_speed", "speculative"} <= set(charts)
    assert sum("image/png" in o.get("data", {}) for o in outputs) == len(charts) + 2
    assert str(results_dir.resolve()) in "".join(o.get("text", "") for o in outputs)


def test_a_compared_folder_named_with_dots_keeps_every_chart_apart(fake_results: Path, tmp_path: Path) -> None:
    other = tmp_path / "v0.6.3"
    shutil.copytree(fake_results, other)
    analyze(fake_results, compare=other)
    names = {p.name for p in (fake_results / "charts").glob("compare_v0.6.3_*.png")}
    assert "compare_v0.6.3_wall_clock.png" in names and len(names) >= 3  # not all one compare_v0.6.png
