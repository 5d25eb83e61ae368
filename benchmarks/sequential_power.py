"""The power study of the sequential rule (bench.regress.sequential), beside the fixed design it replaces.

    # on the committed pool of real CPU starts (no server): rounds drawn from it until the rule stops
    nice -n 10 .venv/bin/python benchmarks/sequential_power.py pool --pool results/reference/power-pool \
        --since 2026-11-29T10:50 --draws 200
    # on simulated noise (between-start and within-start CVs), wall-clock alone
    nice -n 10 .venv/bin/python benchmarks/sequential_power.py model --draws 200

A round is one more start on each side (A/B, bisect probes) or, with --stored N, on the current side only
against a stored baseline of N starts (a nightly). Each drawn comparison runs rounds until decide_sides stops;
its verdict and the starts it spent are counted. The fixed design is compare's rule (the nightly's 99 %
intervals) at a fixed number of starts a side, on the same draws.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.records import OK
from bench.regress.compare import REGRESSION, Thresholds, compare_results
from bench.regress.sequential import TIMINGS, Plan, decide_sides
from bench.regress.sides import Side

sys.path.insert(0, str(Path(__file__).parent))
from regression_power import load_pool, side  # noqa: E402

TABLE = TIMINGS  # the timings of one variant's table (F1 needs no more starts: compare judges it)


def run_sequential(
    base_starts: list[Any], cur_starts: list[Any], make_b: Any, make_c: Any, plan: Plan, th: Thresholds
) -> tuple[str, int, int]:
    """Rounds until the rule stops: (verdict, rounds, starts spent on both sides)."""
    stored = plan.baseline_starts
    for r in range(1, plan.max_rounds + 1):
        b = make_b(base_starts[: stored if stored is not None else r])
        c = make_c(cur_starts[:r])
        d = decide_sides(b, c, th, plan, r, TABLE)
        if d.stop:
            return d.verdict, r, r + (stored or r)
    raise AssertionError("the rule must stop at the cap")


def fixed_alarm(b: Side, c: Side, th: Thresholds) -> bool:
    return any(v.verdict == REGRESSION for v in compare_results({"v": b}, {"v": c}, th, TABLE))


def pool_study(a: argparse.Namespace) -> None:
    pool = load_pool(a.pool)
    if a.since:
        t0 = dt.datetime.fromisoformat(a.since).replace(tzinfo=dt.timezone.utc).timestamp()
        pool = [s for s in pool if s["started_at"] >= t0]
    same = [s for s in pool if s["config"] == "same"]
    qs = {r["question_id"] for s in pool for r in s["passes"][0]["requests"]}
    rng = random.Random(0)
    th_seq = Thresholds(resamples=a.resamples)
    th_fix = Thresholds(resamples=a.resamples, confidence=0.99)
    stored = a.stored or None
    k = a.max_rounds
    plan = Plan(max_rounds=k, alpha=a.alpha, beta=a.beta, detect=a.detect, baseline_starts=stored)
    print(f"pool {a.pool}: {len(pool)} starts ({len(same)} same-config), {len(qs)} questions x 2 passes;"
          f" {a.draws} draws a row, bootstrap {a.resamples} resamples; plan {plan}")  # fmt: skip
    print("case | sequential: alarms | rounds mean (max) | starts mean | fixed 4x2: alarms | "
          f"fixed {k}x2: alarms | fixed starts")  # fmt: skip
    cases: list[tuple[str, str | None, float]] = [
        ("same config", None, 1.0),
        ("same x 1.10", None, 1.10),
        ("spec2 (+10.8 %)", "spec2", 1.0),
        ("spec1 (+27 %)", "spec1", 1.0),
    ]
    for label, other, scale in (c for c in cases if not a.cases or c[0].split(" (")[0] in a.cases.split(",")):
        alarms, rounds, spent, fix4, fixk = 0, [], [], 0, 0
        for _ in range(a.draws):
            if other is None:
                picked = rng.sample(same, min(len(same), 2 * k))
                base, cur = picked[: len(picked) // 2], picked[len(picked) // 2 :]
            else:
                slow = [s for s in pool if s["config"] == other]
                base, cur = rng.sample(same, min(k, len(same))), rng.sample(slow, min(k, len(slow)))
            nb = min(len(base), k)

            def make_b(sts: list[Any]) -> Side:
                return side(sts, 2, qs)

            def make_c(sts: list[Any], scale: float = scale) -> Side:
                return side(sts, 2, qs, scale)

            verdict, r, n = run_sequential(base, cur, make_b, make_c, plan, th_seq)
            alarms += verdict == REGRESSION
            rounds.append(r)
            spent.append(n)
            fix4 += fixed_alarm(make_b(base[:4]), make_c(cur[:4]), th_fix)
            fixk += fixed_alarm(make_b(base[:nb]), make_c(cur[:nb]), th_fix)
        n = a.draws
        print(f"{label} | {alarms / n:.1%} | {np.mean(rounds):.1f} ({max(rounds)}) | {np.mean(spent):.1f} |"
              f" {fix4 / n:.1%} | {fixk / n:.1%} | 8 / {2 * k}", flush=True)  # fmt: skip


def sim_groups(rng: np.random.Generator, n: int, passes: int, ratio: float, b: float, w: float) -> list[list[float]]:
    return [list(ratio * np.exp(rng.normal(0, b) + rng.normal(0, w, passes))) for _ in range(n)]


def model_cell(b: float, w: float, a: argparse.Namespace) -> str:
    """One noise cell: the fixed design's starts a side for 90 % power at +detect, then the sequential rule
    capped at about as many rounds, its false alarms, detection and mean starts."""
    passes = 2
    cv = math.sqrt(b * b + w * w / passes)
    # Normal approximation of a fixed comparison at one-sided 0.005 (the 99 % intervals) and 90 % power, then
    # the t/z widening of few starts: a starting point for the search, not a result.
    n_fixed = max(3, math.ceil(2 * ((2.576 + 1.282) * cv / math.log(1 + a.detect)) ** 2))
    th_fix = Thresholds(resamples=a.resamples, confidence=0.99)
    th_seq = Thresholds(resamples=a.resamples)
    if n_fixed > a.max_model_starts:
        return (
            f"{b:.0%} | {w:.0%} | about {n_fixed}x{passes} (normal approximation) | - | - | - | - | - | {2 * n_fixed}"
        )
    rng = np.random.default_rng(0)

    def fixed_power(n: int, ratio: float) -> float:
        hits = 0
        for _ in range(a.draws):
            bs = Side(OK, trials={"wall_clock_s": sim_groups(rng, n, passes, 1.0, b, w)})
            cs = Side(OK, trials={"wall_clock_s": sim_groups(rng, n, passes, ratio, b, w)})
            hits += fixed_alarm(bs, cs, th_fix)
        return hits / a.draws

    while fixed_power(n_fixed, 1 + a.detect) < 0.9 and n_fixed < a.max_model_starts:
        n_fixed += max(1, n_fixed // 5)
    fixed_fa = fixed_power(n_fixed, 1.0)

    def sequential(cap: int, ratio: float) -> tuple[float, float]:
        plan = Plan(max_rounds=cap, alpha=a.alpha, beta=a.beta, detect=a.detect)
        alarms, spent = 0, []
        for _ in range(a.draws):
            base = sim_groups(rng, cap, passes, 1.0, b, w)
            cur = sim_groups(rng, cap, passes, ratio, b, w)
            for r in range(plan.min_rounds, cap + 1):
                bs, cs = Side(OK, trials={"wall_clock_s": base[:r]}), Side(OK, trials={"wall_clock_s": cur[:r]})
                d = decide_sides(bs, cs, th_seq, plan, r, ("wall_clock_s",))
                if d.stop:
                    break
            alarms += d.verdict == REGRESSION
            spent.append(2 * d.rounds)
        return alarms / a.draws, float(np.mean(spent))

    # Equal power: the cap grows until the rule catches +detect as often as the fixed design must (90 %).
    cap = n_fixed
    det, e1 = sequential(cap, 1 + a.detect)
    while det < 0.9 and cap < a.max_model_starts:
        cap += max(1, cap // 5)
        det, e1 = sequential(cap, 1 + a.detect)
    out = {1.0: sequential(cap, 1.0), 1 + a.detect: (det, e1)}
    (fa, e0), (det, e1) = out[1.0], out[1 + a.detect]
    return (f"{b:.0%} | {w:.0%} | {n_fixed}x{passes} | {fixed_fa:.1%} | {cap} | {fa:.1%} | {det:.0%} |"
            f" {e0:.1f} / {e1:.1f} | {2 * n_fixed}")  # fmt: skip


def model_study(a: argparse.Namespace) -> None:
    print(f"model: wall-clock alone, lognormal noise, 2 passes a start, {a.draws} draws a cell, bootstrap"
          f" {a.resamples} resamples; sequential alpha {a.alpha}, beta {a.beta}, +{a.detect:.0%} to catch")  # fmt: skip
    print(
        "between CV | within CV | fixed for 90 % at +10 % | fixed: false alarms | sequential cap |"
        " sequential: false alarms | detects +10 % | mean starts (no change / +10 %) | fixed starts"
    )
    for b in (float(x) for x in a.between.split(",")):
        for w in (float(x) for x in a.within.split(",")):
            print(model_cell(b, w, a), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("pool", "model"):
        s = sub.add_parser(name)
        s.add_argument("--draws", type=int, default=200)
        s.add_argument("--resamples", type=int, default=500)
        s.add_argument("--alpha", type=float, default=0.005, help="one-sided, per metric (the nightly's 99 %%)")
        s.add_argument("--beta", type=float, default=Plan.beta)
        s.add_argument("--detect", type=float, default=Plan.detect)
    sp = sub.choices["pool"]
    sp.add_argument("--pool", type=Path, default=Path("results/reference/power-pool"))
    sp.add_argument("--since", default=None)
    sp.add_argument("--max-rounds", type=int, default=8)
    sp.add_argument("--stored", type=int, default=0, help="a stored baseline of N starts (a nightly); 0: A/B")
    sp.add_argument("--cases", default="", help="only these rows: 'same config,same x 1.10,spec2,spec1'")
    sm = sub.choices["model"]
    sm.add_argument("--between", default="0.02,0.05,0.10")
    sm.add_argument("--within", default="0.03,0.06,0.12")
    sm.add_argument("--max-model-starts", type=int, default=24)
    a = p.parse_args()
    pool_study(a) if a.cmd == "pool" else model_study(a)


if __name__ == "__main__":
    main()
