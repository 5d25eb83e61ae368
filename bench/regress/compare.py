"""Regression verdicts between two results folders: `python -m bench compare BASELINE CURRENT`."""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError

from bench.core.errors import ConfigError
from bench.core.metric_registry import COMPARED, MetricSpec
from bench.core.paths import CONF_DIR
from bench.core.records import OK
from bench.core.repeats import MAX_COUNT
from bench.regress.sides import ONE_START, Side, load_pair
from bench.regress.stats import NoiseSplit, hierarchical_ratio_interval, noise_split, paired_question_diff

REGRESSION, MISSING, IMPROVEMENT, NOISE = "regression", "missing", "improvement", "within noise"
# An informational metric's row (MetricSpec.informational: the server's phases) without a threshold: the change is
# shown, never judged. Phases are report-only by default because they explain a verdict rather than make one: a
# slower decode already moves TPOT and tok/s, which have thresholds; a queue going from 0.1 to 0.2 ms is +100 % and
# means nothing; and a baseline from before phases existed must not fail --fail-on-missing. A thresholds file that
# sets one (server_queue_s_mean: 0.4) makes it a verdict like any other.
REPORTED = "reported"
ALL_METRICS = "all"  # the metric of a verdict about a whole variant (absent, or not ok, on one side)
# A median of fewer values has almost nothing to resample: below this the threshold decides alone.
MIN_TRIALS = 3


METRICS: dict[str, MetricSpec] = COMPARED  # the registry's metrics that have a default threshold


# The registry's thresholds: used where the noise cannot be measured (a baseline with one server start,
# a metric with one value per run) or given as a fixed floor (F1).
FIXED_THRESHOLDS: dict[str, float] = {m.name: float(m.threshold or 0.0) for m in METRICS.values()}
# Thresholds that default to None, i.e. derived from the baseline (derived_threshold): the metrics with
# one figure per pass, whose noise between and within starts can be measured, and the identical share,
# whose movement between the baseline's own starts is measured.
DERIVED = tuple(
    m.name for m in METRICS.values()
    if not m.informational and (m.per_trial or m.name in ("wall_clock_s", "identical_to_baseline"))
)  # fmt: skip


@dataclass
class ThresholdsBase:
    """The rule and the bootstrap's settings; Thresholds adds one field per compared metric. Annotate with
    this class. noise_multiple and min_threshold: the rule for thresholds left to None (derived_threshold);
    confidence: how sure before a change counts; a fixed seed so a folder pair always gets one verdict."""

    noise_multiple: float = 1.0
    min_threshold: float = 0.02
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0


# Smallest change that counts, per metric (bench.core.metric_registry's thresholds: a fraction of the
# baseline, or absolute for f1 and acceptance), then the bootstrap's settings. Flat fields, so a
# thresholds YAML is `metric: value` lines and a misspelled key is refused.
Thresholds: type[ThresholdsBase] = dataclasses.make_dataclass(
    "Thresholds",
    [(m.name, float | None, field(default=None if m.name in DERIVED else m.threshold)) for m in METRICS.values()],
    bases=(ThresholdsBase,),
)
Thresholds.__module__ = __name__  # make_dataclass's `module=` needs Python 3.12


@dataclass(frozen=True)
class Verdict:
    variant: str
    metric: str  # ALL_METRICS when the whole variant is missing
    verdict: str  # REGRESSION | IMPROVEMENT | NOISE | MISSING
    baseline: float | None = None
    current: float | None = None
    change_pct: float | None = None  # (current - baseline) / baseline * 100
    threshold: float | None = None  # as in Thresholds: a fraction, or absolute for f1 and acceptance
    # Of current - baseline in the metric's unit (for a ratio interval: (ratio - 1) x the baseline's value).
    ci: tuple[float, float] | None = None
    basis: str = ""
    note: str = ""
    noise: NoiseSplit | None = None  # both sides' noise, each relative to its own mean


