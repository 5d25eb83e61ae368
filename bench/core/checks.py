"""Every value a run depends on, checked before anything starts: one line naming the value and its valid range.

RANGES is that range's one text: the refusal says it, and docs/reference/config.md lists it."""

from __future__ import annotations

import dataclasses
import math
import urllib.parse

from bench.core.config import (
    CLIENTS,
    ENGINES,
    EXECUTOR_BACKENDS,
    LOAD_MODES,
    TOO_LONG,
    BenchConfig,
    RequestConfig,
    ServerConfig,
    SloConfig,
)
from bench.core.errors import ConfigError
from bench.core.repeats import MAX_COUNT
from bench.core.secrets import redact_url
from bench.core.tracing import check_listen


def _finite(value: object) -> bool:
    """No NaN or infinity anywhere in a value: `inf` seconds never time out, NaN compares false both ways."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


# Every checked key's valid range, as the refusal says it and docs/reference/config.md lists it (one text for both).
RANGES: dict[str, str] = {
    "load.concurrency": f"must be a whole number in 1..{MAX_COUNT:,}",
    "load.request_rate": "must be > 0, or null",
    "load.burstiness": "must be > 0",
    "load.levels": f"every level must be > 0, at most {MAX_COUNT:,} levels; concurrency levels must be whole numbers"
    " (rate levels need load.request_rate)",
    "load.max_requests": f"must be a whole number in 1..{MAX_COUNT:,}, or null for the whole dataset",
    "load.max_duration_s": "must be > 0, or null",
    "load.request_timeout_s": "must be > 0",
    "load.warmup_requests": f"must be a whole number in 0..{MAX_COUNT:,}",
    "load.sweep_points": f"must be a whole number in 1..{MAX_COUNT:,}",
    "load.search_max_levels": f"must be a whole number in 1..{MAX_COUNT:,}",
    "load.search_tolerance": "must be in (0, 1)",
    "load.search_max_s": "must be > 0",
    "load.client": f"one of {', '.join(CLIENTS)}",
    "load.mode": f"one of {', '.join(LOAD_MODES)}",
    "dataset.sample_size": f"must be a whole number in 1..{MAX_COUNT:,}, or null for every question",
    "dataset.too_long": f"one of {', '.join(TOO_LONG)}",
    "lock_wait_s": "must be >= 0 (0: refuse a folder another bench writes)",
    "telemetry_interval_s": "must be >= 0 (0: off)",
    "engine": f"one of {', '.join(ENGINES)}",
    "start": "must be >= 0",
    "endpoint": "http(s)://HOST:PORT of an OpenAI-compatible server, or null",
    "slo.ttft_ms": "must be > 0, or null",
    "slo.tpot_ms": "must be > 0, or null",
    "slo.latency_ms": "must be > 0, or null",
    "slo.min_f1": "must be in [0, 1], or null",
    "slo.min_share": "must be in (0, 1]",
    "tracing.wait_s": "must be > 0",
    "server.max_model_len": "must be >= 2",
    "server.gpu_memory_utilization": "must be in (0, 1]",
    "server.tensor_parallel_size": "must be >= 1",
    "server.pipeline_parallel_size": "must be >= 1",
    "server.port": "must be in 0..65535 (0: a free port is picked)",
    "server.startup_timeout_s": "must be > 0",
    "server.distributed_executor_backend": f"one of {', '.join(EXECUTOR_BACKENDS)}, or null",
    "server.ray_address": "needs the ray backend",
    "request.max_tokens": "must be >= 1 and below server.max_model_len",
    "request.temperature": "must be >= 0 (0: greedy)",
}


def _need(ok: bool, key: str, value: object, context: str = "") -> None:
    if not _finite(value):
        raise ConfigError(f"{key}={value!r} is out of range: must be a finite number")
    if not ok:
        raise ConfigError(f"{key}={value!r} is out of range: {RANGES[key]}{context}")


def _positive(key: str, value: float | None, optional: bool = False) -> None:
    _need((optional and value is None) or (value is not None and value > 0), key, value)


def _count(key: str, value: int | None, low: int = 1, optional: bool = False) -> None:
    """A number of things that sizes work: a whole number in low..MAX_COUNT."""
    ok = (optional and value is None) or (value is not None and low <= value <= MAX_COUNT)
    _need(ok, key, value)


def check_finite(node: object, key: str = "") -> None:
    """Every float of the config, wherever it is (a field no other check reads included), finite."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        children: dict[str, object] = {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
    elif isinstance(node, dict):
        children = {str(k): v for k, v in node.items()}
    elif isinstance(node, (list, tuple)):
        children = {f"{i}": v for i, v in enumerate(node)}
    else:
        if not _finite(node):
            raise ConfigError(f"{key}={node!r} is out of range: must be a finite number")
        return
    for name, child in children.items():
        check_finite(child, f"{key}.{name}" if key else name)


