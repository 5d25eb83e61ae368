"""Nightly history: each run's figures kept in a store, trends drawn, change points found and named."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shlex
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ruptures
from scipy import stats

from bench.core import startup
from bench.core.errors import BenchError
from bench.core.files import make_dir, no_link
from bench.core.folder import ResultsFolder
from bench.core.metric_registry import METRICS, TRIAL_METRICS
from bench.core.records import OK, RunResult
from bench.regress import differences
from bench.regress.stats import hierarchical_interval, hierarchical_ratio_interval

# The store is a folder of parquet files, one per added results folder, named by the run's time and a
# key of its content (store/runs/<time>-<key>.parquet). Why files and not one database:
# - adding the same run twice finds its file already there (a no-op), and two machines adding different
#   runs write different files, so nothing has to be locked, merged or rewritten;
# - each file appears whole (written aside, then hard-linked into place), so a reader never sees half a run;
# - the store travels as plain files: a git branch (one new file per night, never a conflict), an
#   artifact, a shared disk; a SQLite file in git conflicts on every push from two machines.
STORE_SCHEMA = 1
RUNS = "runs"
DEFAULT_STORE = Path("results/history")
REPORT_DIR = "report"

# Provenance compared between consecutive runs of a series: a change is a labelled mark on the chart
# and named at a change point. Column -> how a reader sees it.
PROVENANCE = {
    "commit": "commit",
    "vllm_version": "vLLM",
    "torch_version": "torch",
    "python": "Python",
    "engine": "engine",
    "model": "model",
    "gpu_driver": "GPU driver",
    "cpu_flags": "CPU capabilities",  # within one hardware string: the kernel library vLLM loads, say
    "config_hash": "config hash",
    "settings": "settings",  # the run's RunSpec, field by field (stores of older bench: absent, so unknown)
}
# What a series never crosses: a trend line is one machine on one kind of hardware.
SERIES = ["machine", "hardware", "variant", "metric", "level"]

# Change points. Pelt proposes them on the series scaled by its night-to-night noise (median absolute
# difference of consecutive nights: a step moves one difference, so it barely inflates the scale); a
# proposal is kept only where the nights on its two sides differ by Welch's test at ALPHA. On generated
# normal noise, 2-7 % of series of 7-30 nights get a false change (benchmarks/history_detection.py).
PENALTY = 3.0  # x log(nights): the MBIC-like penalty per change point
MIN_SEGMENT = 3  # nights: one odd night cannot make a change of its own
ALPHA = 0.01
MIN_NIGHTS = 2 * MIN_SEGMENT  # fewer nights than this in a series: no detection, and the report says so


Interval = Callable[[Sequence[Sequence[float]]], "tuple[float, float, float]"]


def night_interval(values_by_start: Sequence[Sequence[float]]) -> tuple[float, float, float]:
    """(point, low, high) of one run's metric: the two-level bootstrap over its server starts and passes."""
    i = hierarchical_interval(values_by_start)
    return i.point, i.lo, i.hi


@dataclass(frozen=True)
class ChangePoint:
    machine: str
    hardware: str
    variant: str
    metric: str
    level: float
    index: int  # position of the first bad run in the series
    last_good: str  # run time of the last run before the change
    first_bad: str
    before: float  # mean of the nights in the segment before / after
    after: float
    step: float  # after / before - 1
    step_low: float
    step_high: float
    p_value: float
    worse: bool | None  # None: the metric has no better direction
    changes: list[str] = field(default_factory=list)  # provenance differences between last good and first bad
    good_dir: str = ""  # the results folders of those two runs, as `history add` was given them
    bad_dir: str = ""


# ---- reading runs ---------------------------------------------------------------------------------


def _hardware(prov: dict[str, Any]) -> str:
    """The hardware a figure was measured on: the GPUs by name, else the CPU model with its ISA level."""
    gpus = prov.get("gpus") or []
    if gpus:
        names = pd.Series([str(g.get("name", "?")) for g in gpus]).value_counts()
        return ", ".join(f"{n} x {name}" for name, n in names.items())
    caps = prov.get("cpu_caps") or {}
    isa = [k for k in ("amx", "avx512_bf16", "avx512", "avx2") if caps.get(k)][:1]
    cores = prov.get("cpu_count")
    cpu = str(prov.get("cpu") or "unknown CPU") + (f" ({isa[0]})" if isa else "")
    return cpu + (f", {cores} cores" if cores else "")


