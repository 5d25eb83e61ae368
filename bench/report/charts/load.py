"""Charts across load levels and swept parameters: load, Pareto front, speculation crossover, sweep, SLO search."""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure

from bench.analyze.tables import crossover, level_means, pareto_front
from bench.core.metric_registry import label as metric_label
from bench.report.charts.common import (
    SWEEP_LINES,
    TEXT_GREY,
    message,
    new_figure,
    numeric_column,
    summary_rows,
    variant_color,
)


def load_chart(trials: pd.DataFrame) -> Figure:
    """Throughput against load, and latency against throughput, per variant (mean over passes)."""
    fig = new_figure(12, 4.2)
    title = "Output throughput and latency as the load rises, per variant"
    if trials.empty or trials.groupby("variant")["level"].nunique().max() < 2:
        return message(fig, title, "one load level per variant: sweep load.levels to draw this chart")
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
        return message(new_figure(10, 2.6), title, "no swept parameters in this folder (e.g. +sweep=spec_k)")
    x_key, others = _param_axis(params)
    data = params.merge(summary.drop(columns=["base_variant"], errors="ignore"), on="variant", how="left")
    data["x"] = pd.to_numeric(data[x_key], errors="coerce") if x_key not in others else data[x_key]
    has_base = bool(numeric_column(data, "speedup").notna().any())
    panels = [
        ("speedup", f"speed-up over {baseline} (x)", 1.0) if has_base else ("output_tok_per_s", "output tok/s", 1.0),
        ("spec_acceptance_rate", "acceptance rate (% of drafted tokens)", 100.0),
        ("tpot_s_p50", "TPOT p50 (ms)", 1000.0),
        ("identical_to_baseline", f"answers identical to {baseline}'s (%)", 100.0),
    ]
    panels = [p for p in panels if numeric_column(data, p[0]).notna().any()]
    fig = new_figure(4.0 * len(panels) + 0.6, 4.4)
    axes = fig.subplots(1, len(panels), squeeze=False).ravel()
    groups = list(data.groupby(["base_variant", *others], sort=True, dropna=False))
    for ax, (col, label, scale) in zip(axes, panels, strict=True):
        for j, (key, rows) in enumerate(groups):
            base = key[0] if isinstance(key, tuple) else key
            rows = rows.sort_values("x")
            name = str(base) + "".join(f", {k}={v}" for k, v in zip(others, key[1:], strict=False))
            y = numeric_column(rows, col) * scale
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
        return message(new_figure(12, 3), title, "one load level per variant: sweep the load (load=sweep) to draw this")
    per = per.assign(tok_s_user=1.0 / numeric_column(per, "tpot_s_p50"))
    fig = new_figure(13, 5.2)
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
    spec = [str(r["variant"]) for r in summary_rows(summary)
            if pd.notna(pd.to_numeric(r.get("spec_acceptance_rate"), errors="coerce"))]  # fmt: skip
    points = crossover(trials, baseline, spec)
    points = points.dropna(subset=["speedup"])
    if points.empty or points.groupby("variant")["level"].nunique().max() < 2:
        why = "no speculative variant" if not spec else f"no load levels shared with {baseline}"
        return message(new_figure(10, 2.6), title, f"{why}: run load=concurrency_sweep with {baseline} and spec_*")
    fig = new_figure(10, 5.2)
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


def search_chart(searches: pd.DataFrame) -> Figure:
    """load=slo_search: the share of requests meeting every SLO at each rate tried, the goal, the answer."""
    title = "SLO search: share of requests meeting every SLO at each request rate tried"
    rows = searches[searches["mode"] == "slo_search"] if "mode" in searches else searches
    if rows.empty or "req_per_s" not in rows:
        return message(new_figure(10, 2.6), title, "no load=slo_search run in this folder")
    fig = new_figure(10, 4.8)
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
