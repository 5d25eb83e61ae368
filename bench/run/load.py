"""Load levels picked as a run goes: a saturation sweep (as guidellm's sweep profile) and an SLO search
(as `vllm bench sweep serve_sla`), both inside one server start."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.core import slo as slo_mod
from bench.core.config import LoadConfig
from bench.run.client import Level

# Over-saturation: over one rate level, the median TTFT of the last third of requests (by send time) is this
# many times the first third's, and the requests in flight at each send grew by INFLIGHT_GROWTH too. Queueing
# that grows without bound shows in both; a slow request or two moves only one of them.
TTFT_GROWTH = 2.0
INFLIGHT_GROWTH = 1.5
MIN_REQUESTS = 6  # fewer cannot show a trend


@dataclass
class LevelRun:
    """One load level as run: its phase, its requests (as dicts) and the wall clock of its passes."""

    level: Level
    phase: str  # synchronous | throughput | rate | fixed
    records: list[dict[str, Any]]
    wall_s: float

    @property
    def achieved_rate(self) -> float:
        ok = sum(1 for r in self.records if r.get("error") is None)
        return ok / self.wall_s if self.wall_s > 0 else 0.0


def oversaturated(records: Sequence[Mapping[str, Any]]) -> str | None:
    """Why this level's queue grew without bound, or None. Records need start_time, end_time, ttft_s."""
    ok = sorted((r for r in records if r.get("error") is None and r.get("ttft_s") is not None),
                key=lambda r: r["start_time"])  # fmt: skip
    if len(ok) < MIN_REQUESTS:
        return None
    third = len(ok) // 3
    inflight = [sum(1 for o in ok[:i] if o["end_time"] > r["start_time"]) + 1 for i, r in enumerate(ok)]
    ttft_first, ttft_last = (
        statistics.median(r["ttft_s"] for r in ok[:third]),
        statistics.median(r["ttft_s"] for r in ok[-third:]),
    )
    q_first, q_last = statistics.mean(inflight[:third]), statistics.mean(inflight[-third:])
    if ttft_last > TTFT_GROWTH * ttft_first and q_last > INFLIGHT_GROWTH * q_first:
        return (
            f"TTFT median {ttft_first:.2f} -> {ttft_last:.2f} s and requests in flight {q_first:.1f} -> {q_last:.1f}"
            " from the first to the last third of the level"
        )
    return None


class Plan:
    """Fixed levels: `load.levels` (or the one level of `load.concurrency` / `load.request_rate`)."""

    decides = False  # whether the next level depends on the requests of the levels done

    def __init__(self, load: LoadConfig, levels: list[Level]) -> None:
        self.load, self.levels = load, levels
        self.outcome: dict[str, Any] = {}

    def next(self, done: list[LevelRun]) -> tuple[Level, str] | None:
        return (self.levels[len(done)], "fixed") if len(done) < len(self.levels) else None

    def _level(self, concurrency: int, rate: float | None = None, done: Sequence[LevelRun] = ()) -> Level:
        if rate is not None:
            rate = round(rate, 4)
            # Trials are keyed by their level's value: a rate equal to an earlier level's value (1.0 req/s
            # after the synchronous level's concurrency 1) would pool both levels' requests.
            while any(r.level.value == rate for r in done):
                rate = round(rate + 1e-4, 4)
        return Level(concurrency, rate, self.load.burstiness, self.load.max_requests, self.load.max_duration_s)


class SweepPlan(Plan):
    """The synchronous rate, the maximum throughput, then `sweep_points` rates evenly between them; stops
    at the first over-saturated rate level."""

    decides = True

    def __init__(self, load: LoadConfig, n_items: int) -> None:
        super().__init__(load, [])
        self.n_items = n_items
        self.rates: list[float] = []

    def next(self, done: list[LevelRun]) -> tuple[Level, str] | None:
        if not done:
            return self._level(1), "synchronous"
        if len(done) == 1:
            return self._level(max(1, min(self.load.concurrency, self.n_items))), "throughput"
        if len(done) == 2:
            sync, peak = done[0].achieved_rate, done[1].achieved_rate
            self.outcome |= {"synchronous_req_per_s": sync, "max_req_per_s": peak}
            if peak > sync > 0:
                self.rates = [float(r) for r in np.linspace(sync, peak, self.load.sweep_points + 2)[1:-1]]
            self.outcome["rates"] = self.rates
        elif done[-1].phase == "rate" and (why := oversaturated(done[-1].records)):
            self.outcome["oversaturated"] = {"req_per_s": done[-1].level.rate, "why": why}
            return None
        i = len(done) - 2
        if i >= len(self.rates):
            return None
        return self._level(self.load.concurrency, self.rates[i], done), "rate"


