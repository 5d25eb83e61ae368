"""Where a request's time went: the server's phases and the time outside it, per variant and load level."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from bench.analyze.tables import level_means
from bench.report.charts.common import TEXT_GREY, message, new_figure, numeric_column

TITLE = "Where a request's time goes: the server's phases and the time outside it (means per level)"
# (label, colour) per stacked part, left to right in the order a request meets them, except "front end": vLLM
# stamps a request's arrival before it renders and tokenises the prompt and hands it to the engine core, and its
# e2e ends after the last output is processed, so e2e exceeds queue + prefill + decode; drawn after decode so the
# engine's own steps stay together.
PARTS = {
    "queue": ("queue", "#c7c7c7"),
    "prefill": ("prefill", "#ff7f0e"),
    "decode": ("decode", "#1f77b4"),
    "front_end": ("server front end (e2e - engine steps)", "#9edae5"),
    "outside": ("outside the server (client - server e2e)", "#d62728"),
}


def decomposition(trials: pd.DataFrame) -> pd.DataFrame:
    """Per variant (and sweep) and load level that the server's phases were measured at: the mean time of each
    part in seconds, which add up to the client's mean latency. Empty where no trial has phases (older runs)."""
    per = level_means(trials)
    if per.empty or "server_decode_s_mean" not in per:
        return pd.DataFrame()
    per = per[numeric_column(per, "server_decode_s_mean").notna()]
    keys = [k for k in ("sweep", "variant", "load", "level") if k in per]
    out = per[keys].copy()
    for part in ("queue", "prefill", "decode"):
        out[part] = numeric_column(per, f"server_{part}_s_mean").fillna(0.0)
    out["front_end"] = numeric_column(per, "server_e2e_s_mean") - out[["queue", "prefill", "decode"]].sum(axis=1)
    out["outside"] = numeric_column(per, "outside_engine_e2e_s")
    return out.reset_index(drop=True)


def _label(row: dict[str, object], multi: bool) -> str:
    unit = " req/s" if row.get("load") == "rate" else " in flight"
    name = f"{row['variant']} · {row['sweep']}" if multi else str(row["variant"])
    return f"{name} @ {float(row['level']):g}{unit}"  # type: ignore[arg-type]


def phases_chart(trials: pd.DataFrame) -> Figure:
    """One stacked bar per variant and load level: queue | prefill | decode | the server's front end | outside the
    server, in ms; the bar's end is the client's mean latency."""
    parts = decomposition(trials)
    if parts.empty:
        return message(new_figure(10, 2.6), TITLE, "no server phases in this folder (runs before /metrics phases)")
    multi = "sweep" in parts and parts["sweep"].nunique() > 1
    rows = parts.to_dict("records")
    fig = new_figure(12, 1.9 + 0.42 * len(rows))
    ax = fig.add_subplot()
    for y, r in enumerate(rows):
        left = 0.0
        for part, (label, color) in PARTS.items():
            # A part below 0 is clock skew between two processes' timestamps, not time: drawn as nothing.
            width = max(float(r[part]), 0.0) * 1000 if pd.notna(r[part]) else 0.0
            ax.barh(y, width, left=left, color=color, height=0.7, label=label if y == 0 else None)
            left += width
        # Spelled out: at one request in flight this part is a few ms, too thin to see in the bar.
        outside = f", {r['outside'] * 1000:,.1f} ms outside the server" if pd.notna(r["outside"]) else ""
        ax.text(left, y, f"  {left:,.0f} ms{outside}", va="center", fontsize=8, color=TEXT_GREY)
    ax.set_yticks(range(len(rows)), [_label(r, multi) for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, ax.get_xlim()[1] * 1.2)  # room for the totals
    ax.set_xlabel("mean time per request (ms)")
    ax.set_title(TITLE, loc="left", fontsize=12)
    fig.legend(loc="outside lower center", ncols=len(PARTS), frameon=False, fontsize=8)
    return fig
