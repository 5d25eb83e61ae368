"""The overview charts: wall clock per variant, and answer quality against speed."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.core.metric_registry import label as metric_label
from bench.core.records import OK, PARTIAL
from bench.report.charts.common import (
    FAILED_COLOR,
    SWEEP_HATCHES,
    SWEEP_MARKERS,
    TEXT_GREY,
    message,
    new_figure,
    row_label,
    status_note,
    summary_rows,
    sweep_legend,
    sweep_names,
    variant_color,
)


def wall_clock_chart(summary: pd.DataFrame, baseline: str = "single") -> Figure:
    """Horizontal bar per variant: time to replay the request set, speed-up over the baseline written on it."""
    rows = summary_rows(summary)
    sweeps = sweep_names(summary)
    multi = len(sweeps) > 1
    fig = new_figure(10, 1.2 + 0.45 * max(len(rows), 1))
    title = f"Wall clock per variant to replay the same requests (speed-up vs {baseline}; shorter is faster)"
    if not rows:
        return message(fig, title, "no runs in this results folder")
    ax = fig.add_subplot()
    walls = [float(r["wall_clock_s"]) if pd.notna(r.get("wall_clock_s")) else 0.0 for r in rows]
    in_min = max(walls) >= 300
    scale, unit = (60.0, "min") if in_min else (1.0, "s")
    top = max(walls) / scale or 1.0
    for y, (r, wall) in enumerate(zip(rows, walls, strict=True)):
        status, sweep_i = r.get("status"), sweeps.index(r.get("sweep", ""))
        ok_or_partial = status in (OK, PARTIAL)
        ax.barh(
            y,
            wall / scale,
            height=0.7,
            color=variant_color(str(r["variant"])) if ok_or_partial else FAILED_COLOR,
            alpha=0.55 if status == PARTIAL else 1.0,
            hatch=SWEEP_HATCHES[sweep_i % 4] + ("//" if status == PARTIAL else ""),
            edgecolor="white",
        )
        if not ok_or_partial:  # a pale band across the row: visibly "no result", not a tiny bar
            ax.barh(y, top * 1.6, height=0.7, color=FAILED_COLOR, alpha=0.25)
        if status == OK:
            speedup = pd.to_numeric(r.get("speedup"), errors="coerce")
            note = f"{wall / scale:.1f} {unit}"
            if pd.notna(speedup):
                note += " · baseline" if r["variant"] == baseline else f" · {speedup:.2f}x"
        else:
            note = (f"{wall / scale:.1f} {unit} · " if wall else "") + status_note(r, 90)
        ax.text(
            wall / scale + top * 0.01, y, note, va="center", fontsize=9, color="black" if status == OK else TEXT_GREY
        )
    ax.set_yticks(range(len(rows)), [row_label(r, multi) for r in rows])
    ax.invert_yaxis()  # baseline (first in the summary) on top, like the table
    ax.set_xlim(0, top * 1.6)  # room for the notes right of the bars
    ax.set_xlabel(f"wall clock ({'min' if in_min else 's'}) for the whole request set")
    ax.grid(axis="x", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title, loc="left", fontsize=11)
    sweep_legend(fig, sweeps, "hatch")
    return fig


def quality_speed_chart(summary: pd.DataFrame, baseline: str = "single") -> Figure:
    """F1 against output tokens/s, one labelled point per variant: is the faster variant still as right?"""
    fig = new_figure(9, 5.5)
    title = "Answer quality vs speed per variant (up = more accurate, right = faster)"
    runs = summary_rows(summary)
    sweeps = sweep_names(summary)
    multi = len(sweeps) > 1
    points = [
        r
        for r in runs
        if pd.notna(pd.to_numeric(r.get("f1"), errors="coerce"))
        and pd.notna(pd.to_numeric(r.get("output_tok_per_s"), errors="coerce"))
    ]
    if not points:
        return message(fig, title, "no variant has both an F1 and a throughput to plot")
    ax = fig.add_subplot()
    xs = [float(r["output_tok_per_s"]) for r in points]
    x_top = max(xs) * 1.25 or 1.0
    texts = [_quality_point(ax, r, x, sweeps, baseline) for r, x in zip(points, xs, strict=True)]
    ax.set_xlim(0, x_top)
    # Zoomed to the data, with room above for the labels: small models cluster near F1 0.1-0.2.
    ax.set_ylim(-0.03, min(1.05, max(0.25, 1.6 * max(float(r["f1"]) for r in points)) + 0.05))
    _declutter(fig, ax, texts)
    ax.set_xlabel(f"{metric_label('output_tok_per_s')} (whole request set, sequential)")
    ax.set_ylabel(f"{metric_label('f1')} (SQuAD token overlap, 0–1)")
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title, loc="left", fontsize=11)
    _not_plotted(ax, [r for r in runs if r not in points], multi)
    sweep_legend(fig, sweeps, "marker")
    return fig


def _quality_point(ax: Axes, r: dict[str, Any], x: float, sweeps: list[str], baseline: str) -> Any:
    """One variant's point (hollow when partial) and its label; returns the label for _declutter."""
    y = float(r["f1"])
    color = variant_color(str(r["variant"]))
    partial = r.get("status") == PARTIAL
    ax.scatter(
        x,
        y,
        s=110,
        marker=SWEEP_MARKERS[sweeps.index(r.get("sweep", "")) % 4],
        zorder=3,
        facecolors="white" if partial else color,
        edgecolors=color,
        linewidths=2,
    )
    # In a comparison the marker shape names the sweep, so the label needs only the variant.
    label = f"{r['variant']}{' (partial)' if partial else ''} · F1 {y:.2f}"
    same = pd.to_numeric(r.get("identical_to_baseline"), errors="coerce")
    if pd.notna(same) and r["variant"] != baseline:  # equal F1 can hide different answers; say how many match
        label += f"\n{same:.0%} of answers identical to {baseline}'s"
    return ax.annotate(
        label,
        (x, y),
        xytext=(9, 9),
        textcoords="offset points",
        fontsize=10,
        color=color,
        va="center",
    )


def _not_plotted(ax: Axes, left_out: list[dict[str, Any]], multi: bool) -> None:
    """Name the runs without a point, and why, at the top left: a missing variant must not pass unnoticed."""
    notes = [f"{row_label(r, multi)}: {status_note(r, 90) or 'no F1 or throughput'}" for r in left_out]
    if notes:
        ax.text(
            0.01,
            0.99,
            "not plotted: " + "; ".join(notes),
            transform=ax.transAxes,
            fontsize=9,
            color=TEXT_GREY,
            va="top",
            wrap=True,
        )


def _declutter(fig: Figure, ax: Axes, texts: list[Any]) -> None:
    """Shift each point label down or up, nearest first, until it overlaps no earlier label and stays inside
    the axes: greedy decoding often gives variants equal F1, so their labels would sit on each other."""
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    inside = ax.get_window_extent(renderer)
    placed: list[Any] = []
    for t in texts:
        x, y = t.get_position()
        for shift in (0, -16, 16, -32, 32, -48, 48, -64, 64, -80, 80, -96, 96):
            t.set_position((x, y + shift))
            box = t.get_window_extent(renderer)
            fits = inside.y0 <= box.y0 and box.y1 <= inside.y1
            if fits and not any(box.overlaps(p) for p in placed):
                break
        placed.append(t.get_window_extent(renderer))
