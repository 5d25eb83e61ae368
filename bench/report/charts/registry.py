"""The one table of a report's charts: name, title, when it is drawn and how; adding a chart is one entry here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

from bench.analyze.sweep import Sweep
from bench.analyze.tables import crossover, level_means
from bench.report.charts import devices, latency, load, overview, phases, speculative
from bench.report.notes import quality_chart_skipped


@dataclass(frozen=True)
class ChartSpec:
    name: str  # the file stem: charts/<name>.png and .svg
    title: str
    # Whether the folder has what the chart shows: a chart that could only say "nothing here" is left out.
    applies: Callable[[Sweep, str], bool]
    draw: Callable[[Sweep, str], Figure]  # (sweep, baseline variant) -> the chart


def _always(sweep: Sweep, baseline: str) -> bool:
    return True


def _speculates(sweep: Sweep, baseline: str) -> bool:
    return bool("spec_acceptance_rate" in sweep.summary and sweep.summary["spec_acceptance_rate"].notna().any())


def _swept(sweep: Sweep, baseline: str) -> bool:
    return not sweep.params.empty


def _several_levels(sweep: Sweep, baseline: str) -> bool:
    per_level = level_means(sweep.trials)
    return bool(not per_level.empty and per_level.groupby("variant")["level"].nunique().max() >= 2)


def _crosses(sweep: Sweep, baseline: str) -> bool:
    if not (_several_levels(sweep, baseline) and _speculates(sweep, baseline)):
        return False
    spec = list(sweep.summary.loc[sweep.summary["spec_acceptance_rate"].notna(), "variant"])
    shared = crossover(sweep.trials, baseline, spec).dropna(subset=["speedup"])
    # load=sweep runs pick their own rates per variant: no level to divide, no chart
    return bool(not shared.empty and shared.groupby("variant")["level"].nunique().max() >= 2)


def _real_answers(sweep: Sweep, baseline: str) -> bool:
    """Some variant served real weights: with random ones only, the quality axis is noise (the report says why)."""
    return sweep.folder is None or quality_chart_skipped(sweep.folder) is None


def _has_phases(sweep: Sweep, baseline: str) -> bool:
    return not phases.decomposition(sweep.trials).empty


def _has_power(sweep: Sweep, baseline: str) -> bool:
    timeline = sweep.timeline
    return bool("power_w" in timeline and pd.to_numeric(timeline["power_w"], errors="coerce").notna().any())


def _searched(sweep: Sweep, baseline: str) -> bool:
    return bool(not sweep.searches.empty and (sweep.searches["mode"] == "slo_search").any())


# In report order. The draw functions look their chart up in its module when called (a test swaps one out).
CHARTS: tuple[ChartSpec, ...] = (
    ChartSpec("wall_clock", "Wall clock and speed-up", _always,
              lambda s, b: overview.wall_clock_chart(s.summary, b)),
    ChartSpec("utilization", "Utilization over time", _always,
              lambda s, b: devices.utilization_chart(s.timeline, s.summary)),
    ChartSpec("latency", "Latency distributions", _always,
              lambda s, b: latency.latency_chart(s.requests, s.summary)),
    ChartSpec("phases", "Where the time goes: server phases and outside the server", _has_phases,
              lambda s, b: phases.phases_chart(s.trials)),
    ChartSpec("quality_speed", "Quality vs speed", _real_answers,
              lambda s, b: overview.quality_speed_chart(s.summary, b)),
    ChartSpec("speculative", "Speculative decoding", _speculates,
              lambda s, b: speculative.speculative_chart(s.summary)),
    ChartSpec("sweep", "Metrics against the swept parameter", _swept,
              lambda s, b: load.sweep_chart(s.summary, s.params, b)),
    ChartSpec("load", "Throughput and latency vs load", _several_levels,
              lambda s, b: load.load_chart(s.trials)),
    ChartSpec("pareto", "Pareto front across load levels", _several_levels,
              lambda s, b: load.pareto_chart(s.trials)),
    ChartSpec("crossover", "Speculation speed-up against load", _crosses,
              lambda s, b: load.crossover_chart(s.trials, s.summary, b)),
    ChartSpec("power", "Utilization beside power per device", _has_power,
              lambda s, b: devices.power_chart(s.timeline, s.summary)),
    ChartSpec("slo_search", "SLO search", _searched,
              lambda s, b: load.search_chart(s.searches)),
)  # fmt: skip


def drawn(sweep: Sweep, baseline: str = "single") -> list[ChartSpec]:
    """The charts this folder has something for, in report order."""
    return [c for c in CHARTS if c.applies(sweep, baseline)]
