"""Charts of a results folder: DataFrames from bench.analysis in, a matplotlib Figure out; nothing saved."""

from __future__ import annotations

import math
import re
import textwrap
import zlib
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bench.analysis import latency_ecdf
from bench.metric_registry import label as metric_label
from bench.results import OK, PARTIAL

# One colour per variant in every chart and every sweep, so a reader learns it once.
KNOWN_COLORS = {
    "single": "#1f77b4", "tp2": "#ff7f0e", "pp2": "#2ca02c",
    "spec_draft": "#d62728", "spec_ngram": "#9467bd", "awq": "#8c564b",
}  # fmt: skip
# Other names hash into these; none is grey, which means "failed".
_OTHER_COLORS = [
    "#e377c2", "#bcbd22", "#17becf", "#393b79", "#e6550d", "#31a354",
    "#7b4173", "#637939", "#3182bd", "#d6616b", "#5254a3", "#ce6dbd",
]  # fmt: skip
FAILED_COLOR = "#b0b0b0"
TEXT_GREY = "#555555"
# A second sweep in a comparison keeps the variant's colour and changes only line style / hatch / marker.
SWEEP_LINES = ["-", "--", ":", "-."]
SWEEP_HATCHES = ["", "..", "xx", "\\\\"]
SWEEP_MARKERS = ["o", "s", "^", "D"]
MAX_CORE_LINES = 8  # beyond this many CPU cores, per-core lines become a smear: plot their mean and max


def variant_color(variant: str) -> str:
    """Fixed colours for the known variants; a stable hash (crc32, not the salted hash()) for others."""
    return KNOWN_COLORS.get(variant) or _OTHER_COLORS[zlib.crc32(variant.encode()) % len(_OTHER_COLORS)]


def short_reason(reason: object, limit: int = 60) -> str:
    """The first clause of a failure reason, cut to fit beside a bar."""
    if not isinstance(reason, str) or not reason.strip():
        return "no reason recorded"
    text = re.split(r": |; |\n", reason.strip(), maxsplit=1)[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _figure(width: float, height: float) -> Figure:
    # An explicit Agg canvas instead of pyplot: no global state, no display needed, safe in threads.
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, index=df.index, dtype=float)


def _sweeps(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["sweep"])) if "sweep" in df and not df.empty else [""]


def _runs(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """Summary rows as dicts, one variant's sweeps next to each other, keeping the summary's variant order."""
    if summary.empty:
        return []
    rows = summary.to_dict("records")
    order = list(dict.fromkeys(r["variant"] for r in rows))
    sweeps = _sweeps(summary)
    return sorted(rows, key=lambda r: (order.index(r["variant"]), sweeps.index(r.get("sweep", ""))))


def _label(row: dict[str, Any], multi: bool) -> str:
    return f"{row['variant']} · {row['sweep']}" if multi else str(row["variant"])


def _status_note(row: dict[str, Any], limit: int = 60) -> str:
    status = row.get("status")
    if status == OK:
        return ""
    if status == PARTIAL:
        m = re.search(r"(\d+) of (\d+) requests", str(row.get("reason") or ""))
        return f"partial ({m.group(1)} of {m.group(2)} requests)" if m else "partial"
    return f"{status or 'unknown'}: {short_reason(row.get('reason'), limit)}"


def _message(fig: Figure, title: str, text: str) -> Figure:
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title, loc="left", fontsize=12)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color=TEXT_GREY, transform=ax.transAxes)
    return fig


def _sweep_legend(fig: Figure, sweeps: list[str], kind: str) -> None:
    if len(sweeps) < 2:
        return
    marker = kind == "marker"
    handles = [
        Patch(facecolor="white", edgecolor="black", hatch=SWEEP_HATCHES[i % 4], label=s)
        if kind == "hatch"
        else Line2D(
            [],
            [],
            color="black",
            label=s,
            linestyle="None" if marker else SWEEP_LINES[i % 4],  # type: ignore[arg-type]
            marker=SWEEP_MARKERS[i % 4] if marker else None,
        )
        for i, s in enumerate(sweeps)
    ]
    fig.legend(handles=handles, title="sweep", loc="outside lower center", ncols=len(sweeps), frameon=False)