def _provenance_row(run: RunResult, machine: str | None) -> dict[str, Any]:
    prov = run.provenance.to_dict()
    drivers = sorted({str(g.get("driver")) for g in prov.get("gpus") or [] if g.get("driver")})
    server = run.server.to_dict()
    return {
        "machine": machine or prov.get("host") or "unknown",
        "hardware": _hardware(prov),
        "commit": prov.get("git_commit"),
        "vllm_version": prov.get("vllm_version"),
        "torch_version": prov.get("torch_version"),
        "python": prov.get("python"),
        "engine": server.get("engine") or prov.get("engine"),
        "model": (run.spec.server.model if run.spec is not None else None) or prov.get("model"),
        "gpu_driver": ", ".join(drivers) or None,
        "cpu_flags": json.dumps(prov.get("cpu_caps"), sort_keys=True) if prov.get("cpu_caps") else None,
        "config_hash": run.config_hash,
        "settings": json.dumps(differences.settings(run), sort_keys=True, default=str) if run.spec else None,
        "started_at": run.started_at or prov.get("time"),
    }


def run_key(runs: Sequence[RunResult]) -> str:
    """What identifies a results folder however often it is added: its runs' variants, configs and times."""
    ident = sorted((r.variant, r.config_hash, r.started_at, r.finished_at, str(r.provenance.host)) for r in runs)
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]


def _trials_by_level(run: RunResult) -> dict[float, pd.DataFrame]:
    trials = pd.DataFrame([t.to_dict() for t in run.trials])
    if trials.empty:
        return {}
    level = pd.to_numeric(trials["level"], errors="coerce").fillna(1.0) if "level" in trials else 1.0
    trials = trials.assign(level=level, start=trials["start"] if "start" in trials else 0)
    return {float(lv): g for lv, g in trials.groupby("level")}


def run_points(results_dir: Path, machine: str | None = None, interval: Interval = night_interval) -> pd.DataFrame:
    """One row per variant x metric x load level of a results folder: point, interval, counts, provenance."""
    folder = ResultsFolder(results_dir)
    if folder.unreadable:  # a store is forever: a night is added whole or not at all
        raise BenchError(f"not added: {'; '.join(folder.problems())} in {results_dir}")
    runs = [run for _, run in folder.runs()]
    if not runs:
        raise BenchError(f"no runs in {results_dir} (no <variant>/run.json); give the folder `bench run` wrote")
    key = run_key(runs)
    run_time = min(str(r.started_at or r.provenance.time or "") for r in runs)
    rows = []
    for run in runs:
        base: dict[str, Any] = {"run_key": key, "run_time": run_time, "results_dir": str(results_dir)}
        base |= {"variant": run.variant, "status": run.status, "n_requests": run.n_requests, "n_failed": run.n_failed}
        base |= _provenance_row(run, machine)
        by_level = _trials_by_level(run) if run.status == OK else {}
        for metric in (m for m in TRIAL_METRICS if not METRICS[m].from_server):  # see MetricSpec.from_server
            for level, trials in by_level.items() or [(1.0, pd.DataFrame())]:
                col = pd.to_numeric(trials[metric], errors="coerce") if metric in trials else pd.Series(dtype=float)
                starts = [g.dropna().tolist() for _, g in col.groupby(trials["start"])] if len(col) else []
                starts = [s for s in starts if s]
                if by_level and not starts:
                    continue  # a metric this run did not measure (older bench): no row, rather than a gap
                point, low, high = interval(starts) if starts else (math.nan, math.nan, math.nan)
                counts = {"n_starts": len(starts), "n_passes": sum(len(s) for s in starts)}
                figures = {"metric": metric, "level": level, "value": point, "low": low, "high": high}
                rows.append(base | figures | counts)
        # Start-up: one figure per start, cold and warm apart; only where the run recorded the cache's state.
        for metric, values in (startup.by_cache(run.starts) if run.status == OK else {}).items():
            point, low, high = interval([[v] for v in values])
            figures = {"metric": metric, "level": 1.0, "value": point, "low": low, "high": high}
            rows.append(base | figures | {"n_starts": len(values), "n_passes": len(values)})
    return pd.DataFrame(rows).assign(store_schema=STORE_SCHEMA)


# ---- the store ------------------------------------------------------------------------------------


def _file_name(points: pd.DataFrame) -> str:
    stamp = re.sub(r"[^0-9T]", "", str(points["run_time"].iloc[0]))[:15] or "notime"
    return f"{stamp}-{points['run_key'].iloc[0]}.parquet"