def check_settings(cfg: BenchConfig) -> None:
    """Every value a run depends on, checked before anything starts: one line with the valid range."""
    load, ds = cfg.load, cfg.dataset
    check_finite(cfg)
    _count("load.concurrency", load.concurrency)
    _positive("load.request_rate", load.request_rate, optional=True)
    _positive("load.burstiness", load.burstiness)
    for v in load.levels:
        _need(v > 0, "load.levels", list(load.levels))
    if load.request_rate is None:
        _need(all(float(v).is_integer() for v in load.levels), "load.levels", list(load.levels))
    _need(len(load.levels) <= MAX_COUNT, "load.levels", f"[{len(load.levels)} levels]")
    _count("load.max_requests", load.max_requests, optional=True)
    _positive("load.max_duration_s", load.max_duration_s, optional=True)
    _positive("load.request_timeout_s", load.request_timeout_s)
    _count("load.warmup_requests", load.warmup_requests, low=0)
    _count("load.sweep_points", load.sweep_points)
    _count("load.search_max_levels", load.search_max_levels)
    _need(0 < load.search_tolerance < 1, "load.search_tolerance", load.search_tolerance)
    _positive("load.search_max_s", load.search_max_s)
    _count("dataset.sample_size", ds.sample_size, optional=True)
    _need(ds.too_long in TOO_LONG, "dataset.too_long", ds.too_long)
    _need(cfg.lock_wait_s >= 0, "lock_wait_s", cfg.lock_wait_s)
    _need(cfg.telemetry_interval_s >= 0, "telemetry_interval_s", cfg.telemetry_interval_s)
    check_slo(cfg.slo)
    check_listen(cfg.tracing.listen)
    _positive("tracing.wait_s", cfg.tracing.wait_s)
    check_endpoint(cfg.endpoint)
    check_server(cfg.server)
    check_request(cfg.request, cfg.server)
    from bench.core.folder import check_run_dir  # folder reads records, whose RunSpec is made of these configs

    check_run_dir(cfg.out_dir, cfg.run_name)


def check_endpoint(url: str | None) -> None:
    """endpoint=URL must be an http(s) URL with a host (and a port that is a number)."""
    if url is None:
        return
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"endpoint={redact_url(url)!r} is not a URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or (port is not None and not 0 < port < 65536):
        raise ConfigError(f"endpoint={redact_url(url)!r}: give http(s)://HOST:PORT of an OpenAI-compatible server")


def check_slo(slo: SloConfig) -> None:
    for key in ("ttft_ms", "tpot_ms", "latency_ms"):
        _positive(f"slo.{key}", getattr(slo, key), optional=True)
    _need(slo.min_f1 is None or 0 <= slo.min_f1 <= 1, "slo.min_f1", slo.min_f1)
    _need(0 < slo.min_share <= 1, "slo.min_share", slo.min_share)


def check_server(s: ServerConfig) -> None:
    """A variant's values; run again once engine profiles and `on_engine` are merged in."""
    _need(s.max_model_len >= 2, "server.max_model_len", s.max_model_len)
    _need(0 < s.gpu_memory_utilization <= 1, "server.gpu_memory_utilization", s.gpu_memory_utilization)
    _need(s.tensor_parallel_size >= 1, "server.tensor_parallel_size", s.tensor_parallel_size)
    _need(s.pipeline_parallel_size >= 1, "server.pipeline_parallel_size", s.pipeline_parallel_size)
    _need(0 <= s.port <= 65535, "server.port", s.port)
    _positive("server.startup_timeout_s", s.startup_timeout_s)
    check_backend(s)


def check_backend(s: ServerConfig) -> None:
    backend = s.distributed_executor_backend
    _need(backend in (None, *EXECUTOR_BACKENDS), "server.distributed_executor_backend", backend)
    _need(s.ray_address is None or backend == "ray", "server.ray_address", s.ray_address)


def check_request(r: RequestConfig, s: ServerConfig) -> None:
    """The request's values against the variant's context; run again once the variant is resolved."""
    _need(1 <= r.max_tokens < s.max_model_len, "request.max_tokens", r.max_tokens, f" ({s.max_model_len})")
    _need(r.temperature >= 0, "request.temperature", r.temperature)