def wall_clock_chart(summary: pd.DataFrame, baseline: str = "single") -> Figure:
    """Horizontal bar per variant: time to replay the request set, speed-up over the baseline written on it."""
    rows = _runs(summary)
    sweeps = _sweeps(summary)
    multi = len(sweeps) > 1
    fig = _figure(10, 1.2 + 0.45 * max(len(rows), 1))
    title = f"Wall clock per variant to replay the same requests (speed-up vs {baseline}; shorter is faster)"
    if not rows:
        return _message(fig, title, "no runs in this results folder")
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
            note = (f"{wall / scale:.1f} {unit} · " if wall else "") + _status_note(r, 90)
        ax.text(
            wall / scale + top * 0.01, y, note, va="center", fontsize=9, color="black" if status == OK else TEXT_GREY
        )
    ax.set_yticks(range(len(rows)), [_label(r, multi) for r in rows])
    ax.invert_yaxis()  # baseline (first in the summary) on top, like the table
    ax.set_xlim(0, top * 1.6)  # room for the notes right of the bars
    ax.set_xlabel(f"wall clock ({'min' if in_min else 's'}) for the whole request set")
    ax.grid(axis="x", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title, loc="left", fontsize=11)
    _sweep_legend(fig, sweeps, "hatch")
    return fig


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
    tel = (
        timeline
        if "t_s" in timeline or timeline.empty
        else timeline.assign(t_s=timeline["time"] - timeline["time"].min())
    )
    runs = _runs(summary)
    sweeps = _sweeps(summary if not summary.empty else tel)
    multi = len(sweeps) > 1
    known = {(r.get("sweep", ""), r["variant"]) for r in runs}
    if not tel.empty:  # telemetry of a variant the summary lacks still gets a panel
        for key in dict.fromkeys(zip(tel["sweep"] if "sweep" in tel else [""] * len(tel), tel["variant"], strict=True)):
            if key not in known:
                runs.append({"sweep": key[0], "variant": key[1], "status": None})
    sources = sorted(set(tel["source"].dropna().astype(str))) if "source" in tel and not tel.empty else []
    what = "GPU utilization" if sources == ["nvml"] else "CPU use" if sources == ["psutil"] else "Device utilization"
    title = f"{what} over time per device, per variant (an idle device next to a busy one = imbalance)"
    if not runs:
        return _message(_figure(10, 3), title, "no runs in this results folder")
    if multi:  # rows = variants, columns = sweeps, so the same variant lines up across sweeps
        variants = list(dict.fromkeys(r["variant"] for r in runs))
        ncols, nrows = len(sweeps), len(variants)
        slots = {
            (r.get("sweep", ""), r["variant"]): variants.index(r["variant"]) * ncols + sweeps.index(r.get("sweep", ""))
            for r in runs
        }
    else:
        ncols = min(3, len(runs))
        nrows = math.ceil(len(runs) / ncols)
        slots = {(r.get("sweep", ""), r["variant"]): i for i, r in enumerate(runs)}
    fig = _figure(4.2 * ncols + 0.8, 2.7 * nrows + 0.8)
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
    used = set(slots.values())
    for i in set(range(len(axes))) - used:
        axes[i].set_axis_off()
    for r in runs:
        key = (r.get("sweep", ""), r["variant"])
        ax: Axes = axes[slots[key]]
        note = _status_note(r, 80) if r.get("status") else ""
        title_text = textwrap.fill(_label(r, multi) + (f" — {note}" if note else ""), 52)  # a panel's width
        ax.set_title(
            title_text,
            loc="left",
            fontsize=10,
            color=variant_color(str(r["variant"])) if r.get("status") in (OK, PARTIAL) else TEXT_GREY,
        )
        mine = (
            tel[(tel["variant"] == r["variant"]) & ((tel["sweep"] == key[0]) if "sweep" in tel else True)]
            if not tel.empty
            else tel
        )
        mine = mine.dropna(subset=["util_pct", "t_s"]) if not mine.empty else mine
        if mine.empty:
            ax.text(
                0.5, 0.5, "no telemetry", ha="center", va="center", color=TEXT_GREY, fontsize=11, transform=ax.transAxes
            )
            ax.set_yticks([])
            continue
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
                color=_shade(variant_color(str(r["variant"])), j, len(lines)),
                linestyle=SWEEP_LINES[j % 4],
                linewidth=2.0 if server or len(lines) <= 2 else 1.2,
                label=f"{label} · mean {rows['util_pct'].mean():.0f}%",
            )
        source = str(mine["source"].dropna().iloc[0]) if "source" in mine and mine["source"].notna().any() else "?"
        ax.set_ylim(0, 105 if source == "nvml" or peak <= 100 else peak * 1.12)
        ax.set_ylabel(_source_label(source), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best", framealpha=0.8)
    for i, ax in enumerate(axes):  # the lowest panel of each column, even above an empty slot
        if i in used and (i + ncols >= len(axes) or i + ncols not in used):
            ax.tick_params(labelbottom=True)
            ax.set_xlabel("s since the run's first request (lines: rolling mean)")
    fig.suptitle(title, x=0.01, ha="left", fontsize=12)
    return fig


_LATENCY_PANELS = [
    ("ttft_s", "Time to first token (TTFT)"),
    ("tpot_s", "Time per output token (TPOT)"),
    ("latency_s", "End-to-end latency"),
]


def latency_chart(requests: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """ECDFs of TTFT, TPOT and end-to-end latency, one line per variant (successful requests only)."""
    fig = _figure(13, 4.6)
    title = "Latency distributions per variant (ECDF of successful requests; further left = faster)"
    runs = _runs(summary)
    sweeps = _sweeps(summary if not summary.empty else requests)
    multi = len(sweeps) > 1
    if requests.empty:
        return _message(fig, title, "no request records in this results folder")
    axes = fig.subplots(1, 3)
    keys = [k for k in ("sweep", "variant") if k in requests]
    plotted: set[tuple] = set()
    for ax, (col, name) in zip(axes, _LATENCY_PANELS, strict=True):
        ecdf = latency_ecdf(requests, col)
        # Milliseconds where the values are small, so ticks read 120 ms rather than 0.12 s.
        ms = not ecdf.empty and ecdf["value"].median() < 1.0
        for r in runs or ecdf[keys].drop_duplicates().assign(status=OK).to_dict("records"):
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
                label=f"{_label(r, multi)}{note} · n={len(line)}",
            )
        ax.set_title(name, fontsize=11)
        ax.set_xlabel(f"{name.split(' (')[0].lower()} ({'ms' if ms else 's'})")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        if ecdf.empty:
            ax.text(0.5, 0.5, "no values recorded", ha="center", va="center", color=TEXT_GREY, transform=ax.transAxes)
    axes[0].set_ylabel("share of requests at or below x")
    handles, labels = axes[0].get_legend_handles_labels()
    missing = [
        f"{_label(r, multi)} ({_status_note(r, 90) or 'no successful requests'})"
        for r in runs
        if (r.get("sweep", ""), r["variant"]) not in plotted
    ]
    if missing:
        handles.append(Patch(color=FAILED_COLOR))
        labels.append("not shown: " + "; ".join(missing))
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(handles)), fontsize=9, frameon=False)
    fig.suptitle(title, x=0.01, ha="left", fontsize=12)
    return fig


