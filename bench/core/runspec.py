"""RunSpec: one typed record of a fully resolved run of one variant, made once from the config, written in run.json."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from bench.core.config import (
    BenchConfig,
    DatasetConfig,
    LoadConfig,
    RequestConfig,
    ServerConfig,
    SloConfig,
)
from bench.core.errors import RecordError
from bench.core.repeats import Repeats, to_repeats
from bench.core.secrets import redact_args, redact_env, redact_url
from bench.core.tracing import TracingConfig

# The parts of a spec, in run.json's order: what a reader may find unrecorded in a migrated older run.
PARTS = ("server", "request", "dataset", "load", "slo", "repeats", "tracing")
# Config fields that are only the Hydra schema's old spellings (migrate.CONFIG_MOVED): never part of a spec.
_OLD_SPELLINGS = {"server": ("max_tokens", "on_engine"), "dataset": ("system_prompt",)}


@dataclass(frozen=True)
class RunSpec:
    """What one variant's run measured: everything that decides its figures, secrets left out.

    `server` is the variant as it ran on `engine` (engine profile and on_engine applied); `request` is what every
    request sent besides its question (max_tokens lives here only); `dataset`, `load`, `slo` and `repeats` are the
    workload; `host_cpu` is the CPU the CPU engine's kernels and dtype were chosen for (None on CUDA and for an
    endpoint). `unrecorded` names the parts an older run.json did not record, filled with today's defaults
    by the migration layer: readers treat them as unknown, never as a difference."""

    variant: str
    engine: str
    server: ServerConfig
    request: RequestConfig
    dataset: DatasetConfig
    load: LoadConfig
    slo: SloConfig
    repeats: Repeats
    tracing: TracingConfig
    endpoint: str | None = None
    host_cpu: dict[str, Any] | None = None
    # The sweep's variant that speed-ups and identical answers are against (config baseline_variant).
    baseline_variant: str = "single"
    unrecorded: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"variant": self.variant, "engine": self.engine}
        for part in PARTS:
            fields = dataclasses.asdict(getattr(self, part))
            out[part] = {k: v for k, v in fields.items() if k not in _OLD_SPELLINGS.get(part, ())}
        out |= {"endpoint": self.endpoint, "host_cpu": self.host_cpu, "baseline_variant": self.baseline_variant}
        if self.unrecorded:
            out["unrecorded"] = list(self.unrecorded)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSpec:
        """A spec as run.json holds it (schema 6 on). RecordError naming the field for a value of the wrong type."""
        if not isinstance(d, Mapping):
            raise RecordError(f"spec: expected an object, got {type(d).__name__}")
        kinds = {"server": ServerConfig, "request": RequestConfig, "dataset": DatasetConfig, "load": LoadConfig,
                 "slo": SloConfig, "repeats": Repeats, "tracing": TracingConfig}  # fmt: skip
        parts: dict[str, Any] = {name: part(kind, d.get(name) or {}, f"spec.{name}") for name, kind in kinds.items()}
        unrecorded = d.get("unrecorded") or []
        if not isinstance(unrecorded, list) or not all(isinstance(p, str) for p in unrecorded):
            raise RecordError(f"spec.unrecorded: expected a list of part names, got {unrecorded!r}")
        host_cpu = d.get("host_cpu")
        return cls(
            variant=_typed(d.get("variant", ""), str, "spec.variant"),
            engine=_typed(d.get("engine", ""), str, "spec.engine"),
            endpoint=_typed(d.get("endpoint"), str | None, "spec.endpoint"),
            host_cpu=_typed(host_cpu, dict[str, Any] | None, "spec.host_cpu"),
            baseline_variant=_typed(d.get("baseline_variant", "single"), str, "spec.baseline_variant"),
            unrecorded=tuple(unrecorded),
            **parts,  # type: ignore[arg-type]
        )


def from_config(cfg: BenchConfig, server: ServerConfig, engine: str, host_cpu: dict[str, Any] | None) -> RunSpec:
    """The spec of one variant's run: `server` resolved for `engine` (config.resolve_server), secrets redacted."""
    return RunSpec(
        variant=cfg.run_name,
        engine=engine,
        server=dataclasses.replace(
            server,
            api_key=None,
            env=redact_env(server.env),
            extra_args=redact_args([str(a) for a in server.extra_args]),
            max_tokens=None,
            on_engine={},
        ),
        request=cfg.request,
        dataset=dataclasses.replace(cfg.dataset, system_prompt=None),
        load=cfg.load,
        slo=cfg.slo,
        repeats=to_repeats(cfg.repeats),
        tracing=cfg.tracing,
        endpoint=redact_url(cfg.endpoint) if cfg.endpoint else None,
        host_cpu=host_cpu,
        baseline_variant=cfg.baseline_variant,
    )


_D = TypeVar("_D")


def part(cls: type[_D], d: Any, where: str) -> _D:
    """A config dataclass from a stored dict: unknown keys ignored (a newer bench's), missing ones defaulted, a
    value of the wrong type refused with RecordError naming it."""
    if not isinstance(d, Mapping):
        raise RecordError(f"{where}: expected an object, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    known = {k: _typed(v, hints[k], f"{where}.{k}") for k, v in d.items() if k in names}
    return cls(**known)


def _typed(value: Any, hint: Any, where: str) -> Any:
    """`value` if it is of the annotated type (ints accepted for floats, as JSON writes 1.0 as 1), else RecordError."""
    if _fits(value, hint):
        return float(value) if hint is float and not isinstance(value, bool) else value
    raise RecordError(f"{where}: {value!r} is not of type {getattr(hint, '__name__', hint)}")


def _fits(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and _fits(v, args[1]) for k, v in value.items())
    return isinstance(value, hint)
