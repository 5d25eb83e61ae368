"""Load: which levels one server start runs (fixed levels, a saturation sweep as guidellm's sweep profile, an
SLO search as `vllm bench sweep serve_sla`) and how requests arrive within a level."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from bench.core import slo as slo_mod
from bench.core.config import LoadConfig, SloConfig
from bench.core.errors import ConfigError
from bench.core.records import RequestRecord


class Pacing(Protocol):
    """When a level's next request is due. The client calls it before each request, then waits for a free slot:
    `concurrency` caps every pattern."""

    def next_send_time(self) -> float | None:
        """Seconds after the level's start; None: as soon as a slot is free (a closed loop)."""
        ...


class AsSlotsFree:
    """Concurrency loads: each request is sent as one in flight finishes."""

    def next_send_time(self) -> float | None:
        return None


class GammaArrivals:
    """Arrivals at a mean `rate` (req/s), gaps gamma-distributed with shape `burstiness`: 1 is Poisson (as
    vllm bench serve), < 1 burstier, > 1 more even. Seeded, so every variant meets the same schedule."""

    def __init__(self, rate: float, burstiness: float, seed: int) -> None:
        self.rate, self.burstiness = rate, burstiness
        self.rng = np.random.default_rng(seed)
        self.due = 0.0

    def next_send_time(self) -> float | None:
        self.due += self.rng.gamma(self.burstiness, 1.0 / (self.rate * self.burstiness))
        return self.due


# `load.arrivals` -> the pacing of a rate level, made from (rate, burstiness, seed). A new pattern is a class
# here and a conf/load/ YAML that sets `arrivals:` and `request_rate:`.
ARRIVALS: dict[str, Callable[[float, float, int], Pacing]] = {"gamma": GammaArrivals}


@dataclass(frozen=True)
class Level:
    """One load level: at most `concurrency` in flight; with `rate`, arrivals at that mean rate (req/s)."""

    concurrency: int
    rate: float | None = None
    burstiness: float = 1.0  # the shape of the gaps between arrivals, see GammaArrivals
    max_requests: int | None = None
    max_duration_s: float | None = None
    arrivals: str = "gamma"  # one of ARRIVALS: how a rate level's requests arrive

    @property
    def value(self) -> float:
        return self.rate if self.rate is not None else float(self.concurrency)

    def pacing(self, seed: int) -> Pacing:
        if not self.rate:  # None, or a search's rate rounded to 0: as fast as the slots allow
            return AsSlotsFree()
        return ARRIVALS[self.arrivals](self.rate, self.burstiness, seed)


def check(load: LoadConfig) -> None:
    """What config.py cannot check without the patterns defined here."""
    if load.arrivals not in ARRIVALS:
        raise ConfigError(f"load.arrivals={load.arrivals!r} is not one of {', '.join(ARRIVALS)}")


def level_of(load: LoadConfig, concurrency: int, rate: float | None = None) -> Level:
    return Level(concurrency, rate, load.burstiness, load.max_requests, load.max_duration_s, load.arrivals)


# Over-saturation: over one rate level, the median TTFT of the last third of requests (by send time) is this
# many times the first third's, and the requests in flight at each send grew by INFLIGHT_GROWTH too. Queueing
# that grows without bound shows in both; a slow request or two moves only one of them.
TTFT_GROWTH = 2.0
INFLIGHT_GROWTH = 1.5
MIN_REQUESTS = 6  # fewer cannot show a trend


@dataclass
class LevelRun:
    """One load level as run: its phase, its requests and the wall clock of its passes."""

    level: Level
    phase: str  # synchronous | throughput | rate | fixed
    records: list[RequestRecord]
    wall_s: float

    @property
    def achieved_rate(self) -> float:
        ok = sum(1 for r in self.records if r.error is None)
        return ok / self.wall_s if self.wall_s > 0 else 0.0


def oversaturated(records: Sequence[RequestRecord]) -> str | None:
    """Why this level's queue grew without bound, or None."""
    ok = sorted((r for r in records if r.error is None and r.ttft_s is not None), key=lambda r: r.start_time)
    if len(ok) < MIN_REQUESTS:
        return None
    third = len(ok) // 3
    inflight = [sum(1 for o in ok[:i] if o.end_time > r.start_time) + 1 for i, r in enumerate(ok)]
    ttft = [r.ttft_s for r in ok if r.ttft_s is not None]  # all of ok (filtered above), restated for mypy
    ttft_first, ttft_last = statistics.median(ttft[:third]), statistics.median(ttft[-third:])
    q_first, q_last = statistics.mean(inflight[:third]), statistics.mean(inflight[-third:])
    if ttft_last > TTFT_GROWTH * ttft_first and q_last > INFLIGHT_GROWTH * q_first:
        return (
            f"TTFT median {ttft_first:.2f} -> {ttft_last:.2f} s and requests in flight {q_first:.1f} -> {q_last:.1f}"
            " from the first to the last third of the level"
        )
    return None


