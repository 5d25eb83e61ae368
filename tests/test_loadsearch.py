"""Load levels picked as the run goes: saturation sweep and SLO search, on recorded levels (no server)."""

from __future__ import annotations

import pytest

from bench.core.config import LoadConfig
from bench.core.records import RequestRecord
from bench.run.load import Level, LevelRun, SloSearchPlan, SweepPlan, oversaturated


def level_run(level: Level, phase: str, n: int, wall_s: float, ttft=lambda i: 0.1, gap=None) -> LevelRun:
    """n requests sent every `gap` s (or all at once), each 1 s long after its TTFT."""
    records = []
    for i in range(n):
        start = i * (gap if gap is not None else 0.0)
        t = ttft(i)
        records.append(RequestRecord(i, f"q{i}", "en", "?", "?", ["x"], "x", start, start + t + 1.0, t + 1.0, t, [],
                                     0.05, 10, 20, "stop", None, 1.0, 1.0, level=level.value))  # fmt: skip
    return LevelRun(level, phase, records, wall_s)


def test_sweep_runs_synchronous_then_throughput_then_rates_between():
    plan = SweepPlan(LoadConfig(mode="sweep", sweep_points=3, concurrency=64), n_items=16)
    done: list[LevelRun] = []
    level, phase = plan.next(done)
    assert (level.concurrency, level.rate, phase) == (1, None, "synchronous")
    done.append(level_run(level, phase, 16, wall_s=16.0))  # 1 req/s
    level, phase = plan.next(done)
    assert (level.concurrency, level.rate, phase) == (16, None, "throughput")  # every request at once
    done.append(level_run(level, phase, 16, wall_s=4.0))  # 4 req/s
    rates = []
    while (step := plan.next(done)) is not None:
        rates.append(step[0].rate)
        done.append(level_run(step[0], step[1], 16, wall_s=8.0, gap=1 / step[0].rate))
    assert rates == pytest.approx([1.75, 2.5, 3.25])
    assert plan.outcome["synchronous_req_per_s"] == 1.0 and plan.outcome["max_req_per_s"] == 4.0


def test_sweep_stops_at_the_first_oversaturated_rate():
    plan = SweepPlan(LoadConfig(mode="sweep", sweep_points=3), n_items=12)
    done = [level_run(Level(1), "synchronous", 12, 12.0), level_run(Level(12), "throughput", 12, 3.0)]
    level, phase = plan.next(done)
    # The queue grows: each request waits longer than the one before, and more are in flight.
    done.append(level_run(level, phase, 12, 10.0, ttft=lambda i: 0.1 + 0.5 * i, gap=0.3))
    assert plan.next(done) is None
    assert plan.outcome["oversaturated"]["req_per_s"] == level.rate


def test_a_steady_level_is_not_oversaturated():
    steady = level_run(Level(4, 1.0), "rate", 12, 12.0, ttft=lambda i: 0.1 + 0.02 * (i % 3), gap=1.0)
    assert oversaturated(steady.records) is None


def test_slo_search_bisects_to_the_highest_rate_meeting_the_slo():
    load = LoadConfig(mode="slo_search", concurrency=64, search_tolerance=0.1, search_max_levels=10)
    plan = SloSearchPlan(load, n_items=10, slo={"ttft_ms": 500, "min_share": 0.9})
    capacity = 2.6  # this fake server meets the TTFT SLO below 2.6 req/s
    done: list[LevelRun] = []
    while (step := plan.next(done)) is not None:
        level, phase = step
        if phase == "throughput":
            done.append(level_run(level, phase, 10, wall_s=2.5, ttft=lambda i: 0.1 * i))  # 4 req/s, TTFT up to 0.9 s
        else:
            slow = level.rate >= capacity
            done.append(level_run(level, phase, 10, 10 / level.rate, ttft=lambda i, s=slow: 0.8 if s else 0.2))
    best = plan.outcome["best_req_per_s"]
    assert best < capacity and (capacity - best) / capacity < 0.15
    assert plan.outcome["stopped"].startswith("bracketed")
    assert plan.outcome["tried"][0]["phase"] == "throughput"


def test_slo_search_is_bounded_in_levels():
    load = LoadConfig(mode="slo_search", search_max_levels=3)
    plan = SloSearchPlan(load, n_items=5, slo={"ttft_ms": 1, "min_share": 0.9})
    done: list[LevelRun] = []
    while (step := plan.next(done)) is not None:  # nothing ever meets a 1 ms TTFT
        done.append(level_run(step[0], step[1], 5, 5.0))
    assert len(done) == 3 and plan.outcome["best_req_per_s"] is None
    assert "search_max_levels=3" in plan.outcome["stopped"]


def test_console_line_of_each_search():
    from bench.run.load import search_outcome

    slo = {"mode": "slo_search", "best_req_per_s": 0.625, "stopped": "bracketed within 10%", "max_req_per_s": 1.2}
    assert search_outcome(slo) == (
        "0.625 req/s is the highest rate tried meeting the SLOs (bracketed within 10%; maximum throughput 1.2 req/s)"
    )
    sweep = {"mode": "sweep", "synchronous_req_per_s": 0.4, "max_req_per_s": 1.3,
             "oversaturated": {"req_per_s": 1.1, "why": "TTFT grew"}}  # fmt: skip
    assert search_outcome(sweep) == "synchronous 0.4 req/s, maximum 1.3 req/s; over-saturated at 1.1 req/s: TTFT grew"


def test_a_rate_equal_to_an_earlier_levels_value_is_nudged_apart():
    # Synchronous 0.5 req/s, maximum 1.5: the one rate between is 1.0, the synchronous level's value (concurrency 1).
    plan = SweepPlan(LoadConfig(mode="sweep", sweep_points=1), n_items=8)
    done = [level_run(Level(1), "synchronous", 8, 16.0), level_run(Level(8), "throughput", 8, 8 / 1.5)]
    level, _ = plan.next(done)
    assert level.rate == pytest.approx(1.0001)