def add(results_dir: Path, store: Path, machine: str | None = None, interval: Interval = night_interval) -> Path | None:
    """Adds a results folder to the store; returns its file, or None when that run is already there."""
    points = run_points(results_dir, machine, interval)
    folder = make_dir(no_link(Path(store)) / RUNS)
    path = no_link(folder / _file_name(points))
    if path.exists():
        return None
    # Written aside (a dot-name the readers skip), then linked into place: link fails if a concurrent add of
    # the same run won, so exactly one file stands and no reader ever sees a half-written one.
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            points.to_parquet(f, index=False)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.link(tmp, path)
    except FileExistsError:
        return None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _read_points(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a file that is not parquet
        raise BenchError(
            f"{path}: not a history file bench wrote ({type(e).__name__}); move it out of the store"
        ) from None
    missing = {"run_time", "variant", "metric", "level"} - set(df.columns)
    if missing:
        raise BenchError(f"{path}: not a history file bench wrote (no {', '.join(sorted(missing))} column)")
    try:  # checked here, per file, so a wrong-typed column is named with its file instead of crashing the report
        pd.to_datetime(df["run_time"], utc=True, format="ISO8601")
        for col in ("value", "level"):
            if col in df:
                pd.to_numeric(df[col]).astype(float)
    except (ValueError, TypeError, OverflowError) as e:
        raise BenchError(f"{path}: not a history file bench wrote (a wrong-typed column: {e}); move it out") from None
    return df


def load(store: Path) -> pd.DataFrame:
    """Every stored point, oldest run first; files of another store schema keep the columns both know."""
    files = sorted((Path(store) / RUNS).glob("[!.]*.parquet"))
    if not files:
        raise BenchError(f"no history at {store} (no {RUNS}/*.parquet); add runs with: bench history add RESULTS_DIR")
    df = pd.concat([_read_points(f) for f in files], ignore_index=True)
    df["run_time"] = pd.to_datetime(df["run_time"], utc=True, format="ISO8601")
    return df.sort_values(["run_time", "variant", "metric", "level"], ignore_index=True)


# ---- change points --------------------------------------------------------------------------------


def noise_scale(values: np.ndarray) -> float:
    """Night-to-night noise, robust to steps: the MAD of consecutive differences, as a normal sigma."""
    d = np.diff(values)
    scale = float(np.median(np.abs(d - np.median(d)))) / 0.6745 / math.sqrt(2) if d.size else 0.0
    return scale if scale > 0 else float(np.std(values)) or 1.0


def change_indices(values: Sequence[float], penalty: float = PENALTY, alpha: float = ALPHA) -> list[int]:
    """Indices where a new level starts in a series of nightly values (pure; ruptures' Pelt + Welch's test)."""
    x = np.asarray(values, dtype=float)
    n = x.size
    if n < MIN_NIGHTS:
        return []
    z = (x - np.median(x)) / noise_scale(x)
    ends = ruptures.Pelt(model="l2", min_size=MIN_SEGMENT, jump=1).fit(z).predict(pen=penalty * math.log(n))
    edges = [0, *ends]
    kept = []
    for i in range(1, len(edges) - 1):
        before, after = x[edges[i - 1] : edges[i]], x[edges[i] : edges[i + 1]]
        if stats.ttest_ind(before, after, equal_var=False).pvalue < alpha:
            kept.append(edges[i])
    return kept


def step_interval(before: Sequence[float], after: Sequence[float]) -> tuple[float, float, float]:
    """after/before - 1 of the two segments' means with its 95 % interval; the nights are the resampled units
    (a night's figure already averages its passes, and night-to-night is the noise a history sees)."""
    try:
        i = hierarchical_ratio_interval([[v] for v in before], [[v] for v in after])
    except ValueError:  # a ratio of a zero mean (an F1 of 0): the step has no relative size
        return math.nan, math.nan, math.nan
    return i.point - 1, i.lo - 1, i.hi - 1


def provenance_changes(old: pd.Series, new: pd.Series) -> list[str]:
    """'vLLM 0.32.0 -> 0.33.0', 'config hash changed': what differs between two runs' provenance."""
    out, named = [], False
    for col, name in PROVENANCE.items():
        a, b = old.get(col), new.get(col)
        if pd.isna(a) and pd.isna(b) or a == b:
            continue
        if col == "settings":  # which fields of the spec changed, each named; unknown on an older row
            if not (pd.isna(a) or pd.isna(b)):
                found = differences.changes(json.loads(a), json.loads(b))
                out += [f"{k}: {differences.compact(x)} -> {differences.compact(y)}" for k, x, y in found]
                named = bool(found)
            continue
        if col in ("commit", "config_hash"):
            out.append(f"{name} {str(a)[:8]} -> {str(b)[:8]}")
        elif col == "cpu_flags":
            out.append(f"{name} changed")
        else:
            out.append(f"{name} {a} -> {b}")
    if named:  # the fields explain the new hash
        out = [line for line in out if not line.startswith(f"{PROVENANCE['config_hash']} ")]
    return out


def series(df: pd.DataFrame) -> list[tuple[tuple[Any, ...], pd.DataFrame]]:
    """The store split into trend lines: one machine, hardware, variant, metric and load level each."""
    ok = df[(df["status"] == OK) & df["value"].notna()]
    return [(tuple(k), g.sort_values("run_time")) for k, g in ok.groupby(SERIES, sort=True)]


def find_changes(df: pd.DataFrame) -> list[ChangePoint]:
    """Every change point of every series, with its step and what changed in the provenance at that run."""
    out = []
    for (machine, hardware, variant, metric, level), s in series(df):
        values = s["value"].to_numpy(dtype=float)
        idx = change_indices(values)
        edges = [0, *idx, len(values)]
        spec = METRICS.get(metric)
        for j, i in enumerate(idx):
            before, after = values[edges[j] : i], values[i : edges[j + 2]]
            step, low, high = step_interval(before, after)
            p = float(stats.ttest_ind(before, after, equal_var=False).pvalue)
            up = spec.higher_is_better if spec else None
            worse = None if up is None else bool((after.mean() < before.mean()) == up)
            last, first = s.iloc[i - 1], s.iloc[i]
            out.append(
                ChangePoint(
                    machine, hardware, variant, metric, level, i,
                    last_good=last["run_time"].isoformat(), first_bad=first["run_time"].isoformat(),
                    before=float(before.mean()), after=float(after.mean()), step=step, step_low=low, step_high=high,
                    p_value=p, worse=worse, changes=provenance_changes(last, first),
                    good_dir=str(last.get("results_dir", "")), bad_dir=str(first.get("results_dir", "")),
                )
            )  # fmt: skip
    return out


def exit_status(changes: Sequence[ChangePoint]) -> int:
    """1 when some series' newest run sits after a change for the worse (its last change is worse), else 0."""
    last: dict[tuple[Any, ...], ChangePoint] = {}
    for c in changes:
        key = (c.machine, c.hardware, c.variant, c.metric, c.level)
        if key not in last or c.index > last[key].index:
            last[key] = c
    return 1 if any(c.worse for c in last.values()) else 0


def provenance_marks(s: pd.DataFrame) -> list[tuple[pd.Timestamp, str]]:
    """(run time, what changed) at each run of a series whose provenance differs from the run before."""
    rows = [r for _, r in s.iterrows()]
    marks = []
    for old, new in zip(rows, rows[1:], strict=False):
        diff = provenance_changes(old, new)
        if diff:
            marks.append((new["run_time"], "; ".join(diff)))
    return marks


def bisect_commands(changes: Sequence[ChangePoint]) -> list[str]:
    """`python -m bench bisect GOOD BAD --variant V` for each change for the worse: which change caused it."""
    keys = dict.fromkeys((c.good_dir, c.bad_dir, c.variant) for c in changes if c.worse and c.good_dir and c.bad_dir)
    return [f"python -m bench bisect {shlex.quote(g)} {shlex.quote(b)} --variant {shlex.quote(v)}" for g, b, v in keys]


def changes_table(changes: Sequence[ChangePoint]) -> pd.DataFrame:
    rows = []
    for c in changes:
        spec = METRICS.get(c.metric)
        fmt = spec.format if spec else (lambda v: f"{v:.3g}")
        rows.append(
            {
                "machine": c.machine,
                "variant": c.variant,
                "metric": spec.label if spec else c.metric,
                "last good run": c.last_good,
                "first bad run": c.first_bad,
                "before -> after": f"{fmt(c.before)} -> {fmt(c.after)}",
                "step": f"{c.step:+.1%} [{c.step_low:+.1%}, {c.step_high:+.1%}]",
                "p": f"{c.p_value:.1g}",
                "verdict": {True: "worse", False: "better", None: "changed"}[c.worse],
                "what changed": "; ".join(c.changes) or "nothing recorded",
            }
        )
    return pd.DataFrame(rows)
