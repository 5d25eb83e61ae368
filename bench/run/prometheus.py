"""Scrape vLLM's Prometheus `/metrics` and turn before/after snapshots into per-run figures."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# Labels that identify a series we keep apart; every other label (model_name, engine...) is summed.
_KEEP_LABELS = ("position",)
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
    req = urllib.request.Request(f"{base_url}/metrics")
    if api_key:
        req.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return parse(r.read().decode("utf-8", errors="replace"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Counters are cumulative per server: the run's share is after - before."""
    return {k: after[k] - before.get(k, 0.0) for k in after if k.endswith("_total") or "_total{" in k}


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
