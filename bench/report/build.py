"""A results folder -> its report: tables loaded once, charts drawn, then each output format written."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from bench.analyze.sweep import Sweep, load_sweep, stack
from bench.report import csv, html, markdown
from bench.report.contents import Chart, Report
from bench.report.images import CHARTS_DIR, render_charts


def analyze(results_dir: Path, baseline: str = "single", compare: Path | None = None) -> Path:
    """summary.csv, summary.md, charts/ and report.html for a results folder; returns the report's path."""
    return write_report(results_dir, baseline, compare)[0]


def write_report(results_dir: Path, baseline: str = "single", compare: Path | None = None) -> tuple[Path, Sweep]:
    """summary.csv, summary.md, charts/ and report.html for a results folder; the report's path and the tables.

    Never raises on odd data: a table or chart that fails is named in the report. Only failing to write
    the report itself (a read-only folder, a full disk) raises.
    """
    results_dir = Path(results_dir)
    sweep = load_sweep(results_dir, baseline, write=True)  # summary.csv
    report = Report(results_dir, sweep, baseline, render_charts(sweep, results_dir / CHARTS_DIR, baseline))
    csv.write(report)
    if compare is not None:
        report.compared = _compared(report, Path(compare))
    markdown.write(report)
    return html.write(report), sweep


def _compared(report: Report, other_dir: Path) -> list[tuple[Sweep, list[Chart]]]:
    """Both folders stacked, charted side by side as charts/compare_<other>_<name>.png; [] without a folder."""
    name, other_name = _names(report.results_dir, other_dir)
    if not other_dir.is_dir():
        report.sweep.errors.append(f"--compare: no results folder at {other_dir}")
        return []
    this = dataclasses.replace(report.sweep, name=name)
    other = load_sweep(other_dir, report.baseline, name=other_name)
    both = stack([this, other])
    charts_dir = report.results_dir / CHARTS_DIR
    return [(both, render_charts(both, charts_dir, report.baseline, prefix=f"compare_{_slug(other_name)}_"))]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "other"


def _names(a: Path, b: Path) -> tuple[str, str]:
    """Folder names label the sweeps; the parent joins in when both folders share a name (two machines' `parallel`)."""
    if a.resolve().name != b.resolve().name:
        return a.resolve().name, b.resolve().name
    return f"{a.resolve().parent.name}/{a.resolve().name}", f"{b.resolve().parent.name}/{b.resolve().name}"
