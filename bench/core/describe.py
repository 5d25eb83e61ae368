"""Run-level figures from request records: throughput, latency percentiles, answer quality."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench.core.metric_registry import CLIENT_TRIAL_METRICS
from bench.core.records import RequestRecord, Trial

PERCENTILES = (50, 90, 99)


def _describe(name: str, values: list[float]) -> dict[str, float | None]:
    arr = np.asarray(values, dtype=float)
    out: dict[str, float | None] = {f"{name}_mean": float(arr.mean()) if arr.size else None}
    for p in PERCENTILES:
        out[f"{name}_p{p}"] = float(np.percentile(arr, p)) if arr.size else None
    return out


def trial_stats(
    records: Sequence[RequestRecord], wall_clock_s: float, server: Mapping[str, float | None] | None = None
) -> dict[str, Any]:
    """The per-trial figures of one (start, pass, load level): the registry's per_trial metrics that request records
    give, and, given the server's phase figures over the same pass, the time spent outside the engine."""
    stats = run_stats(records, wall_clock_s)
    return {"wall_clock_s": wall_clock_s} | {k: stats[k] for k in CLIENT_TRIAL_METRICS} | outside_engine(stats, server)


def outside_engine(client: Mapping[str, Any], server: Mapping[str, Any] | None) -> dict[str, float]:
    """The client's mean TTFT and latency less the server's own over the same requests: HTTP, parsing the request,
    streaming the answer and the client itself, which no server histogram sees (vLLM 0.32 stamps a request's arrival
    just before it renders and tokenises the prompt). Empty where the server's figure is missing."""
    out = {}
    for name, mine, theirs in (("outside_engine_ttft_s", "ttft_s_mean", "server_ttft_s_mean"),
                               ("outside_engine_e2e_s", "latency_s_mean", "server_e2e_s_mean")):  # fmt: skip
        a, b = client.get(mine), (server or {}).get(theirs)
        if a is not None and b is not None:
            out[name] = float(a) - float(b)
    return out


def run_stats(records: Sequence[RequestRecord], wall_clock_s: float | None) -> dict[str, float | None]:
    """Failed requests count in n_failed and nowhere else: their latencies are not service times."""
    ok = [r for r in records if r.error is None]
    out_tokens = sum(r.output_tokens or 0 for r in ok)
    stats: dict[str, float | None] = {
        "output_tokens": float(out_tokens),
        "prompt_tokens": float(sum(r.prompt_tokens or 0 for r in ok)),
        "requests_per_s": len(ok) / wall_clock_s if wall_clock_s else None,
        "output_tok_per_s": out_tokens / wall_clock_s if wall_clock_s else None,
        "exact_match": float(np.mean([r.exact_match for r in ok])) if ok else None,
        "f1": float(np.mean([r.f1 for r in ok])) if ok else None,
    }
    stats |= _describe("ttft_s", [r.ttft_s for r in ok if r.ttft_s is not None])
    stats |= _describe("ttft_visible_s", [r.ttft_visible_s for r in ok if r.ttft_visible_s is not None])
    stats |= _describe("tpot_s", [r.tpot_s for r in ok if r.tpot_s is not None])
    stats |= _describe("itl_s", [x for r in ok for x in r.itl_s])
    stats |= _describe("latency_s", [r.latency_s for r in ok])
    return stats


def replay_wall_clock(trials: Sequence[Trial]) -> float | None:
    """A run's wall clock: each (start, pass) replays the whole request set once, over every load level it has,
    so its figure is the sum of its levels' trials; the run's is the median of those. For one load level this is
    the median over passes, as it always was; for a load sweep it is the whole sweep's time, not a level's."""
    passes: dict[tuple[int, int], float] = {}
    for t in trials:
        if t.wall_clock_s is not None:
            passes[(t.start, t.repeat)] = passes.get((t.start, t.repeat), 0.0) + t.wall_clock_s
    return float(statistics.median(passes.values())) if passes else None
