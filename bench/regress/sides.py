"""A results folder as compare sees it: one Side per variant (and per load level of a multi-level run)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from bench.analyze.tables import identical_share_by_start, load_requests, load_runs, summary_table
from bench.core import startup
from bench.core.errors import CompareError
from bench.core.folder import ResultsFolder
from bench.core.metric_registry import COMPARED
from bench.core.records import RUN_FILE, RunResult, Trial
from bench.regress import differences

METRICS = COMPARED


UNREADABLE = "unreadable"  # a Side whose run.json could not be parsed


BASELINE_VARIANT = "single"  # what the identical share is against where no run says (runs before RunSpec)


ONE_START = "one start a side: the interval does not cover restarts"


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


def baseline_of(folder: ResultsFolder) -> str:
    """The sweep's baseline variant as its runs recorded it (config baseline_variant), `single` for older runs."""
    named = [run.spec.baseline_variant for _, run in folder.runs() if run.spec is not None]
    return max(set(named), key=named.count) if named else BASELINE_VARIANT


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
    baseline = baseline_of(folder)
    derived = summary_table(folder, baseline, requests).set_index("variant")
    identical_by_start = identical_share_by_start(requests, baseline)
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
        lossless = run.spec is not None and run.spec.server.lossless
        levels = sorted({t.level for t in run.trials if t.phase == "fixed"})
        values = {m: float(row[m]) for m in METRICS if _number(row.get(m))}
        scores = _scores(folder.requests(d.name))
        if len(levels) < 2:
            per_trial = _per_trial(run.trials) | {m: [[x] for x in v] for m, v in startup.by_cache(run.starts).items()}
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


def load_pair(baseline: Path, current: Path) -> tuple[dict[str, Side], dict[str, Side]]:
    """Two sweep folders; or two variant folders (an A/B of one sweep: results/upgrade/single and
    results/upgrade/single_next), then compared with each other as one row set named `A -> B`."""
    baseline, current = Path(baseline), Path(current)
    if (baseline / RUN_FILE).is_file() and (current / RUN_FILE).is_file():
        name = baseline.name if baseline.name == current.name else f"{baseline.name} -> {current.name}"
        b, c = load_results(baseline.parent)[baseline.name], load_results(current.parent)[current.name]
        return {name: b}, {name: c}
    return load_results(baseline), load_results(current)
