"""PNG and SVG output: every chart of the chart table that applies, one file each, a failure kept per chart."""

from __future__ import annotations

import io
import traceback
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from bench.analyze.sweep import Sweep
from bench.core.errors import LinkError
from bench.core.files import make_dir, write_bytes
from bench.report.charts.registry import CHARTS, ChartSpec, drawn
from bench.report.contents import Chart

CHARTS_DIR = "charts"
DPI = 120


def png(fig: Figure, dpi: int = DPI) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def render_charts(sweep: Sweep, charts_dir: Path, baseline: str = "single", prefix: str = "") -> list[Chart]:
    """Each chart as charts_dir/<prefix><name>.png and .svg; a chart that fails is reported, its old files removed."""
    make_dir(charts_dir)  # a `charts` link to a user's folder would receive the charts
    shown = drawn(sweep, baseline)
    for spec in CHARTS:
        if spec not in shown:  # left out this time: an earlier run's picture would mislead
            _remove([charts_dir / f"{prefix}{spec.name}{suffix}" for suffix in (".png", ".svg")])
    return [_render(spec, sweep, baseline, charts_dir / f"{prefix}{spec.name}") for spec in shown]


def _render(spec: ChartSpec, sweep: Sweep, baseline: str, stem: Path) -> Chart:
    chart = Chart(spec.name, spec.title)
    png_path, svg_path = stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.svg"  # a stem may hold dots
    try:
        fig = spec.draw(sweep, baseline)
        chart.png = png(fig)
        write_bytes(png_path, chart.png)
        # Text stays text in the SVG: smaller files, and the labels can be searched and copied.
        svg = io.BytesIO()
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            fig.savefig(svg, format="svg")
        write_bytes(svg_path, svg.getvalue())
    except LinkError:
        raise
    except Exception as e:
        chart.error = f"{type(e).__name__}: {e}"
        chart.error += "\n" + "".join(traceback.format_exception(e)[-3:])
        # A stale picture from an earlier run would pass for this one.
        _remove([png_path, svg_path])
    return chart


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
