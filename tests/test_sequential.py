"""The sequential rule (bench/regress/sequential.py): its boundaries, its stops, its record, the deadline helper."""

from __future__ import annotations

import json
from itertools import pairwise

import numpy as np
import pytest

from bench.core.records import OK
from bench.regress.compare import Thresholds
from bench.regress.sequential import (
    CONTINUE,
    MISSING,
    NO_REGRESSION,
    REGRESSION,
    Plan,
    boundaries,
    decide,
    decide_sides,
    fractions,
    rounds_that_fit,
    spent,
)
from bench.regress.sides import Side

TH = Thresholds(resamples=400, confidence=0.99)  # the nightly's: alpha 0.005 a metric


def test_boundaries_are_gsdesigns_obrien_fleming_type_spending() -> None:
    # gsDesign(k = 5, test.type = 1, alpha = 0.025, sfu = sfLDOF)$upper$bound, equally spaced looks.
    expected = [4.877, 3.357, 2.680, 2.290, 2.031]
    got = boundaries(tuple(k / 5 for k in range(1, 6)), 0.025)
    assert np.allclose(got, expected, atol=0.003)


def test_spending_ends_at_the_total_and_grows() -> None:
    ts = [0.1, 0.3, 0.6, 1.0]
    assert spent(1.0, 0.005) == pytest.approx(0.005)
    assert all(spent(a, 0.005) < spent(b, 0.005) for a, b in pairwise(ts))


def test_a_stored_baseline_adds_information_on_one_side_only() -> None:
    both, stored = fractions(Plan(max_rounds=8), 8), fractions(Plan(max_rounds=8, baseline_starts=4), 8)
    assert both[0] == pytest.approx(2 / 8) and both[-1] == 1.0
    # 1/(1/4 + 1/2) over 1/(1/4 + 1/8): the current side's second start is already half the final information.
    assert stored[0] == pytest.approx((1 / 4 + 1 / 8) / (1 / 4 + 1 / 2))
    assert all(a < b for a, b in pairwise(stored)) and stored[-1] == 1.0


def groups(rng: np.random.Generator, n: int, ratio: float, between: float = 0.05, within: float = 0.03) -> list:
    return [list(ratio * 10 * np.exp(rng.normal(0, between) + rng.normal(0, within, 2))) for _ in range(n)]


def sides(base: list, cur: list) -> tuple[Side, Side]:
    tok = lambda gs: [[320 / w for w in g] for g in gs]  # noqa: E731  a rate: higher is better
    return (Side(OK, trials={"wall_clock_s": base, "output_tok_per_s": tok(base)}),
            Side(OK, trials={"wall_clock_s": cur, "output_tok_per_s": tok(cur)}))  # fmt: skip


def run_until_stop(rng: np.random.Generator, ratio: float, plan: Plan) -> tuple[str, int]:
    base, cur = groups(rng, plan.max_rounds, 1.0), groups(rng, plan.max_rounds, ratio)
    for r in range(1, plan.max_rounds + 1):
        d = decide_sides(*sides(base[:r], cur[:r]), TH, plan)
        assert d.rounds == r
        if d.stop:
            return d.verdict, r
    raise AssertionError("the cap must stop it")


def test_one_start_a_side_never_decides() -> None:
    rng = np.random.default_rng(0)
    d = decide_sides(*sides(groups(rng, 1, 1.0), groups(rng, 1, 3.0)), TH, Plan())
    assert (d.stop, d.verdict) == (False, CONTINUE)


def test_an_obvious_slowdown_stops_early_as_a_regression() -> None:
    rng = np.random.default_rng(1)
    verdict, rounds = run_until_stop(rng, 1.5, Plan(max_rounds=8))
    assert verdict == REGRESSION and rounds < 8


def test_a_faster_current_is_never_a_regression() -> None:
    rng = np.random.default_rng(2)
    assert {run_until_stop(rng, 0.7, Plan(max_rounds=6))[0] for _ in range(5)} == {NO_REGRESSION}


def test_false_alarms_stay_rare_under_repeated_looks() -> None:
    # 40 same-config comparisons looked at after every round: at alpha 0.005 per metric, at most a couple may alarm.
    rng = np.random.default_rng(3)
    alarms = sum(run_until_stop(rng, 1.0, Plan(max_rounds=6))[0] == REGRESSION for _ in range(40))
    assert alarms <= 2


def test_the_cap_and_a_deadline_leave_nothing_open() -> None:
    rng = np.random.default_rng(4)
    base, cur = groups(rng, 3, 1.0, between=0.2), groups(rng, 3, 1.05, between=0.2)
    open_ = decide_sides(*sides(base, cur), TH, Plan(max_rounds=8))
    assert open_.verdict == CONTINUE and "open after 3 of 8 rounds" in open_.reason
    last = decide_sides(*sides(base, cur), TH, Plan(max_rounds=8), final=True)
    assert last.stop and last.verdict == NO_REGRESSION and "+10% not excluded" in last.reason


def test_decide_judges_every_variant_and_says_which_are_open() -> None:
    rng = np.random.default_rng(5)
    b1, c1 = sides(groups(rng, 4, 1.0), groups(rng, 4, 2.0))
    b2, c2 = sides(groups(rng, 4, 1.0, between=0.3), groups(rng, 4, 1.0, between=0.3))
    d = decide({"slow": b1, "noisy": b2}, {"slow": c1, "noisy": c2}, TH, max_rounds=8)
    assert d.variants["slow"].verdict == REGRESSION and d.open == ["noisy"] and not d.stop
    record = json.loads(json.dumps(d.to_record()))  # what run.json would hold
    assert record["variants"]["slow"]["rounds"] == 4 and record["variants"]["slow"]["looks"]


@pytest.mark.parametrize(
    ("minutes", "elapsed", "rounds", "fit"),
    [(20, 0, [], 0), (20, 300, [300], 3), (20, 400, [300, 100], 8), (20, 1300, [300, 500, 500], 0)],
)
def test_rounds_that_fit_the_deadline(minutes: float, elapsed: float, rounds: list[float], fit: int) -> None:
    # The first round may have compiled: once later rounds are measured, they set the pace.
    assert rounds_that_fit(minutes, elapsed, rounds) == fit


def test_a_failed_side_stops_as_missing_rather_than_spending_the_cap() -> None:
    rng = np.random.default_rng(6)
    base, cur = sides(groups(rng, 3, 1.0), groups(rng, 3, 1.0))
    failed = Side("failed", "server exited with code 1")
    d = decide({"v": base, "w": base}, {"v": failed, "w": cur}, TH, max_rounds=8)
    assert d.variants["v"].stop and d.variants["v"].verdict == MISSING and "current: failed" in d.variants["v"].reason
    assert d.open == ["w"]
