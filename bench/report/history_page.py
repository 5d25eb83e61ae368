"""The history store's page: trend charts per variant, metric and load level, and its change points."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from bench.core.files import atomic_write_text, make_dir, no_link, write_bytes
from bench.core.records import OK
from bench.regress.history import (
    MIN_NIGHTS,
    REPORT_DIR,
    ChangePoint,
    changes_table,
    exit_status,
    find_changes,
    load,
    provenance_marks,
    series,
)
from bench.report.charts.trend import trend_chart
from bench.report.images import png
from bench.report.page import figure, page


def _slug(*parts: object) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(str(p) for p in parts if p != "")).strip("_")


def trend_figures(df: pd.DataFrame, changes: Sequence[ChangePoint]) -> list[tuple[str, Figure]]:
    """(file stem, chart) per variant, metric and load level: a line per machine and hardware, never joined."""
    out = []
    ok = df[(df["status"] == OK) & df["value"].notna()]
    for (variant, metric, level), g in ok.groupby(["variant", "metric", "level"], sort=True):
        lines = [(f"{k[0]} · {k[1]}", s, provenance_marks(s)) for k, s in series(g)]
        mine = [c for c in changes if (c.variant, c.metric, c.level) == (variant, metric, level)]
        stem = _slug(variant, metric, "" if level == 1.0 else level)
        out.append((stem, trend_chart(variant, metric, level, lines, mine)))
    return out


def report(
    store: Path, out_dir: Path | None = None, metrics: Sequence[str] | None = None
) -> tuple[Path, list[ChangePoint]]:
    """Trend PNGs (out_dir/charts/) and a self-contained out_dir/index.html of the store, and its change points."""
    df = load(store)
    if metrics:
        df = df[df["metric"].isin(metrics)]
    out_dir = Path(out_dir or Path(store) / REPORT_DIR)
    make_dir(no_link(out_dir) / "charts")
    changes = find_changes(df)
    pngs = []
    for stem, fig in trend_figures(df, changes):
        data = png(fig, dpi=110)
        write_bytes(out_dir / "charts" / f"{stem}.png", data)
        pngs.append((stem, data))
    index = out_dir / "index.html"
    atomic_write_text(index, _page(df, changes, pngs, exit_status(changes)))
    return index, changes


def _page(df: pd.DataFrame, changes: Sequence[ChangePoint], figures: list[tuple[str, bytes]], status: int) -> str:
    runs = df.drop_duplicates("run_key")
    table = changes_table(changes)
    verdict = (
        "the newest run of some series sits after a change for the worse"
        if status
        else "no series' newest run sits after a change for the worse"
    )
    parts = [
        "<h1>bench history</h1>",
        f"<p>{len(runs)} runs from {runs['run_time'].min():%Y-%m-%d %H:%M} to {runs['run_time'].max():%Y-%m-%d %H:%M}"
        f" UTC on {runs['machine'].nunique()} machine(s); {html.escape(verdict)} (exit status {status}).</p>",
        "<h2>Change points</h2>",
        table.to_html(index=False) if not table.empty else "<p>none found</p>",
    ]
    short = [k for k, s in series(df) if len(s) < MIN_NIGHTS]
    if short:
        names = ", ".join(sorted({f"{k[2]} on {k[0]}" for k in short}))
        parts.append(f"<p>Not looked at, fewer than {MIN_NIGHTS} runs: {len(short)} series ({html.escape(names)}).</p>")
    parts.append("<h2>Trends</h2>")
    parts += [figure(data, title) for title, data in figures]
    return page("bench history", parts)
