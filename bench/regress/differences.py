"""What two runs differ in, field by field: the settings and provenance a run.json records."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.core import cpu, migrate
from bench.core.records import RunResult
from bench.core.runspec import PARTS
from bench.core.secrets import redact_env

HASH = "config_hash"
# Fields that are no part of the experiment: a picked port, a declaration about the answers, a secret (stored as
# None), where the tracing receiver listens and how long it waits, and when the rounds of starts end (a nightly
# against its baseline stops at a clear answer; its baseline ran the fixed plan). bench/core/identity.py leaves
# out the first two.
NOT_SETTINGS = {("server", "port"), ("server", "lossless"), ("server", "api_key"), ("tracing", "listen"),
                ("tracing", "wait_s"), ("repeats", "until"), ("repeats", "against"),
                ("repeats", "max_minutes")}  # fmt: skip
# Recorded fields that enter the config hash: one of them differing explains a different hash. slo enters it
# only under load=slo_search; counted always, as the hash of an older run does not say which mode it was made under.
HASHED = ("server.", "request.", "dataset.", "load.", "slo.", "engine", "cpu_isa", "tracing.")
UNRECORDED = "no recorded field explains it: an older run.json that did not record its workload (dataset, load)"
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
    """Dotted key -> value of what a run's figures depend on besides bench's code, as run.json records it (a
    run.json object of any schema is read as today's record first)."""
    if isinstance(run, Mapping):
        run = migrate.run_from_json(run, Path(str(run.get("variant") or ".")))[0]
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
    return out | settings(run)


def settings(run: RunResult) -> dict[str, Any]:
    """Every field of the run's RunSpec (secrets already hidden there) as a dotted key, less the parts an older
    run.json did not record (unknown there, never a difference); the swept keys outside the spec."""
    spec = run.spec
    out: dict[str, Any] = {}
    if spec is not None:
        tree = spec.to_dict()
        for part in PARTS:
            if part in spec.unrecorded:
                continue
            out |= {f"{part}.{k}": v for k, v in tree[part].items() if (part, k) not in NOT_SETTINGS}
        out["engine"] = spec.engine
        if spec.endpoint:
            out["endpoint"] = spec.endpoint
    params = _get(run, "params")
    out |= {k: v for k, v in redact_env(params).items() if k.split(".", 1)[0] not in PARTS}
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
