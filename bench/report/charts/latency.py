"""Latency distributions: ECDFs of TTFT, TPOT and end-to-end latency per variant."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from bench.analyze.tables import latency_ecdf
from bench.core.records import OK, PARTIAL
from bench.report.charts.common import (
    FAILED_COLOR,
    SWEEP_LINES,
    TEXT_GREY,
    message,
    new_figure,
    row_label,
    status_note,
    summary_rows,
    sweep_names,
    variant_color,
)

_LATENCY_PANELS = [
    ("ttft_s", "Time to first token (TTFT)"),
    ("tpot_s", "Time per output token (TPOT)"),
    ("latency_s", "End-to-end latency"),
]


def latency_chart(requests: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """ECDFs of TTFT, TPOT and end-to-end latency, one line per variant (successful requests only)."""
    fig = new_figure(13, 4.6)
    title = "Latency distributions per variant (ECDF of successful requests; further left = faster)"
    runs = summary_rows(summary)
    sweeps = sweep_names(summary if not summary.empty else requests)
    multi = len(sweeps) > 1
    if requests.empty:
        return message(fig, title, "no request records in this results folder")
    axes = fig.subplots(1, 3)
    keys = [k for k in ("sweep", "variant") if k in requests]
    plotted: set[tuple] = set()
    for ax, (col, name) in zip(axes, _LATENCY_PANELS, strict=True):
        ecdf = latency_ecdf(requests, col)
        lines = runs or ecdf[keys].drop_duplicates().assign(status=OK).to_dict("records")
        plotted |= _ecdf_panel(ax, ecdf, name, lines, sweeps, multi)
    axes[0].set_ylabel("share of requests at or below x")
    _latency_legend(fig, axes[0], runs, plotted, multi)
    fig.suptitle(title, x=0.01, ha="left", fontsize=12)
    return fig


def _ecdf_panel(
    ax: Axes, ecdf: pd.DataFrame, name: str, runs: list[dict[str, Any]], sweeps: list[str], multi: bool
) -> set[tuple]:
    """One latency's ECDF, a step line per run; returns the (sweep, variant) pairs that got a line."""
    plotted: set[tuple] = set()
    # Milliseconds where the values are small, so ticks read 120 ms rather than 0.12 s.
    ms = not ecdf.empty and ecdf["value"].median() < 1.0
    for r in runs:
        sel = ecdf["variant"] == r["variant"]
        if "sweep" in ecdf:
            sel &= ecdf["sweep"] == r.get("sweep", "")
        line = ecdf[sel]
        if line.empty:
            continue
        plotted.add((r.get("sweep", ""), r["variant"]))
        note = " (partial)" if r.get("status") == PARTIAL else ""
        ax.plot(
            line["value"] * (1000 if ms else 1),
            line["share"],
            drawstyle="steps-post",
            color=variant_color(str(r["variant"])),
            linestyle=SWEEP_LINES[sweeps.index(r.get("sweep", "")) % 4],
            linewidth=1.8,
            label=f"{row_label(r, multi)}{note} · n={len(line)}",
        )
    ax.set_title(name, fontsize=11)
    ax.set_xlabel(f"{name.split(' (')[0].lower()} ({'ms' if ms else 's'})")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    if ecdf.empty:
        ax.text(0.5, 0.5, "no values recorded", ha="center", va="center", color=TEXT_GREY, transform=ax.transAxes)
    return plotted


def _latency_legend(fig: Figure, first: Axes, runs: list[dict[str, Any]], plotted: set[tuple], multi: bool) -> None:
    """One legend under the panels, naming the runs that got no line and why."""
    handles, labels = first.get_legend_handles_labels()
    missing = [
        f"{row_label(r, multi)} ({status_note(r, 90) or 'no successful requests'})"
        for r in runs
        if (r.get("sweep", ""), r["variant"]) not in plotted
    ]
    if missing:
        handles.append(Patch(color=FAILED_COLOR))
        labels.append("not shown: " + "; ".join(missing))
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(handles)), fontsize=9, frameon=False)