def quality_speed_chart(summary: pd.DataFrame, baseline: str = "single") -> Figure:
    """F1 against output tokens/s, one labelled point per variant: is the faster variant still as right?"""
    fig = _figure(9, 5.5)
    title = "Answer quality vs speed per variant (up = more accurate, right = faster)"
    runs = _runs(summary)
    sweeps = _sweeps(summary)
    multi = len(sweeps) > 1
    points = [
        r
        for r in runs
        if pd.notna(pd.to_numeric(r.get("f1"), errors="coerce"))
        and pd.notna(pd.to_numeric(r.get("output_tok_per_s"), errors="coerce"))
    ]
    if not points:
        return _message(fig, title, "no variant has both an F1 and a throughput to plot")
    ax = fig.add_subplot()
    xs = [float(r["output_tok_per_s"]) for r in points]
    x_top = max(xs) * 1.25 or 1.0
    texts = []
    for r, x in zip(points, xs, strict=True):
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
        texts.append(
            ax.annotate(
                label,
                (x, y),
                xytext=(9, 9),
                textcoords="offset points",
                fontsize=10,
                color=color,
                va="center",
            )
        )
    ax.set_xlim(0, x_top)
    # Zoomed to the data, with room above for the labels: small models cluster near F1 0.1-0.2.
    ax.set_ylim(-0.03, min(1.05, max(0.25, 1.6 * max(float(r["f1"]) for r in points)) + 0.05))
    _declutter(fig, ax, texts)
    ax.set_xlabel(f"{metric_label('output_tok_per_s')} (whole request set, sequential)")
    ax.set_ylabel(f"{metric_label('f1')} (SQuAD token overlap, 0–1)")
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title, loc="left", fontsize=11)
    left_out = [f"{_label(r, multi)}: {_status_note(r, 90) or 'no F1 or throughput'}" for r in runs if r not in points]
    if left_out:
        ax.text(
            0.01,
            0.99,
            "not plotted: " + "; ".join(left_out),
            transform=ax.transAxes,
            fontsize=9,
            color=TEXT_GREY,
            va="top",
            wrap=True,
        )
    _sweep_legend(fig, sweeps, "marker")
    return fig


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


