"""A results folder -> summary.md, charts/ (PNG + SVG) and report.html: loading and charts here, HTML in report_html."""

from __future__ import annotations

import dataclasses
import html
import io
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from bench import plots, report_html
from bench.analysis import (
    answer_diffs,
    crossover,
    level_means,
    load_params,
    load_provenance,
    load_requests,
    load_searches,
    load_telemetry,
    load_trials,
    stack_sweeps,
    summary_table,
    summary_view,
    telemetry_timeline,
    write_summary,
)
from bench.results import RUN_FILE, read_run, run_dirs

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
class Sweep:
    """Every table the charts need from one results folder (or several, stacked with a `sweep` column)."""

    name: str
    path: Path
    summary: pd.DataFrame
    requests: pd.DataFrame
    timeline: pd.DataFrame
    provenance: pd.DataFrame
    errors: list[str] = field(default_factory=list)
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)
    params: pd.DataFrame = field(default_factory=pd.DataFrame)  # swept keys per run (multirun inside a variant)
    searches: pd.DataFrame = field(default_factory=pd.DataFrame)  # load=sweep / slo_search levels tried


@dataclass
class Chart:
    name: str
    title: str
    png: bytes | None = None
    error: str | None = None


def _try(errors: list[str], what: str, fn: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """A table that cannot be read becomes empty, and the report says why, instead of the sweep's end crashing."""
    try:
        return fn()
    except Exception as e:
        errors.append(f"{what}: {type(e).__name__}: {e}")
        return pd.DataFrame()


def load_sweep(path: Path, baseline: str = "single", name: str | None = None, write: bool = False) -> Sweep:
    """Never raises: what fails to load is empty and listed in `errors`. `write` also writes summary.csv."""
    path = Path(path)
    errors: list[str] = []
    summary = _try(errors, "summary table", lambda: (write_summary if write else summary_table)(path, baseline))
    requests = _try(errors, "requests.jsonl", lambda: load_requests(path))
    telemetry = _try(errors, "telemetry.csv", lambda: load_telemetry(path))
    timeline = _try(errors, "telemetry timeline", lambda: telemetry_timeline(telemetry, requests))
    provenance = _try(errors, "provenance", lambda: load_provenance(path))
    # load_runs skips a torn run.json (a killed writer); say so, or the variant would just be missing.
    errors += [f"{d.name}: {RUN_FILE} unreadable, variant left out" for d in run_dirs(path) if read_run(d) is None]
    trials = _try(errors, "trials", lambda: load_trials(path))
    params = _try(errors, "swept parameters", lambda: load_params(path))
    searches = _try(errors, "load searches", lambda: load_searches(path))
    return Sweep(name or path.name, path, summary, requests, timeline, provenance, errors, trials, params, searches)


def stack(sweeps: list[Sweep]) -> Sweep:
    """Several sweeps as one, each row labelled by its sweep's name, for side-by-side charts."""

    def table(attr: str) -> pd.DataFrame:
        return stack_sweeps({s.name: getattr(s, attr) for s in sweeps})

    names = " vs ".join(s.name for s in sweeps)
    errors = [f"{s.name}: {e}" for s in sweeps for e in s.errors]
    return Sweep(
        names, sweeps[0].path, table("summary"), table("requests"), table("timeline"), table("provenance"), errors
    )


def figures(sweep: Sweep, baseline: str = "single") -> dict[str, Callable[[], Figure]]:
    """Chart name -> a function drawing it, so one failing chart cannot stop the others."""
    charts: dict[str, Callable[[], Figure]] = {
        "wall_clock": lambda: plots.wall_clock_chart(sweep.summary, baseline),
        "utilization": lambda: plots.utilization_chart(sweep.timeline, sweep.summary),
        "latency": lambda: plots.latency_chart(sweep.requests, sweep.summary),
        "quality_speed": lambda: plots.quality_speed_chart(sweep.summary, baseline),
    }
    # Drawn only where the folder has what they show: a chart that could only say "nothing here" is left out.
    if "spec_acceptance_rate" in sweep.summary and sweep.summary["spec_acceptance_rate"].notna().any():
        charts["speculative"] = lambda: plots.speculative_chart(sweep.summary)
    per_level = level_means(sweep.trials)
    if not sweep.params.empty:
        charts["sweep"] = lambda: plots.sweep_chart(sweep.summary, sweep.params, baseline)
    if not per_level.empty and per_level.groupby("variant")["level"].nunique().max() >= 2:
        charts["load"] = lambda: plots.load_chart(sweep.trials)
        charts["pareto"] = lambda: plots.pareto_chart(sweep.trials)
        if "spec_acceptance_rate" in sweep.summary and sweep.summary["spec_acceptance_rate"].notna().any():
            spec = list(sweep.summary.loc[sweep.summary["spec_acceptance_rate"].notna(), "variant"])
            shared = crossover(sweep.trials, baseline, spec).dropna(subset=["speedup"])
            # load=sweep runs pick their own rates per variant: no level to divide, no chart
            if not shared.empty and shared.groupby("variant")["level"].nunique().max() >= 2:
                charts["crossover"] = lambda: plots.crossover_chart(sweep.trials, sweep.summary, baseline)
    if "power_w" in sweep.timeline and pd.to_numeric(sweep.timeline["power_w"], errors="coerce").notna().any():
        charts["power"] = lambda: plots.power_chart(sweep.timeline, sweep.summary)
    if not sweep.searches.empty and (sweep.searches["mode"] == "slo_search").any():
        charts["slo_search"] = lambda: plots.search_chart(sweep.searches)
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
    """summary.csv, summary.md, charts/ and report.html for a results folder; returns the report's path.

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
    return report
