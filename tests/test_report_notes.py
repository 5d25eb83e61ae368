"""The report's notes at a glance: no empty quality chart for random weights, cores starved outside the server,
the summary folded to a laptop's width."""

from __future__ import annotations

from pathlib import Path

from bench.analyze.sweep import load_sweep
from bench.core.config import DatasetConfig, LoadConfig, RequestConfig, ServerConfig, SloConfig
from bench.core.files import write_run
from bench.core.records import OK, Provenance, RunResult, ServerInfo
from bench.core.repeats import Repeats
from bench.core.runspec import RunSpec
from bench.core.tracing import TracingConfig
from bench.report.build import analyze
from bench.report.charts.registry import drawn
from bench.report.notes import quality_chart_skipped, starved

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"


def _run(folder: Path, variant: str, outside_s: float, tp: int = 1) -> None:
    (folder / variant).mkdir()
    write_run(
        folder / variant,
        RunResult(
            variant=variant, status=OK, wall_clock_s=10.0, replay_s=10.0,
            server_metrics={"outside_engine_e2e_s": outside_s},
            server=ServerInfo(engine="cpu"),
            spec=RunSpec(variant, "cpu", ServerConfig(name=variant, model="m", tensor_parallel_size=tp),
                         RequestConfig(), DatasetConfig(path="qa.json"), LoadConfig(), SloConfig(), Repeats(),
                         TracingConfig()),
            provenance=Provenance(cpu_count=2, engine="cpu"),
        ),
    )  # fmt: skip


def test_a_variant_starved_of_cores_outside_the_server_is_named(tmp_path: Path) -> None:
    _run(tmp_path, "single", 0.003)
    _run(tmp_path, "tp2", 0.164, tp=2)
    _run(tmp_path, "spec_ngram", 0.004)  # a little more than single: no note
    [note] = starved(tmp_path)
    assert note.startswith("tp2: 164 ms a request outside the server against 3 ms for single")
    assert "2-core CPU" in note and "2 worker" in note


def test_no_starvation_note_without_the_baselines_figure(tmp_path: Path) -> None:
    _run(tmp_path, "tp2", 0.164, tp=2)
    assert starved(tmp_path) == []


def test_random_weights_everywhere_leave_the_quality_chart_out_and_say_why() -> None:
    shape = REFERENCE / "gpu-h100x2" / "parallel"  # single, tp2, pp2 all served with --load-format dummy
    why = quality_chart_skipped(shape)
    assert why and "random weights" in why
    assert "quality_speed" not in {c.name for c in drawn(load_sweep(shape))}
    real = REFERENCE / "cpu"
    assert quality_chart_skipped(real) is None
    assert "quality_speed" in {c.name for c in drawn(load_sweep(real))}


def test_report_says_it_first_and_folds_the_summary(tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(REFERENCE / "gpu-h100x2" / "parallel", tmp_path / "parallel"))
    text = analyze(copy).read_text(encoding="utf-8")
    assert text.index("Read this first") < text.index("<h2>Summary</h2>")
    assert "Quality vs speed is not drawn" in text
    compact, folded = text.split("<details>", 1)[0], text.split("<details>", 1)[1]
    summary = compact.split("<h2>Summary</h2>", 1)[1]
    assert "TTFT p50" not in summary and "TTFT p50" in folded.split("</details>", 1)[0]
