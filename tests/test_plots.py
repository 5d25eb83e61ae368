"""Every chart renders on awkward sweeps: a failed variant, a partial run, runs without telemetry."""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from bench.analyze.sweep import Sweep, load_sweep, stack
from bench.report.charts import common, devices, latency, overview, speculative
from bench.report.charts.registry import drawn


def texts(fig: Figure) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(Text))


def figures(sweep: Sweep) -> dict[str, Callable[[], Figure]]:
    """The charts the report draws for this sweep, by name, from the chart table."""
    return {c.name: partial(c.draw, sweep, "single") for c in drawn(sweep)}


def render(draw: Callable[[], Figure]) -> Figure:
    fig = draw()
    assert isinstance(fig, Figure)
    fig.savefig(io.BytesIO(), format="png")  # drawing is where layout and text errors surface
    return fig


@pytest.fixture
def sweep(fake_results: Path) -> Sweep:
    s = load_sweep(fake_results)
    assert not [e for e in s.errors if "torn" not in e]
    return s


@pytest.mark.parametrize("name", ["wall_clock", "utilization", "latency", "quality_speed", "speculative"])
def test_each_chart_renders_on_an_awkward_sweep(sweep: Sweep, name: str) -> None:
    render(figures(sweep)[name])


def test_failed_and_partial_variants_are_shown_not_dropped(sweep: Sweep) -> None:
    text = texts(render(lambda: overview.wall_clock_chart(sweep.summary)))
    assert "failed: the model has 9 attention heads" in text
    assert "partial (4 of 8 requests)" in text
    assert "baseline" in text and "0.67x" in text  # pp2 took 90 s against single's 60 s


def test_runs_without_telemetry_say_so(sweep: Sweep) -> None:
    text = texts(render(lambda: devices.utilization_chart(sweep.timeline, sweep.summary)))
    assert text.count("no telemetry") == 2  # spec_ngram (partial) and tp2 (failed)
    assert "GPU util % (NVML)" in text and "CPU % (psutil; 100 = one core)" in text
    assert "gpu1 · mean" in text


def test_utilization_time_axis_starts_at_the_first_request(sweep: Sweep) -> None:
    pp2 = sweep.timeline[sweep.timeline["variant"] == "pp2"]
    assert pp2["t_s"].min() == pytest.approx(0.0)


def test_latency_and_quality_name_what_they_leave_out(sweep: Sweep) -> None:
    assert "not shown: tp2" in texts(render(lambda: latency.latency_chart(sweep.requests, sweep.summary)))
    quality = texts(render(lambda: overview.quality_speed_chart(sweep.summary)))
    assert "not plotted: tp2" in quality and "spec_ngram (partial)" in quality


def test_speculative_chart_without_speculative_variants(sweep: Sweep) -> None:
    summary = sweep.summary[sweep.summary["variant"] != "spec_ngram"]
    assert "no speculative variants in this sweep" in texts(render(lambda: speculative.speculative_chart(summary)))
    assert "42%" in texts(render(lambda: speculative.speculative_chart(sweep.summary)))


def test_charts_of_an_empty_folder(tmp_path: Path) -> None:
    empty = load_sweep(tmp_path)
    for draw in figures(empty).values():
        render(draw)
    for draw in figures(Sweep("x", tmp_path, *[pd.DataFrame()] * 4)).values():
        render(draw)


def test_comparison_charts_render_both_sweeps(fake_results: Path, fake_results_other: Path) -> None:
    both = stack([load_sweep(fake_results, name="a"), load_sweep(fake_results_other, name="b")])
    for draw in figures(both).values():
        render(draw)
    text = texts(render(lambda: overview.wall_clock_chart(both.summary)))
    assert "single · a" in text and "single · b" in text


def test_variant_colours_are_fixed_and_stable() -> None:
    assert common.variant_color("single") == common.KNOWN_COLORS["single"]
    assert len(set(common.KNOWN_COLORS.values())) == len(common.KNOWN_COLORS)
    assert common.variant_color("my-experiment") == common.variant_color("my-experiment")
    assert common.variant_color("my-experiment") != common.FAILED_COLOR
