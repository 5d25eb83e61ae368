"""What two runs differ in, field by field: the settings and provenance a run.json records."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from bench.core import cpu
from bench.core.config import ServerConfig
from bench.core.records import RunResult
from bench.run.provenance import redact_args, redact_env

HASH = "config_hash"
# Server fields that are no part of the experiment: a picked port, a declaration about the answers, and a
# secret (stored as None). The config hash leaves out the first two as well (bench/run/runner.py config_hash).
NOT_SETTINGS = ("port", "lossless", "api_key")
# Recorded fields that enter the config hash: one of them differing explains a different hash. slo enters it
# only under load=slo_search; counted always, since a run.json does not say which mode its hash was made under.
HASHED = ("server.", "dataset.", "load.", "slo.", "engine", "cpu_isa", "tracing.")
UNRECORDED = "no recorded field explains it: a dataset or load setting, which run.json does not record"
Change = tuple[str, Any, Any]  # dotted key, one side's value, the other's


class _Absent:
    def __repr__(self) -> str:
        return "(unset)"


ABSENT = _Absent()  # a key one side's dict lacks, e.g. an environment variable set on one side only


def _get(run: RunResult | Mapping[str, Any], name: str) -> Any:
    """A part of a run as run.json holds it: a typed part (ServerInfo, Provenance) as its dict."""
    value = run.get(name) if isinstance(run, Mapping) else getattr(run, name)
    if value is None:
        return {}
    return value.to_dict() if hasattr(value, "to_dict") else value


def recorded(run: RunResult | Mapping[str, Any]) -> dict[str, Any]:
    """Dotted key -> value of what a run's figures depend on besides bench's code, as run.json records it."""
    p = _get(run, "provenance")
    out: dict[str, Any] = {k: str(p.get(k)) for k in ("engine", "vllm_version", "torch_version", "cpu")}
    out["gpus"] = ", ".join(str(g.get("name")) for g in p.get("gpus") or []) or "none"
    out[HASH] = _get(run, "config_hash") or ""
    # The keys below are absent from runs of older bench: left out then, so they are never a difference.
    if p.get("cpu_caps"):
        out["cpu_isa"] = cpu.summary(p["cpu_caps"])
    drivers = sorted({str(g["driver"]) for g in p.get("gpus") or [] if g.get("driver")})
    if drivers:
        out["driver"] = ", ".join(drivers)
    out |= {k: p[k] for k in ("python", "git_commit", "cpu_count") if p.get(k) is not None}
    return out | _settings(run)


def _settings(run: RunResult | Mapping[str, Any]) -> dict[str, Any]:
    """The variant's resolved server fields (secrets hidden), the prefix-cache policy, the SLO, the swept keys."""
    server = _get(run, "server")
    out: dict[str, Any] = {}
    config = server.get("config")
    if isinstance(config, dict):
        # A field added to ServerConfig after the run was stored: the run had what its default gives.
        full = dataclasses.asdict(ServerConfig()) | config
        out = {f"server.{k}": v for k, v in full.items() if k not in NOT_SETTINGS}
        out["server.extra_args"] = redact_args([str(a) for a in full.get("extra_args") or []])
        out["server.env"] = redact_env(dict(full.get("env") or {}))
    if "prefix_cache" in server:
        out["repeats.prefix_cache"] = server["prefix_cache"]
    out |= {f"slo.{k}": v for k, v in _get(run, "slo").items()}
    out["tracing.enabled"] = bool(_get(run, "tracing").get("enabled"))  # runs before tracing existed: off
    # A multirun's swept keys (load.concurrency=4): the only dataset and load settings run.json records.
    # Swept server keys are in the server's fields already.
    out |= {k: v for k, v in redact_env(_get(run, "params")).items() if not k.startswith("server.")}
    return out


def changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Change]:
    """Every differing field, in key order. A field one side does not record is unknown there (an older run),
    not a difference; inside a recorded dict (env, speculative_config), a key on one side only is."""
    return sorted((c for k in a.keys() & b.keys() for c in _walk(k, a[k], b[k])), key=lambda c: c[0])


def _walk(key: str, a: Any, b: Any) -> Iterator[Change]:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(a.keys() | b.keys(), key=str):
            yield from _walk(f"{key}.{k}", a.get(k, ABSENT), b.get(k, ABSENT))
    elif a != b and compact(a) != compact(b):  # nan != nan, and a line `nan -> nan` would tell nobody anything
        yield key, a, b


def field_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Change]:
    """changes(), the config hash kept only where no recorded field that enters the hash explains it."""
    out = changes(a, b)
    if any(key.startswith(HASHED) for key, _, _ in out):
        out = [c for c in out if c[0] != HASH]
    return out


def compact(value: Any) -> str:
    """A value on one line, lists and dicts as on a Hydra command line: `[--max-num-seqs, 8]`, `{method: ngram}`."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(compact(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {compact(v)}" for k, v in value.items()) + "}"
    return str(value)
