"""Colours and helpers every chart shares: one colour per variant, figures without pyplot, message panels."""

from __future__ import annotations

import re
import zlib
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

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


def variant_color(variant: str) -> str:
    """Fixed colours for the known variants; a stable hash (crc32, not the salted hash()) for others."""
    return KNOWN_COLORS.get(variant) or _OTHER_COLORS[zlib.crc32(variant.encode()) % len(_OTHER_COLORS)]


def short_reason(reason: object, limit: int = 60) -> str:
    """The first clause of a failure reason, cut to fit beside a bar."""
    if not isinstance(reason, str) or not reason.strip():
        return "no reason recorded"
    text = re.split(r": |; |\n", reason.strip(), maxsplit=1)[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def new_figure(width: float, height: float) -> Figure:
    # An explicit Agg canvas instead of pyplot: no global state, no display needed, safe in threads.
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def numeric_column(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, index=df.index, dtype=float)


def sweep_names(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["sweep"])) if "sweep" in df and not df.empty else [""]


def summary_rows(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """Summary rows as dicts, one variant's sweeps next to each other, keeping the summary's variant order."""
    if summary.empty:
        return []
    rows = summary.to_dict("records")
    order = list(dict.fromkeys(r["variant"] for r in rows))
    sweeps = sweep_names(summary)
    return sorted(rows, key=lambda r: (order.index(r["variant"]), sweeps.index(r.get("sweep", ""))))


def row_label(row: dict[str, Any], multi: bool) -> str:
    return f"{row['variant']} · {row['sweep']}" if multi else str(row["variant"])


def status_note(row: dict[str, Any], limit: int = 60) -> str:
    status = row.get("status")
    if status == OK:
        return ""
    if status == PARTIAL:
        m = re.search(r"(\d+) of (\d+) requests", str(row.get("reason") or ""))
        return f"partial ({m.group(1)} of {m.group(2)} requests)" if m else "partial"
    return f"{status or 'unknown'}: {short_reason(row.get('reason'), limit)}"


def message(fig: Figure, title: str, text: str) -> Figure:
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title, loc="left", fontsize=12)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color=TEXT_GREY, transform=ax.transAxes)
    return fig


def sweep_legend(fig: Figure, sweeps: list[str], kind: str) -> None:
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