class Plan:
    """Which load levels one server start runs, one after the other: each plan says its next level from the
    levels done, how many requests it plans, and what of the config besides `load` decides its levels."""

    mode: str  # its load.mode
    decides = False  # whether the next level depends on the requests of the levels done
    added: tuple[str, ...] = ()  # the LoadConfig fields of this plan alone: see _ADDED

    def __init__(
        self, load: LoadConfig, n_items: int, slo: Mapping[str, Any] | None = None,
        baseline_answers: slo_mod.Answers | None = None,
    ) -> None:  # fmt: skip
        self.load, self.n_items = load, n_items
        self.slo, self.baseline_answers = slo or {}, baseline_answers
        self.outcome: dict[str, Any] = {}

    def next(self, done: list[LevelRun]) -> tuple[Level, str] | None:
        """The next level and its phase, or None when the plan is done."""
        raise NotImplementedError

    def planned_requests(self) -> int:
        """Requests of one pass over every level: the progress bar's total (at most, for a search)."""
        raise NotImplementedError

    @classmethod
    def hash_key(cls, slo: SloConfig) -> dict[str, Any]:
        """What besides the load's own fields decides this plan's levels (see config_hash)."""
        return {}

    def _level(self, concurrency: int, rate: float | None = None, done: Sequence[LevelRun] = ()) -> Level:
        if rate is not None:
            rate = round(rate, 4)
            # Trials are keyed by their level's value: a rate equal to an earlier level's value (1.0 req/s
            # after the synchronous level's concurrency 1) would pool both levels' requests.
            while any(r.level.value == rate for r in done):
                rate = round(rate + 1e-4, 4)
        return level_of(self.load, concurrency, rate)


class FixedPlan(Plan):
    """Fixed levels: `load.levels` (rates for a rate load, else concurrencies), or the one level of
    `load.concurrency` / `load.request_rate`."""

    mode = "fixed"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        load = self.load
        if not load.levels:
            self.levels = [level_of(load, load.concurrency, load.request_rate)]
        elif load.request_rate is not None:
            self.levels = [level_of(load, load.concurrency, float(v)) for v in load.levels]
        else:
            self.levels = [level_of(load, int(v)) for v in load.levels]

    def next(self, done: list[LevelRun]) -> tuple[Level, str] | None:
        return (self.levels[len(done)], "fixed") if len(done) < len(self.levels) else None

    def planned_requests(self) -> int:
        return sum(lv.max_requests or self.n_items for lv in self.levels)


class SweepPlan(Plan):
    """The synchronous rate, the maximum throughput, then `sweep_points` rates evenly between them; stops
    at the first over-saturated rate level."""

    mode = "sweep"
    decides = True
    added = ("sweep_points",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rates: list[float] = []

    def planned_requests(self) -> int:
        return (self.load.max_requests or self.n_items) * (2 + self.load.sweep_points)

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

    mode = "slo_search"
    decides = True
    added = ("search_tolerance", "search_max_levels", "search_max_s")

    def planned_requests(self) -> int:
        return (self.load.max_requests or self.n_items) * self.load.search_max_levels

    @classmethod
    def hash_key(cls, slo: SloConfig) -> dict[str, Any]:
        return {"slo": dataclasses.asdict(slo)}  # the objectives pick its load levels

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


# load.mode -> its plan (config.LOAD_MODES lists the same names, to refuse a typo when the config is read).
PLANS: dict[str, type[Plan]] = {"fixed": FixedPlan, "sweep": SweepPlan, "slo_search": SloSearchPlan}
# LoadConfig fields that came after runs were stored, with their defaults: hashed only when set, so those runs
# still resume. `mode` and `arrivals` choose a plan and a pacing; each plan names its own settings.
_ADDED = {
    f.name: f.default
    for f in dataclasses.fields(LoadConfig)
    if f.name in ("mode", "arrivals") or any(f.name in plan.added for plan in PLANS.values())
}


def make_plan(
    load: LoadConfig, n_items: int, slo: Mapping[str, Any] | None = None,
    baseline_answers: slo_mod.Answers | None = None,
) -> Plan:  # fmt: skip
    return PLANS[load.mode](load, n_items, slo, baseline_answers)


def hash_key(load: LoadConfig, slo: SloConfig) -> dict[str, Any]:
    """The load's part of the config hash: its fields (those added later only when set) and what its plan adds."""
    fields = {k: v for k, v in dataclasses.asdict(load).items() if k not in _ADDED or v != _ADDED[k]}
    return {"load": fields} | PLANS[load.mode].hash_key(slo)


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
