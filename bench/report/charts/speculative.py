"""Speculative decoding: acceptance rate and acceptance length per speculating variant."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from bench.core.records import PARTIAL
from bench.report.charts.common import (
    SWEEP_HATCHES,
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


def speculative_chart(summary: pd.DataFrame) -> Figure:
    """Acceptance rate and mean acceptance length of the variants that speculate; says so when none do."""
    title = "Speculative decoding: share of drafted tokens accepted, tokens gained per step"
    runs = summary_rows(summary)
    sweeps = sweep_names(summary)
    multi = len(sweeps) > 1
    spec = [r for r in runs if pd.notna(pd.to_numeric(r.get("spec_acceptance_rate"), errors="coerce"))]
    # A speculative variant that failed has no figures; name it rather than let it vanish.
    failed = [r for r in runs if r not in spec and str(r["variant"]).startswith("spec")]
    note = "; ".join(f"{row_label(r, multi)}: {status_note(r) or 'no speculative metrics'}" for r in failed)
    if not spec:
        return message(
            new_figure(10, 2.6), title, "no speculative variants in this sweep" + (f"\n({note})" if note else "")
        )
    fig = new_figure(11, 1.6 + 0.5 * len(spec))
    ax_rate, ax_len = fig.subplots(1, 2, sharey=True)
    labels = [row_label(r, multi) + (" (partial)" if r.get("status") == PARTIAL else "") for r in spec]
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
    sweep_legend(fig, sweeps, "hatch")
    return fig
