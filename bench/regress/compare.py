"""Regression verdicts between two results folders: `python -m bench compare BASELINE CURRENT`."""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError

from bench.analyze.tables import identical_share_by_start, load_requests, load_runs, summary_table
from bench.core.errors import CompareError, ConfigError
from bench.core.folder import ResultsFolder
from bench.core.metric_registry import COMPARED, MetricSpec
from bench.core.records import OK, RUN_FILE, RunResult, Trial
from bench.regress import differences
from bench.regress.stats import NoiseSplit, hierarchical_ratio_interval, noise_split, paired_question_diff

REGRESSION, MISSING, IMPROVEMENT, NOISE = "regression", "missing", "improvement", "within noise"
UNREADABLE = "unreadable"  # a Side whose run.json could not be parsed
ALL_METRICS = "all"  # the metric of a verdict about a whole variant (absent, or not ok, on one side)
# A median of fewer values has almost nothing to resample: below this the threshold decides alone.
MIN_TRIALS = 3
BASELINE_VARIANT = "single"  # what the identical share is against (summary_table's default baseline)
ONE_START = "one start a side: the interval does not cover restarts"


METRICS: dict[str, MetricSpec] = COMPARED  # the registry's metrics that have a default threshold


# The registry's thresholds: used where the noise cannot be measured (a baseline with one server start,
# a metric with one value per run) or given as a fixed floor (F1).
FIXED_THRESHOLDS: dict[str, float] = {m.name: float(m.threshold or 0.0) for m in METRICS.values()}
# Thresholds that default to None, i.e. derived from the baseline (derived_threshold): the metrics with
# one figure per pass, whose noise between and within starts can be measured, and the identical share,
# whose movement between the baseline's own starts is measured.
DERIVED = tuple(m.name for m in METRICS.values() if m.per_trial or m.name in ("wall_clock_s", "identical_to_baseline"))


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
class Side:
    """One variant in one results folder."""

    status: str
    reason: str | None = None
    values: dict[str, float] = field(default_factory=dict)  # run-level figures (load_runs' row)
    # One figure per pass, grouped by server start (old results: one start), where recorded.
    trials: dict[str, list[list[float]]] = field(default_factory=dict)
    # What the figures depend on besides our code, as dotted field -> value (bench.regress.differences.recorded).
    context: dict[str, Any] = field(default_factory=dict)
    lossless: bool = False  # declared to give the baseline's answers (server.lossless): identical share compared
    scores: dict[str, list[float]] = field(default_factory=dict)  # question id -> F1 of every answer to it

    def value(self, metric: str) -> float | None:
        """The mean over starts of each start's mean over passes, the figure the interval is about."""
        groups = [g for g in self.trials.get(metric, []) if g]
        return float(np.mean([np.mean(g) for g in groups])) if groups else self.values.get(metric)

    @property
    def starts(self) -> int:
        return max((len(g) for g in self.trials.values()), default=0)


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
    """Defaults, overridden by a YAML file of `metric: threshold` lines; unknown keys are refused."""
    if path is None:
        return Thresholds()
    if not Path(path).is_file():
        raise ConfigError(f"no thresholds file at {path}")
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
    negative = [m for m in METRICS if (getattr(th, m) or 0) < 0]
    if negative or min(th.noise_multiple, th.min_threshold) < 0 or not 0 < th.confidence < 1 or th.resamples < 1:
        raise ConfigError(f"{path}: thresholds must be >= 0, 0 < confidence < 1 and resamples >= 1")
    return th


def _context(run: RunResult) -> dict[str, Any]:
    return differences.recorded(run)


def context_changes(baseline: dict[str, Side], current: dict[str, Side]) -> list[str]:
    """What differs besides the code under test, field by field (another machine, vLLM, server argument): it
    explains a verdict. The config hash only where no recorded field explains it."""
    seen: dict[tuple[str, str, str], list[str]] = {}
    for variant in sorted(baseline.keys() & current.keys()):
        for key, b, c in differences.field_changes(baseline[variant].context, current[variant].context):
            seen.setdefault((key, differences.compact(b), differences.compact(c)), []).append(variant)
    return [
        f"{key}: {b} -> {c} ({', '.join(vs)})" + (f": {differences.UNRECORDED}" if key == differences.HASH else "")
        for (key, b, c), vs in sorted(seen.items())
    ]


