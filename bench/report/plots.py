"""Charts of a results folder: DataFrames from bench.analyze.tables in, a matplotlib Figure out; nothing saved."""

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

from bench.analyze.tables import crossover, latency_ecdf, level_means, pareto_front
from bench.core.metric_registry import label as metric_label
from bench.core.records import OK, PARTIAL

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
    searched = "phase" in trials and bool((trials["phase"].fillna("fixed") != "fixed").any())
    keys = ["variant", "level", *(["phase"] if searched else [])]
    cols = ["output_tok_per_s", "latency_s_p50", "requests_per_s"]
    per = trials.groupby(keys, as_index=False)[[c for c in cols if c in trials]].mean()
    if searched:  # load=sweep mixes concurrencies and rates: the achieved request rate is one axis for both
        per["level"] = per["requests_per_s"]
    left, right = fig.subplots(1, 2)
    for variant, rows in per.groupby("variant"):
        rows = rows.sort_values("level")
        color = variant_color(str(variant))
        left.plot(rows["level"], rows["output_tok_per_s"], marker="o", color=color, label=str(variant))
        right.plot(rows["output_tok_per_s"], rows["latency_s_p50"], marker="o", color=color, label=str(variant))
        for _, r in rows.iterrows():
            tag = f"{r['level']:.2g}" if searched else f"{r['level']:g}"
            right.annotate(tag, (r["output_tok_per_s"], r["latency_s_p50"]), fontsize=8,
                           xytext=(4, 4), textcoords="offset points")  # fmt: skip
    left.set_xlabel("achieved request rate (req/s)" if searched else "request rate (req/s)" if rate
                    else "concurrency (requests in flight)")  # fmt: skip
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


def _param_axis(params: pd.DataFrame) -> tuple[str, list[str]]:
    """The swept key drawn on x (the first numeric one) and the others, which split lines."""
    keys = [c for c in params.columns if c not in ("variant", "base_variant")]
    numeric = [k for k in keys if pd.to_numeric(params[k], errors="coerce").notna().all()]
    x = numeric[0] if numeric else keys[0]
    return x, [k for k in keys if k != x]


def sweep_chart(summary: pd.DataFrame, params: pd.DataFrame, baseline: str = "single") -> Figure:
    """Each metric against the swept value, one line per variant (and per value of any other swept key)."""
    title = "Metrics against the swept parameter, per variant"
    if params.empty or summary.empty:
        return _message(_figure(10, 2.6), title, "no swept parameters in this folder (e.g. +sweep=spec_k)")
    x_key, others = _param_axis(params)
    data = params.merge(summary.drop(columns=["base_variant"], errors="ignore"), on="variant", how="left")
    data["x"] = pd.to_numeric(data[x_key], errors="coerce") if x_key not in others else data[x_key]
    has_base = bool(_num(data, "speedup").notna().any())
    panels = [
        ("speedup", f"speed-up over {baseline} (x)", 1.0) if has_base else ("output_tok_per_s", "output tok/s", 1.0),
        ("spec_acceptance_rate", "acceptance rate (% of drafted tokens)", 100.0),
        ("tpot_s_p50", "TPOT p50 (ms)", 1000.0),
        ("identical_to_baseline", f"answers identical to {baseline}'s (%)", 100.0),
    ]
    panels = [p for p in panels if _num(data, p[0]).notna().any()]
    fig = _figure(4.0 * len(panels) + 0.6, 4.4)
    axes = fig.subplots(1, len(panels), squeeze=False).ravel()
    groups = list(data.groupby(["base_variant", *others], sort=True, dropna=False))
    for ax, (col, label, scale) in zip(axes, panels, strict=True):
        for j, (key, rows) in enumerate(groups):
            base = key[0] if isinstance(key, tuple) else key
            rows = rows.sort_values("x")
            name = str(base) + "".join(f", {k}={v}" for k, v in zip(others, key[1:], strict=False))
            y = _num(rows, col) * scale
            ax.plot(rows["x"], y, marker="o", color=variant_color(str(base)), linestyle=SWEEP_LINES[j % 4],
                    label=name)  # fmt: skip
            if col in ("speedup", "output_tok_per_s") and y.notna().any():
                best = rows.loc[y.idxmax()]
                ax.annotate(f"best: {x_key.rsplit('.', 1)[-1]}={best['x']:g}\n{y.max():.2f}",
                            (best["x"], y.max()), xytext=(0, 12), textcoords="offset points", ha="center",
                            fontsize=9, color=variant_color(str(base)))  # fmt: skip
        if col == "speedup":
            ax.axhline(1.0, color=TEXT_GREY, linewidth=1, linestyle=":")
            ax.text(ax.get_xlim()[0], 1.0, f" {baseline}", va="bottom", fontsize=8, color=TEXT_GREY)
        ax.set_xlabel(x_key.rsplit(".", 1)[-1])
        ax.set_title(label, loc="left", fontsize=10)
        ax.grid(alpha=0.3)
        ax.margins(y=0.2)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].legend(fontsize=8, loc="lower left")
    if not has_base:
        fig.text(0.01, 0.0, f"no ok {baseline} run in this folder: run it there for speed-ups", fontsize=9,
                 color=TEXT_GREY)  # fmt: skip
    fig.suptitle(f"{title} ({x_key})", x=0.01, ha="left", fontsize=12)
    return fig


