"""The load engine against an instant local endpoint: caps, arrival schedules, records, bounded memory."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bench.core.config import LoadConfig, RequestConfig
from bench.core.errors import ConfigError
from bench.core.records import RequestRecord
from bench.run import load
from bench.run.client import Endpoint, RequestTemplate, replay
from bench.run.dataset import QAItem
from bench.run.load import GammaArrivals, Level, make_plan
from bench.run.server import VllmServer, free_port

ENDPOINT = str(Path(__file__).resolve().parents[1] / "benchmarks" / "instant_endpoint.py")
ITEMS = [QAItem(f"q{i}", "When?", "It opened in 1901.", ["1901"], "en") for i in range(40)]


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    port = free_port("127.0.0.1")
    log = tmp_path_factory.mktemp("instant") / "log"
    with VllmServer([sys.executable, ENDPOINT, str(port), "8"], "127.0.0.1", port, log, {}, 30, 5) as srv:
        yield Endpoint(srv.base_url, timeout_s=30.0)


def _run(endpoint, level: Level, items=ITEMS, stop=lambda: None) -> tuple[list[RequestRecord], str | None]:
    records: list[RequestRecord] = []
    why = replay(endpoint, RequestTemplate("m", RequestConfig(max_tokens=8)), items, level, records.append, stop)
    return records, why


def test_sequential_records_every_request_with_streaming_timings(endpoint):
    records, why = _run(endpoint, Level(1))
    assert why is None and len(records) == 40 and not [r for r in records if r.error]
    assert all(r.output_tokens == 8 and len(r.itl_s) == 7 and 0 < r.ttft_s <= r.latency_s for r in records)
    # one at a time: each request starts after the previous one ended
    ordered = sorted(records, key=lambda r: r.start_time)
    assert all(b.start_time >= a.end_time - 1e-3 for a, b in zip(ordered, ordered[1:], strict=False))


def test_concurrency_cap_is_reached_and_never_exceeded(endpoint):
    records, _ = _run(endpoint, Level(4))
    events = sorted([(r.start_time, 1) for r in records] + [(r.end_time, -1) for r in records])
    in_flight = peak = 0
    for _, delta in events:
        in_flight += delta
        peak = max(peak, in_flight)
    assert len(records) == 40 and peak <= 4 and all(r.level == 4 for r in records)


def test_rate_load_follows_its_schedule(endpoint):
    records, _ = _run(endpoint, Level(64, rate=40.0), ITEMS[:30])
    times = sorted(r.scheduled_time for r in records)
    span = times[-1] - times[0]
    assert 29 / span == pytest.approx(40, rel=0.5)  # Poisson: loose, but not off by a factor
    assert all(r.start_time - r.scheduled_time < 0.5 for r in records)  # the client kept up


def test_limits_and_early_stop(endpoint):
    records, _ = _run(endpoint, Level(2, max_requests=5))
    assert len(records) == 5
    # More requests than the dataset holds: it is cycled, so a high level sends several waves.
    records, _ = _run(endpoint, Level(8, max_requests=100))
    ids = [r.question_id for r in sorted(records, key=lambda r: r.index)]
    assert len(records) == 100 and sorted(r.index for r in records) == list(range(100))
    assert ids[:40] == ids[40:80] == [it.id for it in ITEMS] and ids[80:] == ids[:20]
    calls = iter(range(100))
    records, why = _run(endpoint, Level(1), stop=lambda: "server gone" if next(calls) >= 3 else None)
    assert why == "server gone" and len(records) == 3


def test_levels_from_config():
    assert [lv.concurrency for lv in make_plan(LoadConfig(levels=[1, 2, 4]), 8).levels] == [1, 2, 4]
    rates = make_plan(LoadConfig(request_rate=1.0, concurrency=256, levels=[0.5, 2]), 8).levels
    assert [(lv.rate, lv.concurrency) for lv in rates] == [(0.5, 256), (2.0, 256)]
    assert make_plan(LoadConfig(), 8).levels == [Level(1)]


def test_gamma_arrivals_keep_the_seeded_schedule():
    """The schedule every stored rate run met: numpy's gamma gaps from seed + pass, summed."""
    rng = np.random.default_rng(7)
    expected = np.cumsum([rng.gamma(0.5, 1.0 / (2.0 * 0.5)) for _ in range(5)])
    pacing = Level(8, rate=2.0, burstiness=0.5).pacing(7)
    assert [pacing.next_send_time() for _ in range(5)] == pytest.approx(expected, rel=0, abs=0)
    assert Level(8).pacing(7).next_send_time() is None  # a concurrency level: as slots free up


def test_a_new_arrival_pattern_is_one_class(endpoint, monkeypatch):
    class Even:
        """A request every 1/rate seconds."""

        def __init__(self, rate: float, burstiness: float, seed: int) -> None:
            self.gap, self.n = 1.0 / rate, 0

        def next_send_time(self) -> float | None:
            self.n += 1
            return self.n * self.gap

    monkeypatch.setitem(load.ARRIVALS, "even", Even)
    records, _ = _run(endpoint, Level(8, rate=50.0, arrivals="even"), ITEMS[:6])
    times = sorted(r.scheduled_time for r in records)
    assert np.diff(times) == pytest.approx([0.02] * 5)
    load.check(LoadConfig(arrivals="even"))
    with pytest.raises(ConfigError, match="load.arrivals='uneven' is not one of gamma, even"):
        load.check(LoadConfig(arrivals="uneven"))
    assert GammaArrivals in load.ARRIVALS.values()


def test_a_refused_request_is_recorded_not_raised(tmp_path):
    port = free_port("127.0.0.1")  # nothing listens there
    records: list[RequestRecord] = []
    nowhere = Endpoint(f"http://127.0.0.1:{port}", timeout_s=5.0)
    replay(nowhere, RequestTemplate("m"), ITEMS[:2], Level(1), records.append)
    assert len(records) == 2 and all(r.error and r.output_tokens is None for r in records)


def test_level_telemetry_keeps_levels_apart() -> None:
    from bench.core.records import Trial
    from bench.run.measure import level_telemetry
    from bench.run.telemetry import Sample

    samples = [Sample(float(t), "gpu0", "nvml", 10.0 if t < 10 else 90.0, 1.0, 100.0) for t in range(20)]
    trials = [Trial(level=1.0, t_start=0.0, t_end=9.0), Trial(level=8.0, t_start=10.0, t_end=19.0)]
    low, high = level_telemetry(samples, trials)
    assert (low["level"], low["util_mean_pct"]) == (1.0, 10.0) and (high["level"], high["util_mean_pct"]) == (8.0, 90.0)
    assert low["energy_j"] == pytest.approx(900.0)  # 100 W over its own 9 s, not the run's 19 s


def test_planned_requests_counts_every_level_and_caps_a_search():
    assert make_plan(LoadConfig(levels=[1, 2, 4], max_requests=5), 8).planned_requests() == 15
    assert make_plan(LoadConfig(), 8).planned_requests() == 8
    assert make_plan(LoadConfig(max_requests=20), 8).planned_requests() == 20  # cycled past the dataset
    search = LoadConfig(mode="slo_search", search_max_levels=6, max_requests=3)
    assert make_plan(search, 8).planned_requests() == 18
    assert make_plan(LoadConfig(mode="sweep", sweep_points=2), 8).planned_requests() == 32
