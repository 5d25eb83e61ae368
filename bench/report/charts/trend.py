"""The history trend chart: one metric of one variant, run after run, with its change points."""

from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.core.metric_registry import METRICS
from bench.report.charts.common import TEXT_GREY, new_figure


def trend_chart(variant: str, metric: str, level: float, lines: list[Any], changes: list[Any]) -> Figure:
    """One metric of one variant run after run: a line per machine (points with interval bars), provenance
    changes as grey marks, change points shaded red (worse) or green (better) with the step. Runs are evenly
    spaced in time order (nights are missed, batches bunch up), labelled with their time.
    `lines`: (label, rows with run_time/value/low/high, [(run time, what changed)]); `changes`: ChangePoints."""
    spec = METRICS.get(metric)
    scale = spec.scale if spec else 1.0
    fig = new_figure(10, 4.6)
    ax = fig.add_subplot()
    title = f"{variant} · {spec.label if spec else metric}" + (f" · load level {level:g}" if level != 1.0 else "")
    times = sorted({t for _, rows, _ in lines for t in rows["run_time"]})
    pos = {t: i for i, t in enumerate(times)}
    for i, (label, rows, marks) in enumerate(lines):
        _machine_line(ax, label, rows, marks, _PALETTE[i % len(_PALETTE)], pos, scale)
    for c in changes:
        _change_span(ax, c, pos)
    _run_ticks(ax, times)
    ax.set_ylabel(spec.axis_label if spec else metric)
    ax.set_xlabel("run (UTC), in order")
    ax.grid(alpha=0.3)
    ax.margins(y=0.25)
    if all((rows["value"] >= 0).all() for _, rows, _ in lines):
        ax.set_ylim(bottom=0)  # a rate or a time: an interval reaching below 0 (few passes) is cut at 0
    ax.spines[["top", "right"]].set_visible(False)
    if len(lines) > 1:
        ax.legend(fontsize=8, title="machine · hardware", title_fontsize=8)
    else:
        fig.text(0.01, 0.0, f"{lines[0][0]}" if lines else "", fontsize=8, color=TEXT_GREY, va="bottom")
    fig.suptitle(title + "  (bars: each run's 95 % interval; shaded: a change point)", x=0.01, ha="left", fontsize=11)
    return fig


# Machines, not variants: the whole chart is one variant, so these need not match the variant colours.
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf"]


def _machine_line(
    ax: Axes, label: str, rows: pd.DataFrame, marks: list[Any], color: str, pos: dict[Any, int], scale: float
) -> None:
    """One machine's runs as points with their intervals, and a grey mark where its provenance changed."""
    x = [pos[t] for t in rows["run_time"]]
    y = rows["value"].to_numpy(dtype=float) * scale
    err = np.vstack([y - rows["low"].to_numpy(dtype=float) * scale, rows["high"].to_numpy(dtype=float) * scale - y])
    ax.errorbar(x, y, yerr=np.clip(np.nan_to_num(err), 0, None), fmt="o-", color=color,
                ms=4, lw=1, capsize=3, label=label)  # fmt: skip
    for when, text in marks:
        ax.axvline(pos[when] - 0.5, color="#888888", ls=":", lw=1)
        ax.annotate(textwrap.shorten(text, 60), (pos[when] - 0.5, 1), xycoords=("data", "axes fraction"),
                    rotation=90, va="top", ha="right", fontsize=7, color=TEXT_GREY, xytext=(-2, -2),
                    textcoords="offset points")  # fmt: skip


def _change_span(ax: Axes, c: Any, pos: dict[Any, int]) -> None:
    """A change point: shaded from its last good run to its first bad one, its step and interval beneath."""
    color = {True: "#d62728", False: "#2ca02c"}.get(c.worse, "#555555")
    good, bad = pos[pd.Timestamp(c.last_good)], pos[pd.Timestamp(c.first_bad)]
    ax.axvspan(good, bad, color=color, alpha=0.12, lw=0)
    ax.annotate(f"{c.step:+.0%} [{c.step_low:+.0%}, {c.step_high:+.0%}]", (bad, 0.02),
                xycoords=("data", "axes fraction"), fontsize=8, color=color, xytext=(3, 0),
                textcoords="offset points")  # fmt: skip


def _run_ticks(ax: Axes, times: list[Any]) -> None:
    """At most ~16 run times on x, as dates when the runs span days."""
    days = len(times) > 1 and (times[-1] - times[0]) > pd.Timedelta(days=2)
    every = max(1, math.ceil(len(times) / 16))
    ax.set_xticks(range(0, len(times), every),
                  [t.strftime("%m-%d" if days else "%m-%d %H:%M") for t in times[::every]], rotation=45,
                  ha="right", fontsize=8)  # fmt: skip
