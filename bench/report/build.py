"""A results folder -> summary.md, charts/ (PNG + SVG) and report.html: loading here, charts in images."""

from __future__ import annotations

import dataclasses
import re
import traceback
from pathlib import Path

import pandas as pd

from bench.analyze.sweep import Sweep, load_sweep, stack
from bench.analyze.tables import answer_diffs, summary_view
from bench.report import html as report_html
from bench.report.contents import Chart
from bench.report.images import CHARTS_DIR, render_charts
from bench.report.page import error_box, page

REPORT_FILE = "report.html"
SUMMARY_MD = "summary.md"
DIFFS_FILE = "answer_diffs.csv"


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
        text = page("bench report failed", [error_box(f"report failed: {traceback.format_exc()}")])
    report.write_text(text, encoding="utf-8")
    return report, sweep
