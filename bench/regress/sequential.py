"""Sequential verdicts: after each round of interleaved starts, regression, no regression, or one more round.

The rule (docs/regression.md, "Sequential verdicts") is a group-sequential design with two one-sided tests
per metric on the log of the worse-direction ratio w (current / baseline for a time, its inverse for a rate):

- regression: w's lower bound excludes no change at the efficacy boundary of this look and the point estimate
  is beyond compare's threshold (compare's own rule, at a stricter level): a false alarm at most `alpha`;
- no regression: w's upper bound excludes a +`detect` slowdown at the futility boundary of this look: a
  +`detect` slowdown wrongly passed at most `beta`;
- at the cap (or a deadline's last round) the remaining `alpha` is spent: regression or not, nothing left open.

Both boundaries come from Lan & DeMets' alpha-spending function of O'Brien-Fleming type,
alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)) (Lan and DeMets 1983, Biometrika 70:659-663; boundaries by the
recursive integration of Armitage, McPherson and Rowe 1969 / Jennison and Turnbull 2000, ch. 19). Spending
by information fraction t (not by look count) is what lets the looks fall anywhere: a nightly against a stored
baseline adds information only on the current side. The futility boundary is non-binding, so `alpha` holds
whether or not a run stops for futility. Each bound is the existing hierarchical bootstrap's interval
(bench.regress.stats) at the confidence that the boundary implies, so restarts, passes and the t/z widening of
few starts carry over unchanged. O'Brien-Fleming's early boundaries are very strict (alpha 0.005, looks at rounds
2-8: z 5.49 at round 2, 3.81 at round 4): an early stop needs an obvious answer; the last look (2.64) is close to
a fixed design's (2.58).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as st

from bench.core.metric_registry import COMPARED
from bench.core.records import OK
from bench.regress.compare import DERIVED, Thresholds, ThresholdsBase, derived_threshold
from bench.regress.sides import Side, load_pair
from bench.regress.stats import hierarchical_ratio_interval

REGRESSION, NO_REGRESSION, CONTINUE = "regression", "no regression", "continue"
MISSING = "missing"  # a side failed or is partial: more starts will not decide it, compare reports it
# The timings with a noise-derived threshold: the figures one more start makes surer (wall_clock_s where a side
# has it per pass). F1, acceptance and the identical share are judged by compare on the finished run.
TIMINGS = tuple(m for m in DERIVED if not COMPARED[m].absolute)
Folder = str | Path | Mapping[str, Side]  # a results folder, or compare's Sides by variant (bench.regress.sides)


@dataclass(frozen=True)
class Plan:
    """The design: the error rates over all looks, the slowdown that must be caught, and the rounds allowed."""

    max_rounds: int = 8  # the cap: starts per side at most (the information fraction's denominator)
    min_rounds: int = 2  # no verdict on one start a side: its interval knows nothing of restarts
    # One-sided false alarms per metric over every look; None: compare's, (1 - thresholds.confidence) / 2, so the
    # nightly's 99 % (conf/compare/nightly.yaml) gives 0.005, the level of the power study.
    alpha: float | None = None
    beta: float = 0.10  # a +detect slowdown passed as no regression, per metric
    detect: float = 0.10  # the slowdown that must be caught (a fraction of the baseline)
    # None: both sides get a start every round (A/B, bisect probes); N: a stored baseline of N starts.
    baseline_starts: int | None = None


@dataclass(frozen=True)
class Look:
    """One metric at one look: the worse-direction ratio, its two bounds and what they say."""

    metric: str
    verdict: str
    worse: float  # > 1: current is worse (slower, or lower tok/s)
    lower: float  # at the efficacy boundary
    upper: float  # at the futility boundary
    threshold: float
    boundary_z: tuple[float, float]  # (efficacy, futility) on the z scale


@dataclass(frozen=True)
class Decision:
    """What to do after a round. `variants` holds each variant's own decision when several were judged."""

    stop: bool
    verdict: str  # REGRESSION | NO_REGRESSION | CONTINUE | MISSING (a side not ok: nothing more to learn)
    reason: str
    rounds: int
    looks: tuple[Look, ...] = ()
    variants: Mapping[str, Decision] = field(default_factory=dict)

    @property
    def open(self) -> list[str]:
        """The variants whose answer is still open: where the next round's starts should go."""
        return [v for v, d in self.variants.items() if not d.stop]

    def to_record(self) -> dict[str, Any]:
        """For run.json: why it stopped and after how many rounds, per variant and metric."""
        out: dict[str, Any] = {"stop": self.stop, "verdict": self.verdict, "reason": self.reason, "rounds": self.rounds}
        if self.looks:
            out["looks"] = [asdict(lk) for lk in self.looks]
        if self.variants:
            out["variants"] = {v: d.to_record() for v, d in self.variants.items()}
        return out


