"""A results folder -> summary.md, charts/ (PNG + SVG) and report.html: loading here, drawing in report.charts."""

from __future__ import annotations

import dataclasses
import html
import io
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from bench.analyze.sweep import Sweep, load_sweep, stack
from bench.analyze.tables import (
    answer_diffs,
    crossover,
    level_means,
    summary_view,
)
from bench.report import html as report_html
from bench.report.charts import devices, latency, load, overview, speculative

REPORT_FILE = "report.html"
SUMMARY_MD = "summary.md"
CHARTS_DIR = "charts"
DIFFS_FILE = "answer_diffs.csv"
CHARTS = {
    "wall_clock": "Wall clock and speed-up",
    "utilization": "Utilization over time",
    "latency": "Latency distributions",
    "quality_speed": "Quality vs speed",
    "speculative": "Speculative decoding",
    "load": "Throughput and latency vs load",
    "sweep": "Metrics against the swept parameter",
    "pareto": "Pareto front across load levels",
    "crossover": "Speculation speed-up against load",
    "power": "Utilization beside power per device",
    "slo_search": "SLO search",
}
DPI = 120


@dataclass
class Chart:
    name: str
    title: str
    png: bytes | None = None
    error: str | None = None


def figures(sweep: Sweep, baseline: str = "single") -> dict[str, Callable[[], Figure]]:
    """Chart name -> a function drawing it, so one failing chart cannot stop the others."""
    charts: dict[str, Callable[[], Figure]] = {
        "wall_clock": lambda: overview.wall_clock_chart(sweep.summary, baseline),
        "utilization": lambda: devices.utilization_chart(sweep.timeline, sweep.summary),
        "latency": lambda: latency.latency_chart(sweep.requests, sweep.summary),
        "quality_speed": lambda: overview.quality_speed_chart(sweep.summary, baseline),
    }
    # Drawn only where the folder has what they show: a chart that could only say "nothing here" is left out.
    if "spec_acceptance_rate" in sweep.summary and sweep.summary["spec_acceptance_rate"].notna().any():
        charts["speculative"] = lambda: speculative.speculative_chart(sweep.summary)
    per_level = level_means(sweep.trials)
    if not sweep.params.empty:
        charts["sweep"] = lambda: load.sweep_chart(sweep.summary, sweep.params, baseline)
    if not per_level.empty and per_level.groupby("variant")["level"].nunique().max() >= 2:
        charts["load"] = lambda: load.load_chart(sweep.trials)
        charts["pareto"] = lambda: load.pareto_chart(sweep.trials)
        if "spec_acceptance_rate" in sweep.summary and sweep.summary["spec_acceptance_rate"].notna().any():
            spec = list(sweep.summary.loc[sweep.summary["spec_acceptance_rate"].notna(), "variant"])
            shared = crossover(sweep.trials, baseline, spec).dropna(subset=["speedup"])
            # load=sweep runs pick their own rates per variant: no level to divide, no chart
            if not shared.empty and shared.groupby("variant")["level"].nunique().max() >= 2:
                charts["crossover"] = lambda: load.crossover_chart(sweep.trials, sweep.summary, baseline)
    if "power_w" in sweep.timeline and pd.to_numeric(sweep.timeline["power_w"], errors="coerce").notna().any():
        charts["power"] = lambda: devices.power_chart(sweep.timeline, sweep.summary)
    if not sweep.searches.empty and (sweep.searches["mode"] == "slo_search").any():
        charts["slo_search"] = lambda: load.search_chart(sweep.searches)
    return charts


