"""A run's identity: the config hash, a function of its RunSpec alone. Resume re-runs a variant whose hash changed.

Stored runs never move: every field that came after runs were stored counts only once it leaves the value those
runs had, and the request's fields are hashed where stored runs hashed them. Those exceptions live here only."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from bench.core.config import RequestConfig
from bench.core.runspec import RunSpec

# Server fields that are no part of the experiment: a picked port, a declaration about the answers, which
# cluster runs it (provenance records the cluster).
NOT_HASHED = ("port", "lossless", "ray_address")
# Fields that came after runs were stored, with the value those runs had: hashed only when different, so those
# runs still resume. An unset executor backend is vLLM's own choice.
_SERVER_ADDED: dict[str, Any] = {"distributed_executor_backend": None}
_DATASET_ADDED: dict[str, Any] = {"too_long": "skip"}
# `mode` and `arrivals` choose a load plan and a pacing; the others are settings of one plan each.
_LOAD_ADDED: dict[str, Any] = {
    "mode": "fixed", "arrivals": "gamma", "sweep_points": 4, "search_tolerance": 0.1, "search_max_levels": 8,
    "search_max_s": 600.0,
}  # fmt: skip
# Where stored runs hashed a request's fields before the request group existed: with the server's and the
# dataset's. A request field that came later counts only when it leaves its default.
_REQUEST_HASHED_IN = {"max_tokens": "server", "system_prompt": "dataset"}


def config_hash(spec: RunSpec) -> str:
    """What makes two runs comparable, as 16 hex digits."""
    return hashlib.sha256(json.dumps(hash_key(spec), sort_keys=True, default=str).encode()).hexdigest()[:16]


def hash_key(spec: RunSpec) -> dict[str, Any]:
    """The values the hash is made of (the identity, readable: tests and `bisect` show what differs)."""
    server = _without(dataclasses.asdict(spec.server), NOT_HASHED, _SERVER_ADDED)
    key: dict[str, Any] = {
        "server": server,
        "dataset": _without(dataclasses.asdict(spec.dataset), (), _DATASET_ADDED),
        "load": _without(dataclasses.asdict(spec.load), (), _LOAD_ADDED),
        "engine": spec.engine,
    }
    if spec.load.mode == "slo_search":  # the objectives pick that plan's load levels; a fixed load's do not move
        key["slo"] = dataclasses.asdict(spec.slo)
    defaults = dataclasses.asdict(RequestConfig())
    for name, value in dataclasses.asdict(spec.request).items():
        if name in _REQUEST_HASHED_IN:
            key[_REQUEST_HASHED_IN[name]][name] = value
        elif value != defaults[name]:
            key.setdefault("request", {})[name] = value
    if spec.tracing.enabled:  # the server exports a span per request: a cost of its own
        key["tracing"] = True
    if spec.host_cpu is not None:  # the same settings run other kernels on another CPU
        key["cpu"] = spec.host_cpu
    return key


def _without(fields: dict[str, Any], dropped: tuple[str, ...], added: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in dropped and (k not in added or v != added[k])}
