"""Results folder -> tidy DataFrames and the sweep summary. Pure functions; charts and text live in bench/report/."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from bench.core import slo, startup
from bench.core.files import atomic_write_text
from bench.core.folder import ResultsFolder, as_folder
from bench.core.metric_registry import MARKDOWN, SUMMARY, MetricSpec, in_view
from bench.core.records import OK, SUMMARY_FILE, TELEMETRY_FILE
from bench.core.secrets import redact_url

SUMMARY_COLUMNS = ["variant", "status", "reason", *(m.name for m in in_view(SUMMARY))]
# Columns older folders never had: summary.csv has them only where some run measured them (their files unchanged).
FROM_SERVER = {m.name for m in in_view(SUMMARY) if m.from_server or m.per_start}


def load_runs(folder: ResultsFolder | Path) -> pd.DataFrame:
    """One row per variant: run.json flattened (stats, server metrics; busiest device's utilization, memory summed)."""
    rows = []
    for d, run in as_folder(folder).runs():
        row = {k: v for k, v in dataclasses.asdict(run).items() if not isinstance(v, (dict, list))}
        row |= run.stats
        row |= {k: v for k, v in run.server_metrics.items() if not isinstance(v, (dict, list))}
        row |= startup.means(run.starts)
        # The device that did the work: a GPU's figure, or the vLLM process tree's on the CPU engine.
        devices = [t for t in run.telemetry if t["device"].startswith("gpu")] or [
            t for t in run.telemetry if t["device"] == "server"
        ]
        if devices:
            row["util_mean_pct"] = max(t.get("util_mean_pct") or 0.0 for t in devices)
            row["mem_peak_mib"] = sum(t.get("mem_peak_mib") or 0.0 for t in devices)  # summed over GPUs
            row["telemetry_source"] = devices[0].get("source")
        row["run_dir"] = str(d)
        rows.append(row)
    return pd.DataFrame(rows)


def load_requests(folder: ResultsFolder | Path) -> pd.DataFrame:
    """One row per request of every variant, with a `variant` column."""
    folder, frames = as_folder(folder), []
    for d in folder.run_dirs:
        records = folder.requests(d.name)
        if records:
            frames.append(pd.DataFrame(records).assign(variant=d.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_telemetry(folder: ResultsFolder | Path) -> pd.DataFrame:
    frames = []
    for d in as_folder(folder).run_dirs:
        path = d / TELEMETRY_FILE
        if path.exists() and path.stat().st_size:
            frames.append(pd.read_csv(path).assign(variant=d.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_trials(folder: ResultsFolder | Path) -> pd.DataFrame:
    """One row per variant, load level and pass: the figures behind throughput-vs-load curves."""
    rows = []
    for _, run in as_folder(folder).runs():
        rows += [{"variant": run.variant, "status": run.status, **t.to_dict()} for t in run.trials]
    return pd.DataFrame(rows)


def _identical(requests: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per answered request judged against the baseline: variant, start, and whether its answer is the baseline's
    answer to the same question at the same load level (slo.baseline_answers says why by level)."""
    answers = _baseline_answers(requests, baseline)
    if answers is None:
        return pd.DataFrame(columns=["variant", "start", "same"])
    ok = requests[requests["error"].isna()]
    levels = ok["level"] if "level" in ok else pd.Series(1.0, index=ok.index)
    starts = ok["start"].fillna(0) if "start" in ok else pd.Series(0, index=ok.index)
    base = [slo.baseline_answer(answers, q, lv) for q, lv in zip(ok["question_id"], levels, strict=True)]
    same = [b is not None and a == b for a, b in zip(ok["answer"], base, strict=True)]
    rows = pd.DataFrame({"variant": ok["variant"], "start": starts.astype(int), "same": same})
    return rows[[b is not None for b in base]]


def identical_share(requests: pd.DataFrame, baseline: str) -> pd.Series:
    """Per variant, the share of its answers identical to the baseline's at the same question and load level;
    the baseline's own row is its self-agreement."""
    rows = _identical(requests, baseline)
    return rows.groupby("variant")["same"].mean() if len(rows) else pd.Series(dtype=float)


def identical_share_by_start(requests: pd.DataFrame, baseline: str) -> dict[str, list[float]]:
    """Per variant, the identical share of each of its server starts (in start order): how much it moves
    between starts of an unchanged setup is what compare tolerates (docs/regression.md)."""
    rows = _identical(requests, baseline)
    if not len(rows):
        return {}
    per = rows.groupby(["variant", "start"])["same"].mean()
    return {str(v): [float(x) for x in per.loc[v].sort_index()] for v in per.index.get_level_values(0).unique()}


def _baseline_answers(requests: pd.DataFrame, baseline: str) -> dict[Any, str] | None:
    if requests.empty or baseline not in set(requests["variant"]):
        return None
    return slo.baseline_answers(requests[requests["variant"] == baseline].to_dict("records"))


def slo_table(folder: ResultsFolder | Path, requests: pd.DataFrame, baseline: str = "single") -> pd.DataFrame:
    """Per run with an SLO (run.json `slo`): goodput_req_per_s and the share of requests meeting each SLO.
    The identical-answer SLO is judged against the baseline variant's answers in the same folder."""
    answers = _baseline_answers(requests, baseline)
    rows = []
    for d, run in as_folder(folder).runs():
        objectives = dataclasses.asdict(run.spec.slo) if run.spec is not None else {}
        if not slo.active(objectives) or requests.empty:
            continue
        mine = requests[requests["variant"] == d.name].to_dict("records")
        for r in mine:  # pandas turns a missing value into NaN; the checks expect None
            r["error"] = r["error"] if isinstance(r.get("error"), str) else None
        wall = run.replay_s or run.wall_clock_s
        rows.append({"variant": run.variant, **slo.summarize(mine, objectives, wall, answers)})
    return pd.DataFrame(rows)


def answer_diffs(requests: pd.DataFrame, baseline: str = "single") -> pd.DataFrame:
    """Every answer that differs from the baseline's greedy answer to the same question, and where it first
    differs (character and word index): the lossless check per request."""
    columns = ["variant", "question_id", "repeat", "level", "first_diff_char", "first_diff_word", "answer",
               "baseline_answer"]  # fmt: skip
    answers = _baseline_answers(requests, baseline)
    if answers is None:
        return pd.DataFrame(columns=columns)
    ok = requests[(requests["variant"] != baseline) & requests["error"].isna()]
    rows = []
    for r in ok.to_dict("records"):
        base = slo.baseline_answer(answers, r["question_id"], r.get("level"))
        if base is not None and r["answer"] != base:
            char, word = slo.first_difference(str(r["answer"]), base)
            rows.append({"variant": r["variant"], "question_id": r["question_id"], "repeat": r.get("repeat", 0),
                         "level": r.get("level", 1.0), "first_diff_char": char, "first_diff_word": word,
                         "answer": r["answer"], "baseline_answer": base})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def load_params(folder: ResultsFolder | Path) -> pd.DataFrame:
    """One row per run of a multirun that varied fields inside a variant: variant (its folder), base_variant
    (the server config's name) and one column per swept key."""
    rows = []
    for _, run in as_folder(folder).runs():
        if not run.params:
            continue
        base = (run.spec.server.name if run.spec is not None else "") or run.variant
        rows.append({"variant": run.variant, "base_variant": base, **run.params})
    return pd.DataFrame(rows)


def summary_table(
    folder: ResultsFolder | Path, baseline: str = "single", requests: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per variant. `requests`: the folder's load_requests, when the caller has them already."""
    folder = as_folder(folder)
    runs = load_runs(folder)
    if runs.empty:
        return pd.DataFrame(columns=[c for c in SUMMARY_COLUMNS if c not in FROM_SERVER])
    base = runs.loc[(runs["variant"] == baseline) & (runs["status"] == OK), "wall_clock_s"]
    # Speed-up means the same work done faster: only complete runs get one.
    runs["speedup"] = (base.iloc[0] / runs["wall_clock_s"]).where(runs["status"] == OK) if len(base) else None
    requests = load_requests(folder) if requests is None else requests
    runs["identical_to_baseline"] = runs["variant"].map(identical_share(requests, baseline))
    goodput = slo_table(folder, requests, baseline)
    if not goodput.empty:
        runs = runs.drop(columns=[c for c in goodput.columns if c in runs and c != "variant"]).merge(
            goodput, on="variant", how="left"
        )
    # A figure older folders never had (the server's phases) gets its column only where some run measured it.
    columns = [c for c in SUMMARY_COLUMNS if c not in FROM_SERVER or (c in runs and runs[c].notna().any())]
    for col in columns:
        if col not in runs:
            runs[col] = None
    return runs[columns].sort_values("variant", key=lambda s: s != baseline, kind="stable").reset_index(drop=True)


def write_summary(
    folder: ResultsFolder | Path, baseline: str = "single", requests: pd.DataFrame | None = None
) -> pd.DataFrame:
    folder = as_folder(folder)
    table = summary_table(folder, baseline, requests)
    atomic_write_text(folder.path / SUMMARY_FILE, redact_url(table.to_csv(index=False)))
    return table


def metrics_shown(table: pd.DataFrame, view: str) -> list[MetricSpec]:
    """The view's metrics, less those only some runs measure (goodput, SLO shares) when no run has them."""
    return [
        m for m in in_view(view)
        if not m.only_when_measured or (m.name in table and pd.to_numeric(table[m.name], errors="coerce").notna().any())
    ]  # fmt: skip


def formatted(table: pd.DataFrame, col: str, fmt: Callable[[object], str]) -> pd.Series:
    values = pd.to_numeric(table[col], errors="coerce") if col in table else pd.Series(float("nan"), table.index)
    return values.map(fmt)


def load_provenance(folder: ResultsFolder | Path) -> pd.DataFrame:
    """One row per variant: where its numbers came from (versions, machine, commit, time, command)."""
    rows = []
    for _, run in as_folder(folder).runs():
        p, server = run.provenance.to_dict(), run.server.to_dict()
        gpus = p.get("gpus") or []
        rows.append(
            {
                "variant": run.variant,
                "status": run.status,
                "started_at": run.started_at or p.get("time"),
                "engine": server.get("engine") or p.get("engine"),
                "vllm_version": p.get("vllm_version"),
                "torch_version": p.get("torch_version"),
                "git_commit": p.get("git_commit"),
                "host": p.get("host"),
                "cpu": f"{p.get('cpu')} ({p.get('cpu_count')} cores)" if p.get("cpu") else None,
                "gpus": ", ".join(f"{g.get('name')} (driver {g.get('driver')})" for g in gpus) or None,
                "model": server.get("model_path") or (run.spec.server.model if run.spec is not None else None),
                "command": " ".join(map(str, server.get("command") or [])) or None,
            }
        )
    return pd.DataFrame(rows)


def stack_sweeps(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Several sweeps' tables as one, with a `sweep` column (the sweep's label) first."""
    parts = [f.assign(sweep=name) for name, f in frames.items() if not f.empty]
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    return out[["sweep", *[c for c in out.columns if c != "sweep"]]]


def telemetry_timeline(telemetry: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Telemetry plus `t_s`: seconds since the variant's first request (else its first sample)."""
    if telemetry.empty:
        return telemetry.assign(t_s=pd.Series(dtype=float))
    keys = [k for k in ("sweep", "variant") if k in telemetry]
    tel = telemetry.copy()
    tel["time"] = pd.to_numeric(tel["time"], errors="coerce")
    tel["util_pct"] = pd.to_numeric(tel["util_pct"], errors="coerce")
    start = tel.groupby(keys)["time"].transform("min")
    if not requests.empty and "start_time" in requests and set(keys) <= set(requests.columns):
        first = requests.assign(start_time=pd.to_numeric(requests["start_time"], errors="coerce"))
        first = first.groupby(keys)["start_time"].min().rename("first_request")
        # Both clocks are epoch seconds, so a sample taken before the first request gets a negative t_s.
        start = tel.join(first, on=keys)["first_request"].fillna(start)
    return tel.assign(t_s=tel["time"] - start)


def latency_ecdf(requests: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per variant (and sweep), the successful requests' sorted `column` values and their cumulative share."""
    keys = [k for k in ("sweep", "variant") if k in requests]
    if requests.empty or column not in requests:
        return pd.DataFrame(columns=[*keys, "value", "share"])
    ok = requests[requests["error"].isna()] if "error" in requests else requests
    ok = ok.assign(value=pd.to_numeric(ok[column], errors="coerce")).dropna(subset=["value"])
    ok = ok.sort_values([*keys, "value"])
    share = (ok.groupby(keys).cumcount() + 1) / ok.groupby(keys)["value"].transform("size")
    return ok[keys].assign(value=ok["value"], share=share).reset_index(drop=True)


def summary_view(table: pd.DataFrame) -> pd.DataFrame:
    """The summary with units and rounding, as text: for summary.md and the HTML report."""
    if table.empty or "variant" not in table:
        return pd.DataFrame()
    view = {k: table[k] for k in ("sweep", "variant", "status") if k in table}
    view |= {m.label: formatted(table, m.name, m.format) for m in metrics_shown(table, MARKDOWN)}
    view["reason"] = table["reason"].fillna("") if "reason" in table else pd.Series("", table.index)
    return pd.DataFrame(view)


def pareto_front(points: pd.DataFrame, x: str, y: str, maximize_y: bool = True) -> pd.Series:
    """True for the points no other point beats on both: higher `x` (throughput), and higher `y` (or lower,
    with maximize_y=False, for latency). Ties do not dominate."""
    xs = pd.to_numeric(points[x], errors="coerce").to_numpy()
    ys = pd.to_numeric(points[y], errors="coerce").to_numpy() * (1 if maximize_y else -1)
    front = []
    for i in range(len(points)):
        beaten = ((xs >= xs[i]) & (ys >= ys[i]) & ((xs > xs[i]) | (ys > ys[i]))).any()
        front.append(bool(not beaten and pd.notna(xs[i]) and pd.notna(ys[i])))
    return pd.Series(front, index=points.index)


def level_means(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials averaged over passes: one row per variant, load kind, phase and level."""
    if trials.empty or "level" not in trials:
        return pd.DataFrame()
    t = trials.copy()
    for col, default in (("load", "concurrency"), ("phase", "fixed")):
        t[col] = t[col].fillna(default) if col in t else default
    numeric = [c for c in t.columns if c not in ("variant", "status", "load", "phase", "level", "sweep")]
    t[numeric] = t[numeric].apply(pd.to_numeric, errors="coerce")
    keys = [k for k in ("sweep", "variant", "load", "phase", "level") if k in t]
    return t.groupby(keys, as_index=False, sort=True)[numeric].mean()


def crossover(trials: pd.DataFrame, baseline: str, variants: list[str]) -> pd.DataFrame:
    """Speed-up of each variant over the baseline at every load level both ran: output tok/s ratio at a
    concurrency, latency p50 ratio at a request rate (equal rates give equal throughput below saturation)."""
    per = level_means(trials)
    columns = ["variant", "load", "level", "speedup"]
    if per.empty or baseline not in set(per["variant"]):
        return pd.DataFrame(columns=columns)
    per = per[per["phase"].isin(["fixed", "rate"])]
    base = per[per["variant"] == baseline].set_index(["load", "level"])
    rows = []
    for v in variants:
        for r in per[per["variant"] == v].to_dict("records"):
            key = (r["load"], r["level"])
            if key not in base.index:
                continue
            b = base.loc[key]
            if r["load"] == "rate":
                speedup = b["latency_s_p50"] / r["latency_s_p50"] if r["latency_s_p50"] else None
            else:
                speedup = r["output_tok_per_s"] / b["output_tok_per_s"] if b["output_tok_per_s"] else None
            rows.append({"variant": v, "load": r["load"], "level": r["level"], "speedup": speedup})
    return pd.DataFrame(rows, columns=columns).sort_values(["variant", "load", "level"]).reset_index(drop=True)


def load_searches(folder: ResultsFolder | Path) -> pd.DataFrame:
    """One row per load level a load=slo_search or load=sweep run tried, with the run's outcome beside it."""
    rows = []
    for _, run in as_folder(folder).runs():
        if not run.search:
            continue
        s = run.search
        common = {"variant": run.variant, "mode": s.get("mode"), "best_req_per_s": s.get("best_req_per_s"),
                  "goal_share": s.get("goal_share"), "stopped": s.get("stopped"),
                  "max_req_per_s": s.get("max_req_per_s"),
                  "oversaturated_at": (s.get("oversaturated") or {}).get("req_per_s")}  # fmt: skip
        for t in s.get("tried") or [{}]:
            rows.append(common | t)
    return pd.DataFrame(rows)