def speculative_chart(summary: pd.DataFrame) -> Figure:
    """Acceptance rate and mean acceptance length of the variants that speculate; says so when none do."""
    title = "Speculative decoding: share of drafted tokens accepted, tokens gained per step"
    runs = _runs(summary)
    sweeps = _sweeps(summary)
    multi = len(sweeps) > 1
    spec = [r for r in runs if pd.notna(pd.to_numeric(r.get("spec_acceptance_rate"), errors="coerce"))]
    # A speculative variant that failed has no figures; name it rather than let it vanish.
    failed = [r for r in runs if r not in spec and str(r["variant"]).startswith("spec")]
    note = "; ".join(f"{_label(r, multi)}: {_status_note(r) or 'no speculative metrics'}" for r in failed)
    if not spec:
        return _message(
            _figure(10, 2.6), title, "no speculative variants in this sweep" + (f"\n({note})" if note else "")
        )
    fig = _figure(11, 1.6 + 0.5 * len(spec))
    ax_rate, ax_len = fig.subplots(1, 2, sharey=True)
    labels = [_label(r, multi) + (" (partial)" if r.get("status") == PARTIAL else "") for r in spec]
    for y, r in enumerate(spec):
        style = {
            "color": variant_color(str(r["variant"])),
            "hatch": SWEEP_HATCHES[sweeps.index(r.get("sweep", "")) % 4],
            "edgecolor": "white",
            "height": 0.65,
            "alpha": 0.55 if r.get("status") == PARTIAL else 1.0,
        }
        rate = float(r["spec_acceptance_rate"]) * 100
        ax_rate.barh(y, rate, **style)
        ax_rate.text(rate + 1.5, y, f"{rate:.0f}%", va="center", fontsize=9)
        length = pd.to_numeric(r.get("spec_mean_acceptance_length"), errors="coerce")
        if pd.notna(length):
            ax_len.barh(y, float(length), **style)
            ax_len.text(float(length) + 0.05, y, f"{length:.2f}", va="center", fontsize=9)
    ax_rate.set_yticks(range(len(spec)), labels)
    ax_rate.invert_yaxis()
    ax_rate.set_xlim(0, 115)
    ax_rate.set_xlabel("acceptance rate (% of drafted tokens)")
    lengths = pd.to_numeric(pd.Series([r.get("spec_mean_acceptance_length") for r in spec]), errors="coerce")
    ax_len.set_xlim(0, max(float(lengths.max()) if lengths.notna().any() else 1.0, 1.0) * 1.2)
    ax_len.set_xlabel("mean acceptance length (tokens per target step, ≥ 1)")
    for ax in (ax_rate, ax_len):
        ax.grid(axis="x", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(title, x=0.01, ha="left", fontsize=12)
    if note:
        fig.text(0.01, 0.0, f"no figures: {note}", fontsize=9, color=TEXT_GREY, va="bottom")
    _sweep_legend(fig, sweeps, "hatch")
    return fig


def load_chart(trials: pd.DataFrame) -> Figure:
    """Throughput against load, and latency against throughput, per variant (mean over passes)."""
    fig = _figure(12, 4.2)
    title = "Output throughput and latency as the load rises, per variant"
    if trials.empty or trials.groupby("variant")["level"].nunique().max() < 2:
        return _message(fig, title, "one load level per variant: sweep load.levels to draw this chart")
    rate = "load" in trials and bool((trials["load"] == "rate").any())
    per = trials.groupby(["variant", "level"], as_index=False)[["output_tok_per_s", "latency_s_p50"]].mean()
    left, right = fig.subplots(1, 2)
    for variant, rows in per.groupby("variant"):
        rows = rows.sort_values("level")
        color = variant_color(str(variant))
        left.plot(rows["level"], rows["output_tok_per_s"], marker="o", color=color, label=str(variant))
        right.plot(rows["output_tok_per_s"], rows["latency_s_p50"], marker="o", color=color, label=str(variant))
        for _, r in rows.iterrows():
            right.annotate(f"{r['level']:g}", (r["output_tok_per_s"], r["latency_s_p50"]), fontsize=8,
                           xytext=(4, 4), textcoords="offset points")  # fmt: skip
    left.set_xlabel("request rate (req/s)" if rate else "concurrency (requests in flight)")
    left.set_ylabel(metric_label("output_tok_per_s"))
    left.set_title("throughput vs load", loc="left")
    right.set_xlabel(metric_label("output_tok_per_s"))
    right.set_ylabel(f"end-to-end {metric_label('latency_s_p50')}")
    right.set_title("latency vs throughput (labels: load level)", loc="left")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.margins(x=0.08, y=0.15)  # room for the level labels at the ends
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    fig.suptitle(title, x=0.01, ha="left")
    return fig
