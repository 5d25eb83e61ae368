"""The regression statistics of bench/regress/stats.py on generated data whose truth is known."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.core.records import RequestRecord
from bench.regress.stats import hierarchical_interval, hierarchical_ratio_interval, noise_split, paired_question_diff


def _side(rng: np.random.Generator, mean: float, starts: int, passes: int, between: float, within: float):
    """Per-pass values grouped by start: a start effect shared by its passes, then each pass's own noise."""
    return [list(mean * np.exp(rng.normal(0, between) + rng.normal(0, within, passes))) for _ in range(starts)]


@pytest.mark.parametrize(
    "starts, passes, between, within",
    [(3, 3, 0.05, 0.02), (5, 2, 0.05, 0.02), (4, 3, 0.0, 0.03), (1, 5, 0.0, 0.03)],
)
def test_the_ratio_interval_covers_the_true_ratio_about_95_percent_of_the_time(starts, passes, between, within):
    rng, true_ratio, n = np.random.default_rng(7), 1.15, 300
    hits = 0
    for i in range(n):
        base = _side(rng, 10.0, starts, passes, between, within)
        cur = _side(rng, 10.0 * true_ratio, starts, passes, between, within)
        iv = hierarchical_ratio_interval(base, cur, resamples=800, seed=i)
        hits += iv.lo <= true_ratio <= iv.hi
    coverage = hits / n
    print(f"coverage {coverage:.3f} ({starts} starts x {passes} passes, between {between}, within {within})")
    # 300 draws: the binomial standard error at 95 % is 1.3 points.
    assert 0.91 <= coverage <= 0.99


def test_passes_alone_do_not_cover_start_noise_and_say_so():
    """One start per side: the passes agree, so the interval is narrow and misses a start effect."""
    rng, misses = np.random.default_rng(3), 0
    for i in range(200):
        base = _side(rng, 10.0, 1, 5, 0.08, 0.01)
        cur = _side(rng, 10.0, 1, 5, 0.08, 0.01)
        iv = hierarchical_ratio_interval(base, cur, resamples=500, seed=i)
        assert iv.units == "passes"
        misses += not iv.lo <= 1.0 <= iv.hi
    assert misses / 200 > 0.5  # most "no change" pairs look like a change: why compare warns


def test_the_noise_split_recovers_known_variance_components():
    rng = np.random.default_rng(11)
    split = noise_split(_side(rng, 100.0, 400, 4, 0.06, 0.02))
    assert split.between_cv == pytest.approx(0.06, rel=0.12)
    assert split.within_cv == pytest.approx(0.02, rel=0.08)
    assert split.start_cv(4) == pytest.approx((0.06**2 + 0.02**2 / 4) ** 0.5, rel=0.12)
    one = noise_split([[1.0, 1.1, 0.9]])
    assert one.between_cv is None and one.within_cv == pytest.approx(0.1)


def test_the_one_sample_interval_covers_the_mean():
    rng, hits = np.random.default_rng(5), 0
    for i in range(300):
        iv = hierarchical_interval(_side(rng, 10.0, 4, 3, 0.05, 0.02), resamples=800, seed=i)
        assert iv.units == "starts" and iv.lo < iv.point < iv.hi
        hits += iv.lo <= 10.0 * np.exp((0.05**2 + 0.02**2) / 2) <= iv.hi  # the lognormal's mean
    assert 0.91 <= hits / 300 <= 0.99


def test_f1_is_compared_question_by_question():
    base = {f"q{i}": [1.0, 1.0] for i in range(40)}
    one_flip = base | {"q0": [0.0, 0.0]}
    d = paired_question_diff(base, one_flip)
    assert d is not None and d.worse == 1 and d.diff == pytest.approx(-1 / 40)
    assert d.hi >= 0  # one flipped answer out of 40 is not a credible drop
    many = base | {f"q{i}": [0.0, 0.0] for i in range(8)}
    d = paired_question_diff(base, many)
    assert d is not None and d.hi < 0 and d.worse == 8
    # Pairing: questions differ a lot in difficulty, but every one of them moved by the same small step.
    hard = {f"q{i}": [i / 40] for i in range(40)}
    d = paired_question_diff(hard, {q: [v[0] - 0.01] for q, v in hard.items()})
    assert d is not None and d.hi < 0 and d.diff == pytest.approx(-0.01)
    assert paired_question_diff({"a": [1.0]}, {"b": [1.0]}) is None


# ---- run-level figures from request records --------------------------------------------------------


def _req(latency: float, ttft: float | None, out: int | None, error: str | None = None, **kw: Any) -> RequestRecord:
    line = {"latency_s": latency, "ttft_s": ttft, "tpot_s": 0.01 if ttft else None, "itl_s": [0.01, 0.03],
            "output_tokens": out, "prompt_tokens": 10, "exact_match": 1.0, "f1": 0.5, "error": error} | kw  # fmt: skip
    common = {"index": 0, "question_id": "q", "lang": "en", "question": "?", "prompt": "?", "references": [],
              "answer": "", "start_time": 0.0, "end_time": latency, "finish_reason": "stop"}  # fmt: skip
    return RequestRecord.from_dict(common | line)


def test_run_stats_counts_failed_requests_nowhere_but_the_failures() -> None:
    from bench.core.describe import run_stats

    records = [_req(1.0, 0.2, 8), _req(3.0, 0.4, 12, ttft_visible_s=0.5), _req(99.0, 9.0, 50, error="HTTP 500")]
    s = run_stats(records, wall_clock_s=4.0)
    assert s["output_tokens"] == 20 and s["prompt_tokens"] == 20
    assert s["output_tok_per_s"] == 5.0 and s["requests_per_s"] == 0.5
    assert s["latency_s_p50"] == 2.0 and s["latency_s_mean"] == 2.0 and s["ttft_s_p50"] == pytest.approx(0.3)
    assert s["itl_s_p50"] == pytest.approx(0.02)  # every gap of every ok request
    assert s["ttft_visible_s_p50"] == 0.5  # old records without the field are left out, not read as 0
    assert s["f1"] == 0.5 and s["exact_match"] == 1.0


def test_run_stats_of_nothing_is_none_not_zero() -> None:
    from bench.core.describe import run_stats

    s = run_stats([_req(1.0, None, None, error="refused")], wall_clock_s=None)
    assert s["output_tokens"] == 0 and s["output_tok_per_s"] is None and s["requests_per_s"] is None
    assert s["ttft_s_p50"] is None and s["latency_s_p99"] is None and s["f1"] is None


def test_trial_stats_are_the_registry_s_per_trial_metrics() -> None:
    from bench.core.describe import trial_stats
    from bench.core.metric_registry import CLIENT_TRIAL_METRICS

    t = trial_stats([_req(1.0, 0.2, 8)], wall_clock_s=2.0)
    assert set(t) == {"wall_clock_s", *CLIENT_TRIAL_METRICS} and t["output_tok_per_s"] == 4.0
    # Given the server's phases over the same pass: the time outside the server too (the rest come from /metrics).
    server = {"server_ttft_s_mean": 0.15, "server_e2e_s_mean": 0.9}
    t = trial_stats([_req(1.0, 0.2, 8)], wall_clock_s=2.0, server=server)
    assert t["outside_engine_ttft_s"] == pytest.approx(0.05) and t["outside_engine_e2e_s"] == pytest.approx(0.1)