def render_charts(sweep: Sweep, charts_dir: Path, baseline: str = "single", prefix: str = "") -> list[Chart]:
    """Each chart as charts_dir/<prefix><name>.png and .svg; a chart that fails is reported, its old files removed."""
    charts_dir.mkdir(parents=True, exist_ok=True)
    out = []
    drawn = figures(sweep, baseline)
    for name in CHARTS.keys() - drawn.keys():  # left out this time: an earlier run's picture would mislead
        for suffix in (".png", ".svg"):
            (charts_dir / f"{prefix}{name}{suffix}").unlink(missing_ok=True)
    for name, draw in drawn.items():
        chart = Chart(name, CHARTS[name])
        stem = charts_dir / f"{prefix}{name}"
        try:
            fig = draw()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=DPI)
            chart.png = buf.getvalue()
            stem.with_suffix(".png").write_bytes(chart.png)
            # Text stays text in the SVG: smaller files, and the labels can be searched and copied.
            with matplotlib.rc_context({"svg.fonttype": "none"}):
                fig.savefig(stem.with_suffix(".svg"), format="svg")
        except Exception as e:
            chart.error = f"{type(e).__name__}: {e}"
            chart.error += "\n" + "".join(traceback.format_exception(e)[-3:])
            for suffix in (".png", ".svg"):  # a stale picture from an earlier run would pass for this one
                stem.with_suffix(suffix).unlink(missing_ok=True)
        out.append(chart)
    return out


def to_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "_no runs_\n"
    cells = table.astype(str).map(lambda s: s.replace("|", "\\|").replace("\n", " "))
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "other"


def _names(a: Path, b: Path) -> tuple[str, str]:
    """Folder names label the sweeps; the parent joins in when both folders share a name (two machines' `parallel`)."""
    if a.resolve().name != b.resolve().name:
        return a.resolve().name, b.resolve().name
    return f"{a.resolve().parent.name}/{a.resolve().name}", f"{b.resolve().parent.name}/{b.resolve().name}"


def analyze(results_dir: Path, baseline: str = "single", compare: Path | None = None) -> Path:
    """summary.csv, summary.md, charts/ and report.html for a results folder; returns the report's path."""
    return write_report(results_dir, baseline, compare)[0]


def write_report(results_dir: Path, baseline: str = "single", compare: Path | None = None) -> tuple[Path, Sweep]:
    """summary.csv, summary.md, charts/ and report.html for a results folder; the report's path and the tables.

    Never raises on odd data: a table or chart that fails is named in the report. Only failing to write
    the report itself (a read-only folder, a full disk) raises.
    """
    results_dir = Path(results_dir)
    charts_dir = results_dir / CHARTS_DIR
    sweep = load_sweep(results_dir, baseline, write=True)
    charts = render_charts(sweep, charts_dir, baseline)
    try:  # the lossless check per request: every answer unlike the baseline's, and where it first differs
        diffs = answer_diffs(sweep.requests, baseline)
        if not sweep.requests.empty and baseline in set(sweep.requests["variant"]):
            diffs.to_csv(results_dir / DIFFS_FILE, index=False)
    except Exception as e:
        sweep.errors.append(f"{DIFFS_FILE}: {type(e).__name__}: {e}")
    compared: list[tuple[Sweep, list[Chart]]] = []
    if compare is not None:
        name, other_name = _names(results_dir, Path(compare))
        if not Path(compare).is_dir():
            sweep.errors.append(f"--compare: no results folder at {compare}")
        else:
            this = dataclasses.replace(sweep, name=name)
            other = load_sweep(Path(compare), baseline, name=other_name)
            both = stack([this, other])
            compared.append((both, render_charts(both, charts_dir, baseline, prefix=f"compare_{_slug(other_name)}_")))
    try:
        md_table = to_markdown(summary_view(sweep.summary))
    except Exception as e:
        md_table = f"summary table failed: {e}\n"
        sweep.errors.append(f"summary.md: {e}")
    md = [f"# bench summary: {sweep.name}\n", f"baseline: `{baseline}`\n", md_table]
    md += [
        f"![{c.title}]({CHARTS_DIR}/{c.name}.png)\n"
        if c.png
        else f"- chart `{c.name}` failed: {c.error.splitlines()[0] if c.error else ''}\n"
        for c in charts
    ]
    (results_dir / SUMMARY_MD).write_text("\n".join(md), encoding="utf-8")
    report = results_dir / REPORT_FILE
    try:
        text = report_html.render(sweep, charts, baseline, compared)
    except Exception:  # the report must still say something
        text = f"<!doctype html><meta charset='utf-8'><pre>report failed: {html.escape(traceback.format_exc())}</pre>"
    report.write_text(text, encoding="utf-8")
    return report, sweep