def spent(t: float, total: float) -> float:
    """Lan-DeMets O'Brien-Fleming-type spending: the error allowed by information fraction t (0..1]."""
    if t <= 0:
        return 0.0
    return float(min(total, 2 - 2 * st.norm.cdf(st.norm.ppf(1 - total / 2) / math.sqrt(min(t, 1.0)))))


@lru_cache(maxsize=256)
def boundaries(fractions: tuple[float, ...], total: float) -> tuple[float, ...]:
    """One-sided z boundaries c_k with P(first crossing at look k | no effect) = spent(t_k) - spent(t_{k-1}).

    Recursive numerical integration of the score B(t) = Z sqrt(t), Brownian under no effect: the density of
    B(t_k) on the paths not yet stopped, on a grid, convolved with each increment's normal kernel."""
    dx = 0.002  # z within 0.003 of gsDesign's sfLDOF boundaries (tests/test_sequential.py)
    grid = np.arange(-12.0, 12.0 + dx / 2, dx)
    out: list[float] = []
    dens: np.ndarray | None = None
    prev_t, prev_spent = 0.0, 0.0
    for t in fractions:
        step = t - prev_t
        if step <= 0:
            raise ValueError(f"information fractions must increase: {fractions}")
        if dens is None:
            dens = st.norm.pdf(grid, scale=math.sqrt(t))
        else:
            half = min(grid.size // 2, int(8 * math.sqrt(step) / dx))
            kernel = st.norm.pdf(np.arange(-half, half + 1) * dx, scale=math.sqrt(step)) * dx
            dens = np.convolve(dens, kernel, mode="same")
        target = max(spent(t, total) - prev_spent, 1e-300)
        tail = np.cumsum(dens[::-1])[::-1] * dx  # P(B >= grid[i] and not stopped before), decreasing
        i = int(np.searchsorted(-tail, -target))  # the first grid point whose tail is at most target
        if i <= 0 or i >= grid.size:
            b = float(grid[min(max(i, 0), grid.size - 1)])
        else:  # between grid points, linearly in log tail
            lo, hi = math.log(max(tail[i - 1], 1e-300)), math.log(max(tail[i], 1e-300))
            frac = (lo - math.log(target)) / (lo - hi) if lo != hi else 0.0
            b = float(grid[i - 1] + frac * dx)
        out.append(b / math.sqrt(t))
        dens = np.where(grid < b, dens, 0.0)
        prev_t, prev_spent = t, prev_spent + target
    return tuple(out)


def fractions(plan: Plan, rounds: int, final: bool = False) -> tuple[float, ...]:
    """Information fractions of looks min_rounds..rounds: 1/var of the difference of two means, over the cap's.
    `final`: this look is the last (a deadline), so it gets t = 1 and spends what is left."""

    def inv_var(r: int) -> float:
        nb = plan.baseline_starts if plan.baseline_starts is not None else r
        return 1.0 / (1.0 / nb + 1.0 / r)

    full = inv_var(max(plan.max_rounds, rounds))
    ts = [min(inv_var(r) / full, 1.0) for r in range(plan.min_rounds, rounds + 1)]
    if final or rounds >= plan.max_rounds:
        ts[-1] = 1.0
    # A stored baseline larger than the cap's current side adds little per round: keep the steps positive.
    return tuple(max(t, ts[i - 1] + 1e-9) if i else t for i, t in enumerate(ts))


def _confidence(z: float) -> float:
    """The two-sided interval whose one-sided bound is at z."""
    return float(min(2 * st.norm.cdf(z) - 1, 1 - 1e-12))


def _bounds(bt: list[list[float]], ct: list[list[float]], th: ThresholdsBase, z: float) -> tuple[float, float, float]:
    """The ratio and its interval at boundary z. With two or three starts the t/z widening at a far boundary
    can overflow: the interval is then everything, which is what two starts can say at that level."""
    try:
        iv = hierarchical_ratio_interval(bt, ct, th.resamples, _confidence(z), th.seed)
    except OverflowError:
        iv = hierarchical_ratio_interval(bt, ct, th.resamples, 0.5, th.seed)
        return iv.point, 0.0, math.inf
    return iv.point, iv.lo, iv.hi


def _inverse(x: float) -> float:
    return math.inf if x == 0 else 0.0 if math.isinf(x) else 1 / x


def look_metric(
    name: str, base: Side, cur: Side, th: ThresholdsBase, plan: Plan, rounds: int, final: bool = False
) -> Look | None:
    """One metric's test at this look; None when either side lacks enough starts of it."""
    bt, ct = [g for g in base.trials.get(name, []) if g], [g for g in cur.trials.get(name, []) if g]
    if len(bt) < 2 or len(ct) < 2:
        return None
    ts = fractions(plan, rounds, final)
    alpha = plan.alpha if plan.alpha is not None else (1 - th.confidence) / 2
    ce, cf = boundaries(ts, alpha)[-1], boundaries(ts, plan.beta)[-1]
    passes = min(len(g) for g in ct)
    threshold, _ = derived_threshold(name, base, passes, th)
    threshold = float(threshold or 0.0)
    (point, lo_e, hi_e), (_, lo_f, hi_f) = (_bounds(bt, ct, th, z) for z in (ce, cf))
    if COMPARED[name].higher_is_better:
        worse, lower, upper = 1 / point, _inverse(hi_e), _inverse(lo_f)
    else:
        worse, lower, upper = point, lo_e, hi_f
    last = final or rounds >= plan.max_rounds
    if lower > 1 and worse - 1 > threshold:
        verdict = REGRESSION
    elif upper < 1 + plan.detect or last:
        verdict = NO_REGRESSION
    else:
        verdict = CONTINUE
    return Look(name, verdict, worse, lower, upper, threshold, (ce, cf))


def _why(looks: Sequence[Look], verdict: str, plan: Plan, rounds: int) -> str:
    if verdict == REGRESSION:
        bad = max((lk for lk in looks if lk.verdict == REGRESSION), key=lambda lk: lk.worse)
        z = bad.boundary_z[0]
        return (f"{bad.metric} {bad.worse - 1:+.1%}: its bound {bad.lower - 1:+.1%} excludes no change at z {z:.2f}"
                f" and it is beyond the threshold {bad.threshold:.1%}, after {rounds} rounds")  # fmt: skip
    top = max(looks, key=lambda lk: lk.upper)
    bound = f"highest bound {top.metric} {top.upper - 1:+.1%} at z {top.boundary_z[1]:.2f}"
    if verdict == NO_REGRESSION and top.upper >= 1 + plan.detect:
        return f"the cap of {plan.max_rounds} rounds: no timing shown worse, +{plan.detect:.0%} not excluded ({bound})"
    if verdict == NO_REGRESSION:
        return f"every timing excludes +{plan.detect:.0%} ({bound}), after {rounds} rounds"
    still = [lk.metric for lk in looks if lk.verdict == CONTINUE]
    return f"open after {rounds} of {plan.max_rounds} rounds: {', '.join(still)}"


def decide_sides(
    base: Side, cur: Side, th: ThresholdsBase | None = None, plan: Plan | None = None, rounds: int | None = None,
    metrics: Sequence[str] | None = None, final: bool = False,
) -> Decision:  # fmt: skip
    """One variant: regression as soon as one timing is clearly worse, no regression once every timing clearly
    excludes +detect, else continue (until the cap or a `final` round). `rounds` defaults to cur's starts."""
    th, plan = th or Thresholds(), plan or Plan()
    rounds = cur.starts if rounds is None else rounds
    last = final or rounds >= plan.max_rounds
    bad = [f"{label}: {side.status}" for label, side in (("baseline", base), ("current", cur)) if side.status != OK]
    if bad:
        return Decision(True, MISSING, "; ".join(bad), rounds)
    if rounds < plan.min_rounds:
        return Decision(False, CONTINUE, f"{rounds} of at least {plan.min_rounds} rounds", rounds)
    looks = tuple(lk for m in metrics or TIMINGS if (lk := look_metric(m, base, cur, th, plan, rounds, final)))
    if not looks:
        return Decision(last, NO_REGRESSION if last else CONTINUE, "no timing with two starts on each side", rounds)
    kinds = {lk.verdict for lk in looks}
    verdict = REGRESSION if REGRESSION in kinds else CONTINUE if CONTINUE in kinds else NO_REGRESSION
    return Decision(verdict != CONTINUE, verdict, _why(looks, verdict, plan, rounds), rounds, looks)


def decide(
    baseline: Folder, current: Folder, thresholds: ThresholdsBase | None = None, rounds: int | None = None,
    max_rounds: int = 8, metrics: Sequence[str] | None = None, *, plan: Plan | None = None, final: bool = False,
) -> Decision:  # fmt: skip
    """The dispatcher's call after each round: two results folders (or compare's Sides by variant), every variant
    of the current side judged. Stops when no variant is open; the verdict is a regression if any variant's is."""
    if not isinstance(baseline, Mapping) or not isinstance(current, Mapping):
        baseline, current = load_pair(Path(str(baseline)), Path(str(current)))
    plan = plan or Plan(max_rounds=max_rounds)
    per: dict[str, Decision] = {}
    for v in sorted(current):
        if v not in baseline:
            continue
        per[v] = decide_sides(baseline[v], current[v], thresholds, plan, rounds, metrics, final)
    if not per:
        return Decision(True, NO_REGRESSION, "no variant on both sides", rounds or 0)
    done = max(d.rounds for d in per.values())
    verdicts = {d.verdict for d in per.values()}
    still = [v for v, d in per.items() if not d.stop]
    if still:
        return Decision(False, CONTINUE, f"open: {', '.join(still)}", done, variants=per)
    verdict = next(v for v in (REGRESSION, MISSING, NO_REGRESSION) if v in verdicts)
    reason = "; ".join(f"{v}: {d.reason}" for v, d in per.items() if d.verdict == verdict)
    return Decision(True, verdict, reason, done, variants=per)


def rounds_that_fit(max_minutes: float, elapsed_s: float, round_s: Sequence[float]) -> int:
    """How many more rounds fit before a deadline of `max_minutes` from the start, at the measured cost per round.

    The first round may pay for compiling (a cold cache) and the rest not: with two or more rounds measured, the
    later ones set the pace; with one, that one does (a cautious estimate); with none, nothing is known (0)."""
    if not round_s:
        return 0
    pace = max(round_s[1:]) if len(round_s) >= 2 else round_s[0]
    left = max_minutes * 60 - elapsed_s
    return max(0, int(left // pace)) if pace > 0 else 0
