"""Device charts: utilization over time per device, and utilization beside power."""

from __future__ import annotations

import math
import re
import textwrap
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.core.records import OK, PARTIAL
from bench.report.charts.common import (
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

MAX_CORE_LINES = 8  # beyond this many CPU cores, per-core lines become a smear: plot their mean and max


def _device_order(device: str) -> tuple[int, int, str]:
    m = re.fullmatch(r"([a-z]+)(\d+)", device)
    rank = {"gpu": 0, "server": 1, "cpu": 2}
    if m:
        return rank.get(m.group(1), 3), int(m.group(2)), device
    return rank.get(device, 3), 0, device


def _shade(color: str, i: int, n: int) -> tuple[float, float, float]:
    """The variant's colour for the first device, lighter for later ones, so a panel stays one hue."""
    rgb = np.array(mcolors.to_rgb(color))
    f = 0.0 if n <= 1 else 0.55 * i / (n - 1)
    return tuple(rgb + (1 - rgb) * f)


def _source_label(source: str) -> str:
    if source == "nvml":
        return "GPU util % (NVML)"
    if source == "psutil":
        return "CPU % (psutil; 100 = one core)"
    return f"util % ({source})"


def _device_lines(tel: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(legend name, rows) per line; many CPU cores collapse into their mean and busiest."""
    devices = sorted(tel["device"].astype(str).unique(), key=_device_order)
    cores = [d for d in devices if re.fullmatch(r"cpu\d+", d)]
    lines = [(d, tel[tel["device"] == d]) for d in devices if d not in cores or len(cores) <= MAX_CORE_LINES]
    if len(cores) > MAX_CORE_LINES:
        per_t = tel[tel["device"].isin(cores)].groupby("t_s")["util_pct"]
        lines.append((f"mean of {len(cores)} cores", per_t.mean().reset_index()))
        lines.append(("busiest core", per_t.max().reset_index()))
    return lines


def _smooth(rows: pd.DataFrame, span_s: float) -> pd.Series:
    """A rolling mean over ~1/100 of the run (at least 1 s): 10 Hz samples are mostly noise at chart size."""
    step = float(rows["t_s"].diff().median()) if len(rows) > 1 else 0.0
    if not step or step <= 0:
        return rows["util_pct"]
    n = max(1, round(max(1.0, span_s / 100) / step))
    return rows["util_pct"].rolling(n, center=True, min_periods=1).mean()


def utilization_chart(timeline: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Small multiples: one panel per variant, one line per device, x = seconds since the run's first request."""
    tel = _with_time(timeline)
    runs = _panel_runs(summary, tel)
    sweeps = sweep_names(summary if not summary.empty else tel)
    multi = len(sweeps) > 1
    title = (
        f"{_utilization_what(tel)} over time per device, per variant (an idle device next to a busy one = imbalance)"
    )
    if not runs:
        return message(new_figure(10, 3), title, "no runs in this results folder")
    nrows, ncols, slots = _panel_slots(runs, sweeps, multi)
    fig = new_figure(4.2 * ncols + 0.8, 2.7 * nrows + 0.8)
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
    used = set(slots.values())
    for i in set(range(len(axes))) - used:
        axes[i].set_axis_off()
    for r in runs:
        _utilization_panel(axes[slots[(r.get("sweep", ""), r["variant"])]], r, tel, multi)
    for i, ax in enumerate(axes):  # the lowest panel of each column, even above an empty slot
        if i in used and (i + ncols >= len(axes) or i + ncols not in used):
            ax.tick_params(labelbottom=True)
            ax.set_xlabel("s since the run's first request (lines: rolling mean)")
    fig.suptitle(title, x=0.01, ha="left", fontsize=12)
    return fig


def _with_time(timeline: pd.DataFrame) -> pd.DataFrame:
    """Telemetry with `t_s`; a timeline without one counts from its first sample."""
    if "t_s" in timeline or timeline.empty:
        return timeline
    return timeline.assign(t_s=timeline["time"] - timeline["time"].min())


def _panel_runs(summary: pd.DataFrame, tel: pd.DataFrame) -> list[dict[str, Any]]:
    """The summary's runs, one panel each; telemetry of a variant the summary lacks still gets a panel."""
    runs = summary_rows(summary)
    known = {(r.get("sweep", ""), r["variant"]) for r in runs}
    if not tel.empty:
        for key in dict.fromkeys(zip(tel["sweep"] if "sweep" in tel else [""] * len(tel), tel["variant"], strict=True)):
            if key not in known:
                runs.append({"sweep": key[0], "variant": key[1], "status": None})
    return runs


def _utilization_what(tel: pd.DataFrame) -> str:
    """What the lines measure, named by the telemetry's source: NVML's GPU utilization or psutil's CPU use."""
    sources = sorted(set(tel["source"].dropna().astype(str))) if "source" in tel and not tel.empty else []
    return "GPU utilization" if sources == ["nvml"] else "CPU use" if sources == ["psutil"] else "Device utilization"


def _panel_slots(runs: list[dict[str, Any]], sweeps: list[str], multi: bool) -> tuple[int, int, dict[Any, int]]:
    """Rows, columns and each (sweep, variant)'s panel: up to 3 a row, or in a comparison rows = variants and
    columns = sweeps, so the same variant lines up across sweeps."""
    if multi:
        variants = list(dict.fromkeys(r["variant"] for r in runs))
        ncols, nrows = len(sweeps), len(variants)
        slots = {
            (r.get("sweep", ""), r["variant"]): variants.index(r["variant"]) * ncols + sweeps.index(r.get("sweep", ""))
            for r in runs
        }
        return nrows, ncols, slots
    ncols = min(3, len(runs))
    nrows = math.ceil(len(runs) / ncols)
    return nrows, ncols, {(r.get("sweep", ""), r["variant"]): i for i, r in enumerate(runs)}


def _utilization_panel(ax: Axes, r: dict[str, Any], tel: pd.DataFrame, multi: bool) -> None:
    """One run's panel: its name and status as the title, a line per device, or "no telemetry"."""
    note = status_note(r, 80) if r.get("status") else ""
    title_text = textwrap.fill(row_label(r, multi) + (f" — {note}" if note else ""), 52)  # a panel's width
    ax.set_title(
        title_text,
        loc="left",
        fontsize=10,
        color=variant_color(str(r["variant"])) if r.get("status") in (OK, PARTIAL) else TEXT_GREY,
    )
    mine = (
        tel[(tel["variant"] == r["variant"]) & ((tel["sweep"] == r.get("sweep", "")) if "sweep" in tel else True)]
        if not tel.empty
        else tel
    )
    mine = mine.dropna(subset=["util_pct", "t_s"]) if not mine.empty else mine
    if mine.empty:
        ax.text(
            0.5, 0.5, "no telemetry", ha="center", va="center", color=TEXT_GREY, fontsize=11, transform=ax.transAxes
        )
        ax.set_yticks([])
        return
    _device_traces(ax, mine, str(r["variant"]))


def _device_traces(ax: Axes, mine: pd.DataFrame, variant: str) -> None:
    """A smoothed line per device in shades of the variant's colour, the y axis sized to the busiest."""
    lines = _device_lines(mine)
    span = float(mine["t_s"].max() - mine["t_s"].min())
    peak = 0.0
    for j, (name, rows) in enumerate(lines):
        rows = rows.sort_values("t_s")
        server = name == "server"
        # psutil's per-core figures count every process on the machine, not only vLLM's.
        label = "vLLM processes" if server else f"{name} (whole machine)" if name.startswith("cpu") else name
        smooth = _smooth(rows, span)
        peak = max(peak, float(smooth.max()))
        ax.plot(
            rows["t_s"],
            smooth,
            color=_shade(variant_color(variant), j, len(lines)),
            linestyle=SWEEP_LINES[j % 4],
            linewidth=2.0 if server or len(lines) <= 2 else 1.2,
            label=f"{label} · mean {rows['util_pct'].mean():.0f}%",
        )
    source = str(mine["source"].dropna().iloc[0]) if "source" in mine and mine["source"].notna().any() else "?"
    ax.set_ylim(0, 105 if source == "nvml" or peak <= 100 else peak * 1.12)
    ax.set_ylabel(_source_label(source), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.8)


def power_chart(timeline: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Per variant and device: mean utilization beside mean power over the replay. Utilization alone can
    mislead: NVML counts a pipeline stage waiting in an NCCL receive as busy; its power draw shows the wait."""
    title = "Utilization beside power, per device (mean over the replay): busy % can hide idle waiting, watts cannot"
    tel = timeline
    if tel.empty or "power_w" not in tel or pd.to_numeric(tel["power_w"], errors="coerce").notna().sum() == 0:
        return message(
            new_figure(10, 2.6), title, "no power readings in this folder (the CPU engine's psutil has none)"
        )
    tel = tel.assign(power_w=pd.to_numeric(tel["power_w"], errors="coerce"))
    if "t_s" in tel:
        tel = tel[tel["t_s"] >= 0]
    tel = tel[tel["device"].astype(str).str.startswith("gpu")]
    keys = [k for k in ("sweep", "variant") if k in tel]
    per = tel.groupby([*keys, "device"], as_index=False)[["util_pct", "power_w"]].mean()
    order = {r["variant"]: i for i, r in enumerate(summary_rows(summary))}
    per = per.sort_values(by=["variant", "device"], key=lambda s: s.map(order).fillna(99) if s.name == "variant"
                          else s.map(lambda d: _device_order(str(d))))  # fmt: skip
    fig = new_figure(12, 1.4 + 0.42 * len(per))
    left, right = fig.subplots(1, 2, sharey=True)
    labels = []
    top = per.loc[per["power_w"].idxmax()]
    for y, r in enumerate(per.to_dict("records")):
        color = variant_color(str(r["variant"]))
        labels.append(f"{row_label(r, 'sweep' in r)} · {r['device']}")
        left.barh(y, r["util_pct"], color=color, height=0.7)
        left.text(r["util_pct"] + 1, y, f"{r['util_pct']:.0f} %", va="center", fontsize=9)
        right.barh(y, r["power_w"], color=color, height=0.7)
        share = r["power_w"] / top["power_w"]
        right.text(r["power_w"] + 4, y, f"{r['power_w']:.0f} W ({share:.0%})", va="center", fontsize=9)
    right.axvline(top["power_w"], color=TEXT_GREY, linestyle="--", linewidth=1)
    right.text(top["power_w"], -0.9, f"100 % = {top['variant']} {top['device']}, {top['power_w']:.0f} W",
               ha="center", fontsize=8, color=TEXT_GREY)  # fmt: skip
    left.set_yticks(range(len(per)), labels)
    left.invert_yaxis()
    left.set_xlim(0, 118)
    left.set_xlabel("utilization, mean % (NVML: share of time any kernel runs)")
    right.set_xlim(0, per["power_w"].max() * 1.3)
    right.set_xlabel("power, mean W")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    return fig