def pareto_chart(trials: pd.DataFrame) -> Figure:
    """Per variant, every load level as a point; the Pareto front (nothing beats it on both axes) joined."""
    title = "Throughput against per-user speed and latency across load levels (front: nothing beats it on both)"
    per = level_means(trials)
    if per.empty or per.groupby("variant")["level"].nunique().max() < 2:
        return _message(_figure(12, 3), title, "one load level per variant: sweep the load (load=sweep) to draw this")
    per = per.assign(tok_s_user=1.0 / _num(per, "tpot_s_p50"))
    fig = _figure(13, 5.2)
    left, right = fig.subplots(1, 2)
    for variant, rows in per.groupby("variant"):
        color = variant_color(str(variant))
        rows = rows.sort_values("output_tok_per_s")
        left.scatter(rows["output_tok_per_s"], rows["tok_s_user"], color=color, alpha=0.35, s=30)
        front = rows[pareto_front(rows, "output_tok_per_s", "tok_s_user")]
        left.plot(front["output_tok_per_s"], front["tok_s_user"], marker="o", color=color, linewidth=2.2,
                  label=f"{variant} (front: {len(front)} of {len(rows)} levels)")  # fmt: skip
        for _, r in front.iterrows():
            tag = {"synchronous": "sync", "throughput": "max"}.get(str(r["phase"])) or (
                f"{r['level']:.2g}/s" if r["load"] == "rate" else f"c={r['level']:g}"
            )
            left.annotate(tag, (r["output_tok_per_s"], r["tok_s_user"]), fontsize=8, xytext=(4, 4),
                          textcoords="offset points", color=color)  # fmt: skip
        for col, marker, style in (("latency_s_p50", "o", "-"), ("latency_s_p99", "^", "--")):
            if col not in rows:
                continue
            right.scatter(rows["output_tok_per_s"], rows[col], color=color, alpha=0.35, s=30, marker=marker)
            front = rows[pareto_front(rows, "output_tok_per_s", col, maximize_y=False)]
            right.plot(front["output_tok_per_s"], front[col], marker=marker, color=color, linestyle=style,
                       linewidth=2.0, label=f"{variant} {col.split('_')[-1]}")  # fmt: skip
    left.set_xlabel("output tokens/s, all users")
    left.set_ylabel("output tokens/s per user (1 / TPOT p50)")
    left.set_title("per-user speed vs total throughput (up-right is better)", loc="left", fontsize=10)
    right.set_xlabel("output tokens/s, all users")
    right.set_ylabel("end-to-end latency (s)")
    right.set_title("latency p50 (o) and p99 (^) vs throughput (down-right is better)", loc="left", fontsize=10)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.12)  # room for the labels above the top points
        ax.set_xlim(0, ax.get_xlim()[1] * 1.05)
    left.legend(fontsize=8, loc="lower left")  # both panels' empty corner: per-user speed falls as load rises,
    right.legend(fontsize=8, loc="upper left")  # latency rises with throughput
    fig.suptitle(title + "; faint points are off the front; labels: load level (c= in flight, /s rate)", x=0.01,
                 ha="left", fontsize=11)  # fmt: skip
    return fig