def _number(v: object) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and not math.isnan(v)


def _grouped(trials: list[Trial], metric: str) -> list[list[float]]:
    """A metric's per-pass figures grouped by server start, in start order (old results: start 0 only)."""
    by_start: dict[int, list[float]] = {}
    for t in trials:
        v = t.figure(metric)
        if _number(v):
            by_start.setdefault(t.start, []).append(float(v))
    return [by_start[k] for k in sorted(by_start)]


def _scores(requests: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Question id -> F1 of each successful answer to it, over every pass and start."""
    out: dict[str, list[float]] = {}
    for r in requests:
        f1 = r.get("f1")
        if r.get("error") is None and r.get("question_id") is not None and _number(f1):
            out.setdefault(str(r["question_id"]), []).append(float(f1))
    return out


def load_results(sweep_dir: Path) -> dict[str, Side]:
    """Variant (folder name) -> Side, for every <variant>/run.json in a sweep's folder."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise CompareError(f"no results folder at {sweep_dir}")
    folder = ResultsFolder(sweep_dir)
    dirs = folder.run_dirs
    if not dirs:
        hint = ": that is one variant's folder, pass its parent" if (sweep_dir / RUN_FILE).exists() else ""
        raise CompareError(f"no <variant>/{RUN_FILE} in {sweep_dir}{hint} (expected a sweep's folder: results/nightly)")
    rows = {Path(r["run_dir"]).name: r for r in load_runs(folder).to_dict("records")}
    # Figures that need the whole folder: identical answers against its baseline, goodput's identical SLO.
    requests = load_requests(folder)
    derived = summary_table(folder, BASELINE_VARIANT, requests).set_index("variant")
    identical_by_start = identical_share_by_start(requests, BASELINE_VARIANT)
    for row in rows.values():
        if row.get("variant") in derived.index:
            extra = derived.loc[row["variant"]]
            row |= {m: extra[m] for m in ("identical_to_baseline", "goodput_req_per_s", "slo_met_share") if m in extra}
    out: dict[str, Side] = {}
    for d in dirs:
        run, row = folder.run(d.name), rows.get(d.name)
        if run is None or row is None:
            out[d.name] = Side(UNREADABLE, f"{d / RUN_FILE} could not be parsed")
            continue
        lossless = bool(run.server.config.get("lossless"))
        levels = sorted({t.level for t in run.trials if t.phase == "fixed"})
        values = {m: float(row[m]) for m in METRICS if _number(row.get(m))}
        scores = _scores(folder.requests(d.name))
        if len(levels) < 2:
            per_trial = _per_trial(run.trials)
            if lossless and len(identical_by_start.get(d.name, [])) >= 2:  # one figure per start
                per_trial["identical_to_baseline"] = [[x] for x in identical_by_start[d.name]]
            out[d.name] = Side(run.status, run.reason, values, per_trial, _context(run), lossless, scores)
            continue
        # Several load levels are points of a curve, not repeats: each level is its own row, bootstrapped over
        # its own starts and passes (variant@level); the variant's row keeps its run-level figures, threshold only.
        out[d.name] = Side(run.status, run.reason, values, {}, _context(run), lossless, scores)
        for level in levels:
            trials = [t for t in run.trials if t.level == level and t.phase == "fixed"]
            out[f"{d.name}@{level:g}"] = Side(run.status, run.reason, {}, _per_trial(trials), _context(run), lossless)
    return out


def _per_trial(trials: list[Trial]) -> dict[str, list[list[float]]]:
    """Metric -> its figures grouped by server start, for the metrics the trials carry."""
    values = {m: _grouped(trials, m) for m in METRICS}
    return {m: v for m, v in values.items() if v}


def derived_threshold(name: str, base: Side, passes: int, th: ThresholdsBase) -> tuple[float, str]:
    """A metric's threshold and where it came from: given by the user, or by the rule of docs/regression.md.

    Timings, with two or more baseline starts: `noise_multiple` x the noise of one start's figure over
    `passes` passes (its between-start and within-start parts), never below `min_threshold`. A change
    smaller than what one night's figure wobbles by is not worth a red nightly however credible, and it
    leaves room for night-to-night drift, which no interval over one night's starts can see. F1: more
    than one question's worth (1 / questions), never below the fixed 0.02. Otherwise the fixed defaults."""
    given = getattr(th, name)
    if given is not None:
        return float(given), "given"
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
    bt, ct = base.trials.get(name, []), cur.trials.get(name, [])
    threshold, source = derived_threshold(name, base, min((len(g) for g in ct), default=1), th)
    if bv is None or cv is None:
        side = "baseline" if bv is None else "current"
        return Verdict(variant, name, MISSING, bv, cv, threshold=threshold, note=f"not measured in the {side} run")
    if bv == 0 and not metric.absolute:
        return Verdict(variant, name, MISSING, bv, cv, threshold=threshold, note="baseline is 0: no relative change")
    change_pct = (cv - bv) / abs(bv) * 100 if bv else None
    change = cv - bv if metric.absolute else (cv - bv) / abs(bv)
    ci, noise, notes = None, None, [] if source == "given" else [f"threshold {source}"]
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
        basis = f"threshold only (n<{MIN_TRIALS})"
    verdict = classify(change, threshold, bool(metric.higher_is_better), ci)
    if verdict == NOISE and classify(change, threshold, bool(metric.higher_is_better)) != NOISE:
        notes.insert(0, "beyond the threshold, but the interval includes no change")
    return Verdict(variant, name, verdict, bv, cv, change_pct, threshold, ci, basis, "; ".join(notes), noise)


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
    order = [REGRESSION, MISSING, IMPROVEMENT, NOISE]
    return sorted(out, key=lambda v: order.index(v.verdict))  # stable: variant, then metric order within


def load_pair(baseline: Path, current: Path) -> tuple[dict[str, Side], dict[str, Side]]:
    """Two sweep folders; or two variant folders (an A/B of one sweep: results/upgrade/single and
    results/upgrade/single_next), then compared with each other as one row set named `A -> B`."""
    baseline, current = Path(baseline), Path(current)
    if (baseline / RUN_FILE).is_file() and (current / RUN_FILE).is_file():
        name = baseline.name if baseline.name == current.name else f"{baseline.name} -> {current.name}"
        b, c = load_results(baseline.parent)[baseline.name], load_results(current.parent)[current.name]
        return {name: b}, {name: c}
    return load_results(baseline), load_results(current)


def compare_dirs(
    baseline: Path, current: Path, thresholds: ThresholdsBase | None = None, metrics: Sequence[str] | None = None
) -> list[Verdict]:
    return compare_results(*load_pair(baseline, current), thresholds, metrics)


def exit_code(verdicts: Sequence[Verdict], fail_on_missing: bool = False) -> int:
    kinds = {v.verdict for v in verdicts}
    return int(REGRESSION in kinds or (fail_on_missing and MISSING in kinds))


def summary_line(verdicts: Sequence[Verdict]) -> str:
    n = Counter(v.verdict for v in verdicts)
    labels = {REGRESSION: "regressions", MISSING: "missing", IMPROVEMENT: "improvements", NOISE: "within noise"}
    return ", ".join(f"{n[k]} {label}" for k, label in labels.items())


HEADERS = ("variant", "metric", "baseline", "current", "change", "threshold", "verdict", "noise b/w", "basis")


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _cells(v: Verdict) -> list[str]:
    absolute = v.metric in METRICS and METRICS[v.metric].absolute
    change = f"{v.change_pct:+.1f}%" if v.change_pct is not None else "-"
    if absolute and v.baseline is not None and v.current is not None:
        change = f"{v.current - v.baseline:+.3f} ({change})"
    threshold = "-" if v.threshold is None else f"{v.threshold:g} abs" if absolute else f"{v.threshold * 100:g}%"
    basis = v.basis
    if v.ci is not None and absolute:
        basis += f" [{v.ci[0]:+.3f}, {v.ci[1]:+.3f}]"
    elif v.ci is not None and v.baseline:
        basis += f" [{v.ci[0] / v.baseline:+.0%}, {v.ci[1] / v.baseline:+.0%}]"
    basis = "; ".join(s for s in (basis, v.note) if s)
    figures = [_fmt(v.baseline), _fmt(v.current), change, threshold]
    return [v.variant, v.metric, *figures, v.verdict, _noise(v.noise), basis]


def _noise(n: NoiseSplit | None) -> str:
    """Between-start / within-start coefficients of variation; '-' where a level has one member."""
    if n is None:
        return "-"
    pct = [f"{x:.1%}" if x is not None else "-" for x in (n.between_cv, n.within_cv)]
    return "/".join(pct)


def format_table(verdicts: Sequence[Verdict], context: Sequence[str] = ()) -> str:
    """The terminal table; regressions and missing rows in capitals, since they are what needs a look."""
    rows = [list(HEADERS)]
    for v in verdicts:
        cells = _cells(v)
        cells[6] = cells[6].upper() if v.verdict in (REGRESSION, MISSING) else cells[6]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    out = [lines[0], "  ".join("-" * w for w in widths), *lines[1:]]
    return "\n".join(out + (["", "differs between the two sides:", *(f"  {c}" for c in context)] if context else []))


def format_markdown(verdicts: Sequence[Verdict], baseline: Path, current: Path, context: Sequence[str] = ()) -> str:
    """A CI job summary: headline counts, then the table."""
    lines = [
        "## bench compare",
        "",
        f"Baseline `{baseline}`, current `{current}`: **{summary_line(verdicts)}**.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    for v in verdicts:
        cells = [c.replace("|", "\\|") for c in _cells(v)]
        cells[6] = f"**{cells[6]}**" if v.verdict in (REGRESSION, MISSING) else cells[6]
        lines.append("| " + " | ".join(cells) + " |")
    if context:
        lines += ["", "Differs between the two sides (may explain a verdict):", "", *(f"- `{c}`" for c in context)]
    return "\n".join(lines) + "\n"


def report(
    baseline_dir: Path, current_dir: Path, thresholds: ThresholdsBase, metrics: Sequence[str] | None = None,
    markdown_path: Path | None = None, fail_on_missing: bool = False,
) -> int:  # fmt: skip
    """`bench compare`: the table on stdout, Markdown where asked (and GitHub's job summary); the exit status."""
    baseline, current = load_pair(baseline_dir, current_dir)
    verdicts, context = compare_results(baseline, current, thresholds, metrics), context_changes(baseline, current)
    if any(ONE_START in v.note for v in verdicts):
        context = [*context, "starts: one server start a side, so the intervals cover pass-to-pass noise only,"
                   " not restarts: run with repeats.starts=3 or more (docs/regression.md)"]  # fmt: skip
    print(format_table(verdicts, context))
    markdown = format_markdown(verdicts, baseline_dir, current_dir, context)
    if markdown_path:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(markdown, encoding="utf-8")
    if os.environ.get("GITHUB_STEP_SUMMARY"):  # set by GitHub Actions: the job's summary page
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as f:
            f.write(markdown)
    print(f"bench: compare: {summary_line(verdicts)}", file=sys.stderr)
    unreadable = [side.reason or "" for side in (*baseline.values(), *current.values()) if side.status == UNREADABLE]
    if unreadable:  # a corrupt side is bad input, never a quiet MISSING row that exits 0
        raise CompareError("; ".join(unreadable))
    return exit_code(verdicts, fail_on_missing)
