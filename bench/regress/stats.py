"""Regression statistics over server starts x passes (docs/regression.md): noise split, bootstrap intervals."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Grouped = Sequence[Sequence[float]]  # per-pass values, one inner list per server start


@dataclass(frozen=True)
class Interval:
    """A point estimate with its interval; `units` says what was resampled at the top level."""

    point: float
    lo: float
    hi: float
    units: str  # "starts": the interval covers restarts; "passes": only the noise within one start


@dataclass(frozen=True)
class NoiseSplit:
    """Noise of one configuration as coefficients of variation (fractions of the grand mean)."""

    between_cv: float | None  # between server starts (None with a single start)
    within_cv: float | None  # between passes of one start (None with a single pass per start)
    starts: int
    passes: int  # the most passes any start had

    def start_cv(self, passes: int) -> float | None:
        """CV of one start's mean over `passes` passes: what a single nightly's figure wobbles by."""
        if self.between_cv is None and self.within_cv is None:
            return None
        return math.sqrt((self.between_cv or 0.0) ** 2 + (self.within_cv or 0.0) ** 2 / max(passes, 1))


def _clean(groups: Grouped) -> list[np.ndarray]:
    out = [np.asarray([v for v in g if v is not None and math.isfinite(v)], dtype=float) for g in groups]
    return [g for g in out if g.size]


def noise_split(groups: Grouped) -> NoiseSplit:
    """One-way random-effects split (method of moments): within = pooled variance of passes about their
    start's mean; between = variance of start means less the part the within noise explains (>= 0)."""
    gs = _clean(groups)
    starts, passes = len(gs), max((g.size for g in gs), default=0)
    if not gs:
        return NoiseSplit(None, None, 0, 0)
    grand = float(np.mean([g.mean() for g in gs]))
    if grand == 0:
        return NoiseSplit(None, None, starts, passes)
    dof = sum(g.size - 1 for g in gs)
    within_var = sum(float(((g - g.mean()) ** 2).sum()) for g in gs) / dof if dof else None
    between: float | None = None
    if starts >= 2:
        means = np.array([g.mean() for g in gs])
        n_harm = starts / sum(1.0 / g.size for g in gs)  # harmonic mean of passes per start
        between = max(0.0, float(means.var(ddof=1)) - (within_var or 0.0) / n_harm)
    within_cv = math.sqrt(within_var) / abs(grand) if within_var is not None else None
    between_cv = math.sqrt(between) / abs(grand) if between is not None else None
    return NoiseSplit(between_cv, within_cv, starts, passes)


def _units(gs: list[np.ndarray]) -> tuple[list[np.ndarray], str]:
    """The top level to resample: starts when there are two or more, else the one start's passes."""
    if len(gs) >= 2:
        return gs, "starts"
    return [np.array([v]) for v in gs[0]], "passes"