def crossover_chart(trials: pd.DataFrame, summary: pd.DataFrame, baseline: str = "single") -> Figure:
    """Speed-up of each speculative variant over the baseline as the load rises; where it drops below 1x."""
    title = f"Speculation against load: speed-up over {baseline} at each load level (below 1x: slower)"
    spec = [str(r["variant"]) for r in _runs(summary)
            if pd.notna(pd.to_numeric(r.get("spec_acceptance_rate"), errors="coerce"))]  # fmt: skip
    points = crossover(trials, baseline, spec)
    points = points.dropna(subset=["speedup"])
    if points.empty or points.groupby("variant")["level"].nunique().max() < 2:
        why = "no speculative variant" if not spec else f"no load levels shared with {baseline}"
        return _message(_figure(10, 2.6), title, f"{why}: run load=concurrency_sweep with {baseline} and spec_*")
    fig = _figure(10, 5.2)
    ax = fig.add_subplot()
    for (variant, load), rows in points.groupby(["variant", "load"]):
        rows = rows.sort_values("level")
        color = variant_color(str(variant))
        for _, r in rows.iterrows():
            ax.annotate(f"{r['speedup']:.2f}x", (r["level"], r["speedup"]), xytext=(0, 8), textcoords="offset points",
                        ha="center", fontsize=8, color=color)  # fmt: skip
        where = _first_below_one(rows["level"].tolist(), rows["speedup"].tolist())
        unit = "req/s" if load == "rate" else "in flight"
        if where is None:
            note = f"at or above 1x up to {rows['level'].max():g} {unit}"
        elif (rows["speedup"] < 1).all():  # no crossover to mark: slower at every level measured
            note = f"below 1x at every level, {rows['level'].min():g} to {rows['level'].max():g} {unit}"
        else:
            ax.axvline(where, color=color, linestyle="--", linewidth=1.2)
            # At the top of the axes, clear of the points around 1x, on the side of the line with room.
            late = math.log2(where) > (math.log2(rows["level"].min()) + math.log2(rows["level"].max())) / 2
            ax.annotate(f" first below 1x at ≈ {where:.1f} {unit} ", (where, 0.97), xycoords=("data", "axes fraction"),
                        va="top", ha="right" if late else "left", fontsize=9, color=color)  # fmt: skip
            note = f"first below 1x at ≈ {where:.1f} {unit}"
        ax.plot(rows["level"], rows["speedup"], marker="o", color=color, linewidth=2, label=f"{variant}: {note}")
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:g}")
    ax.set_xticks(sorted(points["level"].unique()))
    rate = bool((points["load"] == "rate").all())
    ax.set_xlabel("request rate (req/s; speed-up = latency p50 ratio)" if rate
                  else "concurrency (requests in flight; speed-up = output tok/s ratio)")  # fmt: skip
    ax.set_ylabel(f"speed-up over {baseline} (x)")
    ax.margins(y=0.2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="lower left")
    ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    return fig


def _first_below_one(levels: list[float], speedups: list[float]) -> float | None:
    """The load where the speed-up first crosses below 1x, interpolated on log2(level); the first level if
    it starts below; None if it never drops below."""
    for i, s in enumerate(speedups):
        if s < 1.0:
            if i == 0:
                return float(levels[0])
            a, b = math.log2(levels[i - 1]), math.log2(levels[i])
            f = (speedups[i - 1] - 1.0) / (speedups[i - 1] - s)
            return float(2 ** (a + f * (b - a)))
    return None


