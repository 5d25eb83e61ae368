"""A variant's record finished from what is on disk: status and reason, counts, stats, energy per token."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from bench.core.describe import outside_engine, replay_wall_clock, run_stats, trial_stats
from bench.core.files import read_records, write_run
from bench.core.records import FAILED, OK, PARTIAL, SERVER_LOG, RequestRecord, RunResult, Start
from bench.run import prometheus as metrics
from bench.run import telemetry, tracing
from bench.run.diagnose import diagnose
from bench.run.server import log_tail


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def close(result: RunResult, entry: Start, run_dir: Path) -> None:
    """This start's entry added, the record finished and written: also for a failed or interrupted start."""
    entry.finished_at = now()
    result.starts = sorted([*result.starts, entry], key=lambda s: s.start)
    result.finished_at = entry.finished_at
    finish(result, run_dir)
    if result.status != OK and (run_dir / SERVER_LOG).exists():
        result.log_tail = log_tail(run_dir / SERVER_LOG)
    write_run(run_dir, result)


def finish(result: RunResult, run_dir: Path) -> None:
    """Counts and stats from what is on disk, so an interrupted run reports exactly what it kept."""
    planned = result.spec.repeats.starts if result.spec is not None else 1
    if result.rounds.get("stop"):  # the sweep stopped at a clear answer (or its deadline): that many were planned
        planned = int(result.rounds.get("stopped_after") or planned)
    result.status, result.reason = _status(result.starts, planned)
    result.startup_s = _sum([s.startup_s for s in result.starts])
    result.shutdown_s = _sum([s.shutdown_s for s in result.starts])
    result.server_metrics = _server_metrics(result.starts)
    result.telemetry = telemetry.merge_summaries([s.telemetry for s in result.starts if s.telemetry])
    records = read_records(run_dir)
    failed = [r for r in records if r.error]
    result.n_requests, result.n_failed, result.n_ok = len(records), len(failed), len(records) - len(failed)
    _figures(result, records)
    _energy_per_token(result, records)
    traced = [s.tracing for s in result.starts if s.tracing is not None]
    if traced:  # tracing.enabled: the join rate over what is on disk, per level; spans no request claimed
        result.tracing |= tracing.join_rates(records) | {"unmatched_spans": sum(t["unmatched_spans"] for t in traced)}
    status = final_status(result.status, result.n_requests, result.n_failed)
    if status != result.status:
        # Healthy server, requests refused (a kernel this build lacks, a prompt too long): say why.
        hint = diagnose(log_tail(run_dir / SERVER_LOG, 400)) or failed[0].error
        share = "every request" if status == FAILED else f"{result.n_failed} of {result.n_requests} requests"
        result.status, result.reason = status, f"{share} failed: {hint}"
    note = result.prompts.get("note")
    if note and note not in (result.reason or ""):  # skipped or kept long prompts show beside any status
        result.reason = f"{result.reason}; {note}" if result.reason else note


def final_status(status: str, n_requests: int, n_failed: int) -> str:
    """What happened decides the status: a replay that ran to its end is ok only if no request failed."""
    if status != OK or not n_requests or not n_failed:
        return status
    return FAILED if n_failed == n_requests else PARTIAL


def _status(starts: list[Start], planned: int) -> tuple[str, str | None]:
    """The run's status: ok when every planned start is; else the first start that is not, and why. A run with
    fewer starts than `repeats.starts` (a sweep between two starts, or one stopped there) is partial, never ok:
    its noise between starts is not measured yet, and a baseline must not be made of it."""
    bad = [s for s in starts if s.status != OK]
    done = {s.start for s in starts if s.status == OK}
    if not bad and done >= set(range(planned)):
        return OK, None
    if not bad:
        return PARTIAL, f"{len(done)} of {planned} server starts measured; re-run the same command to resume"
    first = bad[0]
    reason = first.reason
    if len(starts) > 1 and reason:
        reason = f"start {first.start}: {reason}"
    return first.status, reason


def _sum(values: list[Any]) -> float | None:
    nums = [v for v in values if v is not None]
    return float(sum(nums)) if nums else None


def _server_metrics(starts: list[Start]) -> dict[str, Any]:
    """The server's /metrics counters summed over the starts that have them, with the highest KV-cache peak."""
    counted = [s.counters for s in starts if s.counters is not None]
    if not counted:
        return {"available": False}
    total: dict[str, float] = {}
    for counters in counted:
        for key, v in counters.items():
            total[key] = total.get(key, 0.0) + v
    peaks = [s.kv_cache_usage_peak for s in starts if s.counters is not None and s.kv_cache_usage_peak is not None]
    return metrics.summarize_delta(total, max(peaks) if peaks else None)


def _figures(result: RunResult, records: list[RequestRecord]) -> None:
    """The replay's time, each trial's figures, and the run's stats over every request kept."""
    walls = [t.wall_clock_s for t in result.trials if t.wall_clock_s is not None]
    result.replay_s = sum(walls) if walls else None
    if walls:
        result.wall_clock_s = replay_wall_clock(result.trials)  # the whole request set (records.SCHEMA_VERSION 4)
        for t in result.trials:
            if t.wall_clock_s is not None:
                # The server's phases were scraped around the pass (measure.run_pass) and stay; the rest is redone.
                server = {k: v for k, v in t.figures.items() if k.startswith("server_")}
                figures = trial_stats([r for r in records if r.trial == t.key], t.wall_clock_s, server)
                t.figures = server | {k: v for k, v in figures.items() if k != "wall_clock_s"}
    result.stats = run_stats(records, result.replay_s)
    result.server_metrics |= outside_engine(result.stats, result.server_metrics)


def _energy_per_token(result: RunResult, records: list[RequestRecord]) -> None:
    """Joules per output token of each device, over the run and over each load level."""
    tokens = result.stats.get("output_tokens")
    for device in result.telemetry:
        if device.get("energy_j") is not None and tokens:
            device["j_per_output_token"] = device["energy_j"] / tokens
    for device in result.level_telemetry:
        level_tokens = sum(r.output_tokens or 0 for r in records if not r.error and r.level == device["level"])
        if device.get("energy_j") is not None and level_tokens:
            device["j_per_output_token"] = device["energy_j"] / level_tokens
