"""report.html from what bench.report.build loaded and drew: tables and inline charts, no network needed to open it."""

from __future__ import annotations

import base64
import datetime as dt
import html

import pandas as pd

from bench.analyze.sweep import Sweep
from bench.analyze.tables import summary_view
from bench.report.contents import Chart

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1250px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} .meta{color:#666;margin-top:0}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4} td{white-space:nowrap} td.wrap{white-space:normal;max-width:40em}
figure{margin:1.5em 0} figure img{max-width:100%;border:1px solid #eee}
.err{background:#fff3f3;border-left:4px solid #d33;padding:.5em 1em;white-space:pre-wrap;font-size:13px}
code{font-size:12px;word-break:break-all}
"""


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
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _charts_html(charts: list[Chart]) -> str:
    parts = []
    for c in charts:
        if c.png is not None:
            data = base64.b64encode(c.png).decode("ascii")
            parts.append(
                f'<figure><img alt="{html.escape(c.title)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(c.title)}</figcaption></figure>"
            )
        else:
            parts.append(
                f'<h3>{html.escape(c.title)}</h3><div class="err">chart {c.name!r} failed: '
                f"{html.escape(c.error or '')}</div>"
            )
    return "\n".join(parts)


def render(sweep: Sweep, charts: list[Chart], baseline: str, compared: list[tuple[Sweep, list[Chart]]]) -> str:
    """The self-contained report.html: summary, charts inline as PNG, provenance; opens offline."""
    generated = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    problems = sweep.errors + [f"chart {c.name!r} failed: {c.error.splitlines()[0]}" for c in charts if c.error]
    for other, other_charts in compared:
        problems += other.errors + [
            f"comparison chart {c.name!r} failed: {c.error.splitlines()[0]}" for c in other_charts if c.error
        ]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>bench report: {html.escape(sweep.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>bench report: {html.escape(sweep.name)}</h1>",
        f"<p class='meta'>{html.escape(str(sweep.path))} · baseline <b>{html.escape(baseline)}</b>"
        f" · generated {generated}</p>",
    ]
    if problems:
        parts.append(
            "<h2>Problems while building this report</h2><div class='err'>"
            + html.escape("\n".join(problems))
            + "</div>"
        )
    parts += [
        "<h2>Summary</h2>",
        _table_html(summary_view(sweep.summary), wrap=("reason",)),
        "<h2>Charts</h2>",
        _charts_html(charts),
    ]
    for other, other_charts in compared:
        parts += [
            f"<h2>Compared: {html.escape(other.name)}</h2>",
            _table_html(summary_view(other.summary), wrap=("reason",)),
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
    parts.append("</body></html>")
    return "\n".join(parts)