def _boot_means(units: list[np.ndarray], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Two-level bootstrap of the mean of unit means: resample units, then values within each drawn unit."""
    k = len(units)
    pick = rng.integers(0, k, size=(resamples, k))
    # inner[u, r, j]: unit u's mean over its values resampled afresh for resample r, draw j; a unit drawn
    # twice in one resample gets two independent inner draws, as the two-level scheme wants.
    inner = np.stack([u[rng.integers(0, u.size, size=(resamples, k, u.size))].mean(axis=2) for u in units])
    return inner[pick, np.arange(resamples)[:, None], np.arange(k)[None, :]].mean(axis=1)


def _scaled(boot: np.ndarray, units: list[np.ndarray], center: float) -> np.ndarray:
    """Bootstrap deviations about `center`, rescaled to the unbiased standard error of a mean of unit means.

    The two-level bootstrap gives the shape; its spread is off in both directions with few units: the
    top level's variance is (k-1)/k of the unbiased one, and resampling passes again counts the within-
    start noise that the start means already carry. With k = 1 the bootstrap's own spread is kept."""
    dev = boot - center
    k = len(units)
    sd = float(dev.std())
    if k < 2 or sd == 0:
        return dev
    se = float(np.std([u.mean() for u in units], ddof=1)) / math.sqrt(k)
    return dev * (se / sd)


def _t_over_z(dof: float, confidence: float) -> float:
    """Student-t over normal quantile: the percentile bootstrap's tails are normal-thin with few units."""
    from scipy import stats as st

    a = (1 + confidence) / 2
    return float(st.t.ppf(a, max(dof, 1.0)) / st.norm.ppf(a))


def hierarchical_ratio_interval(
    baseline: Grouped, current: Grouped, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Interval of mean(current) / mean(baseline), each side the mean of its starts' pass means.

    Two-level bootstrap per side (starts, then passes within each start) for the shape, on the log scale,
    each side's spread matched to the unbiased standard error of its mean of start means (`_scaled`), the
    interval widened by t/z at Welch's degrees of freedom over the units: with 2-5 starts it still covers
    about `confidence` of the time (tests/test_stats.py measures it). With one start on a side its passes
    are the units: the interval then knows nothing of restarts (`units` == "passes")."""
    b, c = _clean(baseline), _clean(current)
    if not b or not c:
        raise ValueError("both sides need at least one value")
    (ub, kind_b), (uc, kind_c) = _units(b), _units(c)
    mb, mc = float(np.mean([u.mean() for u in ub])), float(np.mean([u.mean() for u in uc]))
    if mb <= 0 or mc <= 0:
        raise ValueError("a ratio interval needs positive means")
    rng = np.random.default_rng(seed)
    # On the log scale, where a ratio is a difference; the standard error of log(mean) is se / mean.
    lb = _scaled(_boot_means(ub, resamples, rng), ub, mb) / mb
    lc = _scaled(_boot_means(uc, resamples, rng), uc, mc) / mc
    vb, vc = float(lb.var()), float(lc.var())
    dof = _welch_dof(vb, len(ub), vc, len(uc))
    alpha = (1 - confidence) / 2
    q_lo, q_hi = np.quantile(lc - lb, [alpha, 1 - alpha]) * _t_over_z(dof, confidence)
    point = math.log(mc / mb)
    units = "starts" if kind_b == kind_c == "starts" else "passes"
    return Interval(mc / mb, math.exp(point + q_lo), math.exp(point + q_hi), units)


def hierarchical_interval(groups: Grouped, resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """One run's estimate (mean of its starts' pass means) and interval, by the same two-level bootstrap."""
    gs = _clean(groups)
    if not gs:
        raise ValueError("no values")
    units, kind = _units(gs)
    m = float(np.mean([u.mean() for u in units]))
    if len(units) == 1:
        return Interval(m, m, m, kind)
    rng = np.random.default_rng(seed)
    dev = _scaled(_boot_means(units, resamples, rng), units, m)
    alpha = (1 - confidence) / 2
    q_lo, q_hi = np.quantile(dev, [alpha, 1 - alpha]) * _t_over_z(len(units) - 1, confidence)
    return Interval(m, m + float(q_lo), m + float(q_hi), kind)


def _welch_dof(vb: float, kb: int, vc: float, kc: int) -> float:
    parts = [(v, k) for v, k in ((vb, kb), (vc, kc)) if k > 1]
    num = sum(v for v, _ in parts) ** 2
    den = sum(v * v / (k - 1) for v, k in parts)
    return num / den if den > 0 else float(max(kb + kc - 2, 1))


@dataclass(frozen=True)
class PairedDiff:
    """Mean over questions of (current - baseline) per-question score, with its interval."""

    diff: float
    lo: float
    hi: float
    questions: int
    worse: int  # questions whose score fell
    better: int


def paired_question_diff(
    baseline: Mapping[str, Sequence[float]], current: Mapping[str, Sequence[float]], resamples: int = 2000,
    confidence: float = 0.95, seed: int = 0,
) -> PairedDiff | None:  # fmt: skip
    """Answers compared question by question: each question's mean score over every pass and start on
    each side, differenced, and the questions resampled (percentile bootstrap). A question answered on
    one side only is left out; None when no question is on both."""
    common = sorted(q for q in baseline.keys() & current.keys() if len(baseline[q]) and len(current[q]))
    if not common:
        return None
    d = np.array([float(np.mean(current[q])) - float(np.mean(baseline[q])) for q in common])
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return PairedDiff(float(d.mean()), float(lo), float(hi), d.size, int((d < 0).sum()), int((d > 0).sum()))