def power_chart(timeline: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Per variant and device: mean utilization beside mean power over the replay. Utilization alone can
    mislead: NVML counts a pipeline stage waiting in an NCCL receive as busy; its power draw shows the wait."""
    title = "Utilization beside power, per device (mean over the replay): busy % can hide idle waiting, watts cannot"
    tel = timeline
    if tel.empty or "power_w" not in tel or pd.to_numeric(tel["power_w"], errors="coerce").notna().sum() == 0:
        return _message(_figure(10, 2.6), title, "no power readings in this folder (the CPU engine's psutil has none)")
    tel = tel.assign(power_w=pd.to_numeric(tel["power_w"], errors="coerce"))
    if "t_s" in tel:
        tel = tel[tel["t_s"] >= 0]
    tel = tel[tel["device"].astype(str).str.startswith("gpu")]
    keys = [k for k in ("sweep", "variant") if k in tel]
    per = tel.groupby([*keys, "device"], as_index=False)[["util_pct", "power_w"]].mean()
    order = {r["variant"]: i for i, r in enumerate(_runs(summary))}
    per = per.sort_values(by=["variant", "device"], key=lambda s: s.map(order).fillna(99) if s.name == "variant"
                          else s.map(lambda d: _device_order(str(d))))  # fmt: skip
    fig = _figure(12, 1.4 + 0.42 * len(per))
    left, right = fig.subplots(1, 2, sharey=True)
    labels = []
    top = per.loc[per["power_w"].idxmax()]
    for y, r in enumerate(per.to_dict("records")):
        color = variant_color(str(r["variant"]))
        labels.append(f"{_label(r, 'sweep' in r)} · {r['device']}")
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


def search_chart(searches: pd.DataFrame) -> Figure:
    """load=slo_search: the share of requests meeting every SLO at each rate tried, the goal, the answer."""
    title = "SLO search: share of requests meeting every SLO at each request rate tried"
    rows = searches[searches["mode"] == "slo_search"] if "mode" in searches else searches
    if rows.empty or "req_per_s" not in rows:
        return _message(_figure(10, 2.6), title, "no load=slo_search run in this folder")
    fig = _figure(10, 4.8)
    ax = fig.add_subplot()
    for variant, r in rows.groupby("variant"):
        color = variant_color(str(variant))
        tried = r.dropna(subset=["slo_met_share"]).copy()
        peak = float(r["max_req_per_s"].iloc[0])
        tried["x"] = tried["req_per_s"].fillna(peak)  # the throughput level: as fast as the server answers
        ax.scatter(tried["x"], tried["slo_met_share"] * 100, color=color, s=50, zorder=3, label=str(variant))
        for order, t in enumerate(tried.to_dict("records"), 1):
            tag = "max" if t["phase"] == "throughput" else f"#{order}"
            ax.annotate(tag, (t["x"], t["slo_met_share"] * 100), xytext=(5, 5), textcoords="offset points",
                        fontsize=8, color=color)  # fmt: skip
        best = r["best_req_per_s"].iloc[0]
        if pd.notna(best):
            ax.axvline(best, color=color, linewidth=2)
            # Beside the line, on the side with room: the answer is often close to the maximum throughput.
            right_half = best > 0.55 * max(peak, float(tried["x"].max()))
            ax.annotate(f"{variant}: {best:.2f} req/s meets the SLOs\n({r['stopped'].iloc[0]})", (best, 45),
                        xytext=(-6 if right_half else 6, 0), textcoords="offset points", fontsize=9, color=color,
                        ha="right" if right_half else "left")  # fmt: skip
        goal = r["goal_share"].iloc[0]
    ax.axhline(goal * 100, color="black", linestyle="--", linewidth=1)
    ax.text(0.005, goal * 100 + 1.5, f"goal: {goal:.0%} of requests", fontsize=9,
            transform=ax.get_yaxis_transform())  # fmt: skip
    ax.set_ylim(-3, 110)
    ax.set_xlim(0, ax.get_xlim()[1] * 1.08)  # room for the labels right of the last point
    ax.set_xlabel("request rate (req/s; 'max' = all requests at once)")
    ax.set_ylabel("requests meeting every SLO (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="lower left")
    fig.suptitle(title + " (#n: order tried)", x=0.01, ha="left", fontsize=11)
    return fig


def trend_chart(variant: str, metric: str, level: float, lines: list[Any], changes: list[Any]) -> Figure:
    """One metric of one variant run after run: a line per machine (points with interval bars), provenance
    changes as grey marks, change points shaded red (worse) or green (better) with the step. Runs are evenly
    spaced in time order (nights are missed, batches bunch up), labelled with their time.
    `lines`: (label, rows with run_time/value/low/high, [(run time, what changed)]); `changes`: ChangePoints."""
    from bench.core.metric_registry import METRICS

    spec = METRICS.get(metric)
    scale = spec.scale if spec else 1.0
    fig = _figure(10, 4.6)
    ax = fig.add_subplot()
    title = f"{variant} · {spec.label if spec else metric}" + (f" · load level {level:g}" if level != 1.0 else "")
    times = sorted({t for _, rows, _ in lines for t in rows["run_time"]})
    pos = {t: i for i, t in enumerate(times)}
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf"]
    for i, (label, rows, marks) in enumerate(lines):
        color = palette[i % len(palette)]
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
    for c in changes:
        color = {True: "#d62728", False: "#2ca02c"}.get(c.worse, "#555555")
        good, bad = pos[pd.Timestamp(c.last_good)], pos[pd.Timestamp(c.first_bad)]
        ax.axvspan(good, bad, color=color, alpha=0.12, lw=0)
        ax.annotate(f"{c.step:+.0%} [{c.step_low:+.0%}, {c.step_high:+.0%}]", (bad, 0.02),
                    xycoords=("data", "axes fraction"), fontsize=8, color=color, xytext=(3, 0),
                    textcoords="offset points")  # fmt: skip
    days = len(times) > 1 and (times[-1] - times[0]) > pd.Timedelta(days=2)
    every = max(1, math.ceil(len(times) / 16))
    ax.set_xticks(range(0, len(times), every),
                  [t.strftime("%m-%d" if days else "%m-%d %H:%M") for t in times[::every]], rotation=45,
                  ha="right", fontsize=8)  # fmt: skip
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