class SloSearchPlan(Plan):
    """The highest request rate meeting the SLOs: the throughput level first (if even that meets them,
    it is the answer), then bisection between 0 and the maximum throughput, bounded in levels and time."""

    decides = True

    def __init__(
        self, load: LoadConfig, slo: Mapping[str, Any], n_items: int, baseline_answers: slo_mod.Answers | None
    ) -> None:
        super().__init__(load, [])
        self.slo, self.n_items, self.baseline_answers = slo, n_items, baseline_answers

    def share(self, run: LevelRun) -> float:
        return slo_mod.summarize(run.records, self.slo, run.wall_s, self.baseline_answers).get("slo_met_share") or 0.0

    def next(self, done: list[LevelRun]) -> tuple[Level, str] | None:
        goal = float(self.slo.get("min_share", 0.9))
        if not done:
            return self._level(max(1, min(self.load.concurrency, self.n_items))), "throughput"
        shares = [self.share(r) for r in done]
        tried = [
            {"req_per_s": r.level.rate, "phase": r.phase, "slo_met_share": sh}
            for r, sh in zip(done, shares, strict=True)
        ]
        rates = [
            (r.level.rate, sh)
            for r, sh in zip(done, shares, strict=True)
            if r.phase == "rate" and r.level.rate is not None
        ]
        passing = [rate for rate, sh in rates if sh >= goal]
        failing = [rate for rate, sh in rates if sh < goal]
        peak = done[0].achieved_rate
        self.outcome = {"goal_share": goal, "max_req_per_s": peak, "tried": tried, "best_req_per_s": None}
        if shares[0] >= goal:
            self.outcome |= {"best_req_per_s": peak, "stopped": "the maximum throughput meets the SLOs"}
            return None
        lo, hi = max(passing, default=0.0), min(failing, default=peak)
        self.outcome["best_req_per_s"] = lo or None
        elapsed = sum(r.wall_s for r in done)
        if lo and (hi - lo) / hi <= self.load.search_tolerance:
            self.outcome["stopped"] = f"bracketed within {self.load.search_tolerance:.0%}"
        elif len(done) >= self.load.search_max_levels:
            self.outcome["stopped"] = f"load.search_max_levels={self.load.search_max_levels} levels run"
        elif elapsed >= self.load.search_max_s:
            self.outcome["stopped"] = f"load.search_max_s={self.load.search_max_s:g} s spent"
        elif peak <= 0:
            self.outcome["stopped"] = "no request succeeded at the maximum throughput"
        else:
            return self._level(self.load.concurrency, (lo + hi) / 2, done), "rate"
        return None


def make_plan(
    load: LoadConfig, levels: list[Level], slo: Mapping[str, Any], n_items: int,
    baseline_answers: slo_mod.Answers | None,
) -> Plan:  # fmt: skip
    if load.mode == "sweep":
        return SweepPlan(load, n_items)
    if load.mode == "slo_search":
        return SloSearchPlan(load, slo, n_items, baseline_answers)
    return Plan(load, levels)


def search_outcome(search: Mapping[str, Any]) -> str:
    """One line on what a load search found, for the console."""
    if search.get("mode") == "slo_search":
        best = search.get("best_req_per_s")
        found = f"{best:.3g} req/s is the highest rate tried meeting the SLOs" if best else "no rate tried met the SLOs"
        peak = search.get("max_req_per_s") or 0.0
        return f"{found} ({search.get('stopped', 'stopped early')}; maximum throughput {peak:.3g} req/s)"
    over = search.get("oversaturated")
    sync, peak = search.get("synchronous_req_per_s"), search.get("max_req_per_s")
    line = f"synchronous {sync:.3g} req/s, maximum {peak:.3g} req/s" if sync and peak else "sweep stopped early"
    return line + (f"; over-saturated at {over['req_per_s']:.3g} req/s: {over['why']}" if over else "")
