"""Markdown output: summary.md, the summary table and a link per chart (to_markdown renders any table)."""

from __future__ import annotations

import pandas as pd

from bench.analyze.tables import summary_view
from bench.core.files import atomic_write_text
from bench.report.contents import Report
from bench.report.images import CHARTS_DIR

SUMMARY_MD = "summary.md"


def to_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "_no runs_\n"
    cells = table.astype(str).map(lambda s: s.replace("|", "\\|").replace("\n", " "))
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write(report: Report) -> None:
    atomic_write_text(report.results_dir / SUMMARY_MD, render(report))


def render(report: Report) -> str:
    """summary.md: a failed table is said in its place and added to the report's problems."""
    sweep = report.sweep
    try:
        md_table = to_markdown(summary_view(sweep.summary))
    except Exception as e:
        md_table = f"summary table failed: {e}\n"
        sweep.errors.append(f"{SUMMARY_MD}: {e}")
    md = [f"# bench summary: {sweep.name}\n", f"baseline: `{report.baseline}`\n", md_table]
    md += [
        f"![{c.title}]({CHARTS_DIR}/{c.name}.png)\n"
        if c.png
        else f"- chart `{c.name}` failed: {c.error.splitlines()[0] if c.error else ''}\n"
        for c in report.charts
    ]
    return "\n".join(md)