def load_thresholds(path: Path | None = None) -> ThresholdsBase:
    """Defaults, overridden by a YAML file of `metric: threshold` lines; unknown keys are refused. A bare name
    (`nightly`) is one of the presets that ship with bench (conf/compare/NAME.yaml), wherever it is installed."""
    if path is None:
        return Thresholds()
    preset = CONF_DIR / "compare" / f"{path}.yaml"
    if not Path(path).is_file() and "/" not in str(path) and preset.is_file():
        path = preset
    if not Path(path).is_file():
        presets = ", ".join(sorted(p.stem for p in (CONF_DIR / "compare").glob("*.yaml")))
        raise ConfigError(f"no thresholds file at {path} (or a preset name: {presets})")
    valid = [f.name for f in dataclasses.fields(Thresholds)]
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Thresholds), OmegaConf.load(path))
    except ConfigKeyError as e:
        close = difflib.get_close_matches(str(e.key), valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{path}: unknown key {e.key!r}{hint}; valid keys: {', '.join(valid)}") from None
    except Exception as e:  # YAML syntax, a wrong type, a list: omegaconf and yaml raise several types
        raise ConfigError(f"{path}: {str(e).splitlines()[0]}") from None
    th = OmegaConf.to_object(merged)
    assert isinstance(th, ThresholdsBase)
    # NaN compares false with everything: a NaN threshold rated a +34,822 % slowdown "within noise".
    values = {f.name: getattr(th, f.name) for f in dataclasses.fields(th)}
    if not_finite := [k for k, v in values.items() if isinstance(v, float) and not math.isfinite(v)]:
        raise ConfigError(f"{path}: {', '.join(not_finite)} must be finite numbers (not NaN or infinity)")
    if th.resamples > MAX_COUNT:
        raise ConfigError(f"{path}: resamples={th.resamples} is out of range: at most {MAX_COUNT:,}")
    negative = [m for m in METRICS if (getattr(th, m) or 0) < 0]
    if negative or min(th.noise_multiple, th.min_threshold) < 0 or not 0 < th.confidence < 1 or th.resamples < 1:
        raise ConfigError(f"{path}: thresholds must be >= 0, 0 < confidence < 1 and resamples >= 1")
    return th


def derived_threshold(name: str, base: Side, passes: int, th: ThresholdsBase) -> tuple[float | None, str]:
    """A metric's threshold and where it came from: given by the user, or by the rule of docs/regression.md.

    Timings, with two or more baseline starts: `noise_multiple` x the noise of one start's figure over
    `passes` passes (its between-start and within-start parts), never below `min_threshold`. A change
    smaller than what one night's figure wobbles by is not worth a red nightly however credible, and it
    leaves room for night-to-night drift, which no interval over one night's starts can see. F1: more
    than one question's worth (1 / questions), never below the fixed 0.02. Otherwise the fixed defaults."""
    given = getattr(th, name)
    if given is not None:
        return float(given), "given"
    if METRICS[name].informational:
        return None, "report only"
    if name == "f1":
        n = len(base.scores)
        if n:
            return max(FIXED_THRESHOLDS["f1"], 1.0 / n), "one question's worth"
        return FIXED_THRESHOLDS["f1"], "fixed"
    if name == "identical_to_baseline":
        # Exact where the engine is deterministic (every baseline start agreed: any drop counts); where its
        # starts disagree among themselves (bf16 speculation on a CPU, batched GPU decoding), by that much.
        shares = [float(np.mean(g)) for g in base.trials.get(name, []) if g]
        if len(shares) >= 2:
            return max(FIXED_THRESHOLDS[name], max(shares) - min(shares)), "the baseline's spread between starts"
        return FIXED_THRESHOLDS[name], "fixed"
    groups = base.trials.get(name, [])
    cv = noise_split(groups).start_cv(passes) if len(groups) >= 2 else None
    if cv is not None:
        return max(th.min_threshold, th.noise_multiple * cv), "from noise"
    return FIXED_THRESHOLDS[name], "fixed"


def pooled_noise(base: Sequence[Sequence[float]], cur: Sequence[Sequence[float]]) -> NoiseSplit:
    """Both sides' noise at once, each side divided by its own mean, so that a real change is not noise."""
    groups: list[list[float]] = []
    for side in (base, cur):
        means = [float(np.mean(g)) for g in side if g]
        m = float(np.mean(means)) if means else 0.0
        if m:
            groups += [[v / m for v in g] for g in side if g]
    split = noise_split(groups)
    if max(len(base), len(cur)) < 2:  # one start a side: the two sides' means are divided away, nothing is left
        split = dataclasses.replace(split, between_cv=None)
    return split


def classify(change: float, threshold: float, higher_is_better: bool, ci: tuple[float, float] | None = None) -> str:
    """Beyond the threshold, and (given an interval of the difference) with all of the interval on that side of 0."""
    sign = -1.0 if higher_is_better else 1.0  # after this, positive means worse
    worse, better = sign * change > threshold, -sign * change > threshold
    if ci is not None:
        lo, hi = sorted(sign * x for x in ci)
        worse, better = worse and lo > 0, better and hi < 0
    return REGRESSION if worse else IMPROVEMENT if better else NOISE


def _resamplable(groups: Sequence[Sequence[float]]) -> bool:
    """Two or more starts, or one start with MIN_TRIALS passes: below that the threshold decides alone."""
    return len(groups) >= 2 or (len(groups) == 1 and len(groups[0]) >= MIN_TRIALS)


def compare_metric(variant: str, name: str, base: Side, cur: Side, th: ThresholdsBase) -> Verdict | None:
    """None when neither side measured the metric (e.g. acceptance rate without speculation)."""
    metric = METRICS[name]
    if name == "identical_to_baseline" and not cur.lossless:
        return None  # quantization may change answers by design: only a declared-lossless variant must not
    bv, cv = base.value(name), cur.value(name)
    if bv is None and cv is None:
        return None
    ct = cur.trials.get(name, [])
    threshold, source = derived_threshold(name, base, min((len(g) for g in ct), default=1), th)
    unjudged = MISSING if threshold is not None else REPORTED  # a report-only row never fails --fail-on-missing
    if bv is None or cv is None:
        side = "baseline" if bv is None else "current"
        return Verdict(variant, name, unjudged, bv, cv, threshold=threshold, note=f"not measured in the {side} run")
    if bv == 0 and not metric.absolute:
        return Verdict(variant, name, unjudged, bv, cv, threshold=threshold, note="baseline is 0: no relative change")
    change_pct = (cv - bv) / abs(bv) * 100 if bv else None
    change, ci, noise, basis, notes = _evidence(name, bv, cv, base, cur, th, threshold is not None)
    if threshold is None:
        return Verdict(variant, name, REPORTED, bv, cv, change_pct, None, ci, basis, "; ".join(notes), noise)
    notes = notes if source == "given" else [f"threshold {source}", *notes]
    verdict = classify(change, threshold, bool(metric.higher_is_better), ci)
    if verdict == NOISE and classify(change, threshold, bool(metric.higher_is_better)) != NOISE:
        notes.insert(0, "beyond the threshold, but the interval includes no change")
    return Verdict(variant, name, verdict, bv, cv, change_pct, threshold, ci, basis, "; ".join(notes), noise)


def _evidence(
    name: str, bv: float, cv: float, base: Side, cur: Side, th: ThresholdsBase, judged: bool = True
) -> tuple[float, tuple[float, float] | None, NoiseSplit | None, str, list[str]]:
    """The change (absolute, or a fraction of the baseline), its interval where one can be had, both sides' noise,
    what the interval rests on, and notes."""
    metric, bt, ct = METRICS[name], base.trials.get(name, []), cur.trials.get(name, [])
    change = cv - bv if metric.absolute else (cv - bv) / abs(bv)
    ci, noise, notes = None, None, []
    paired = paired_question_diff(base.scores, cur.scores, th.resamples, th.confidence, th.seed)
    if name == "f1" and paired is not None:
        # Question by question: one flipped answer weighs one question, and hard questions do not hide easy ones.
        change, ci = paired.diff, (paired.lo, paired.hi)
        basis = f"paired over {paired.questions} questions ({paired.worse} worse, {paired.better} better)"
    elif not metric.absolute and _resamplable(bt) and _resamplable(ct) and bv > 0 and cv > 0:
        iv = hierarchical_ratio_interval(bt, ct, th.resamples, th.confidence, th.seed)
        ci, noise = ((iv.lo - 1) * bv, (iv.hi - 1) * bv), pooled_noise(bt, ct)
        if iv.units == "starts":
            basis = f"{th.confidence:.0%} CI over starts, {len(bt)}/{len(ct)} starts"
        else:
            basis = f"{th.confidence:.0%} CI over passes, n={sum(map(len, bt))}/{sum(map(len, ct))}"
            notes.append(ONE_START)
    else:
        basis = f"{'threshold' if judged else 'change'} only (n<{MIN_TRIALS})"
    return change, ci, noise, basis, notes


def _not_ok(side: Side | None, label: str) -> str | None:
    if side is None:
        return f"absent from the {label} folder"
    if side.status != OK:
        return f"{label}: {side.status}" + (f" ({side.reason})" if side.reason else "")
    return None


def compare_results(
    baseline: dict[str, Side], current: dict[str, Side], thresholds: ThresholdsBase | None = None,
    metrics: Sequence[str] | None = None,
) -> list[Verdict]:  # fmt: skip
    """Every variant of either side x every metric, regressions first, then missing, improvements, noise."""
    th = thresholds or Thresholds()
    names = list(metrics or METRICS)
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric {unknown[0]!r}; valid: {', '.join(METRICS)}")
    out: list[Verdict] = []
    for variant in sorted(baseline.keys() | current.keys()):
        b, c = baseline.get(variant), current.get(variant)
        problems = [p for p in (_not_ok(b, "baseline"), _not_ok(c, "current")) if p]
        if problems or b is None or c is None:
            out.append(Verdict(variant, ALL_METRICS, MISSING, note="; ".join(problems)))
            continue
        out += [v for m in names if (v := compare_metric(variant, m, b, c, th))]
    order = [REGRESSION, MISSING, IMPROVEMENT, NOISE, REPORTED]
    return sorted(out, key=lambda v: order.index(v.verdict))  # stable: variant, then metric order within


def compare_dirs(
    baseline: Path, current: Path, thresholds: ThresholdsBase | None = None, metrics: Sequence[str] | None = None
) -> list[Verdict]:
    return compare_results(*load_pair(baseline, current), thresholds, metrics)


def exit_code(verdicts: Sequence[Verdict], fail_on_missing: bool = False) -> int:
    kinds = {v.verdict for v in verdicts}
    return int(REGRESSION in kinds or (fail_on_missing and MISSING in kinds))
