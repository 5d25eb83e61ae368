"""HTML output: report.html, the summary, the charts inline and the provenance, in the shared page shell."""

from __future__ import annotations

import datetime as dt
import html
import traceback
from pathlib import Path

import pandas as pd

from bench.analyze.tables import formatted, metrics_shown, summary_view
from bench.core.files import atomic_write_text
from bench.core.metric_registry import CONSOLE
from bench.report.contents import Chart, Report
from bench.report.notes import notes
from bench.report.page import error_box, figure, note_box, page

REPORT_FILE = "report.html"


def write(report: Report) -> Path:
    """report.html in the results folder; a report that fails to render still says why."""
    path = report.results_dir / REPORT_FILE
    try:
        text = render(report)
    except Exception:  # the report must still say something
        text = page("bench report failed", [error_box(f"report failed: {traceback.format_exc()}")])
    atomic_write_text(path, text)
    return path


def render(report: Report) -> str:
    """The self-contained report.html: summary, charts inline as PNG, provenance; opens offline."""
    sweep, compared = report.sweep, report.compared
    generated = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    parts = [
        f"<h1>bench report: {html.escape(sweep.name)}</h1>",
        f"<p class='meta'>{html.escape(str(sweep.path))} · baseline <b>{html.escape(report.baseline)}</b>"
        f" · generated {generated}</p>",
    ]
    problems = _problems(report)
    if problems:
        parts.append("<h2>Problems while building this report</h2>" + error_box("\n".join(problems)))
    if sweep.folder is not None and (said := notes(sweep.folder, report.baseline)):
        parts.append("<h2>Read this first</h2>" + "".join(note_box(n) for n in said))
    parts += [
        "<h2>Summary</h2>",
        _summary_html(sweep.summary),
        "<h2>Charts</h2>",
        _charts_html(report.charts),
    ]
    for other, other_charts in compared:
        parts += [
            f"<h2>Compared: {html.escape(other.name)}</h2>",
            _summary_html(other.summary),
            _charts_html(other_charts),
        ]
    parts.append("<h2>Provenance</h2>")
    for s in [sweep] + [o for o, _ in compared if o.name != sweep.name]:
        prov = s.provenance
        parts.append(
            _table_html(prov, wrap=("command", "cpu", "gpus", "model"))
            if not prov.empty
            else "<p><em>no provenance recorded</em></p>"
        )
    return page(f"bench report: {sweep.name}", parts)


def _problems(report: Report) -> list[str]:
    """What went wrong while loading and drawing, this folder's first, then each compared one's."""
    problems = report.sweep.errors + [
        f"chart {c.name!r} failed: {c.error.splitlines()[0]}" for c in report.charts if c.error
    ]
    for other, other_charts in report.compared:
        problems += other.errors + [
            f"comparison chart {c.name!r} failed: {c.error.splitlines()[0]}" for c in other_charts if c.error
        ]
    return problems


def _summary_html(summary: pd.DataFrame) -> str:
    """The few columns that fit a laptop's screen (the console's), every column folded beneath them."""
    if summary.empty or "variant" not in summary:
        return _table_html(pd.DataFrame())
    view = {k: summary[k] for k in ("sweep", "variant", "status") if k in summary}
    view |= {m.label: formatted(summary, m.name, m.format) for m in metrics_shown(summary, CONSOLE)}
    reasons = summary["reason"].fillna("") if "reason" in summary else pd.Series("", summary.index)
    view["reason"] = reasons.map(lambda s: s if len(s) <= 60 else s[:57] + "...")
    full = _table_html(summary_view(summary), wrap=("reason",))
    return (
        _table_html(pd.DataFrame(view), wrap=("reason",))
        + f"<details><summary>Every column ({len(summary_view(summary).columns)})</summary>{full}</details>"
    )


def _table_html(table: pd.DataFrame, wrap: tuple[str, ...] = ()) -> str:
    if table.empty:
        return "<p><em>no runs</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = []
    for row in table.itertuples(index=False):
        tds = []
        for col, value in zip(table.columns, row, strict=True):
            text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
            cls = ' class="wrap"' if col in wrap else ""
            tds.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    # A wide table (provenance's commands) scrolls in its own box, not the whole page.
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def _charts_html(charts: list[Chart]) -> str:
    parts = []
    for c in charts:
        if c.png is not None:
            parts.append(figure(c.png, c.title, caption=c.title))
        else:
            parts.append(f"<h3>{html.escape(c.title)}</h3>" + error_box(f"chart {c.name!r} failed: {c.error or ''}"))
    return "\n".join(parts)
