"""The one migration layer: every old spelling and schema step, turned into today's records on read.

A stored run.json of any schema becomes today's RunResult with a RunSpec; a config written with an old key
spelling is read at the key's place now. Nothing else in bench knows that older formats exist."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.core.config import BenchConfig, RequestConfig
from bench.core.describe import replay_wall_clock
from bench.core.errors import ConfigError, RecordError
from bench.core.records import FAILED, SCHEMA_VERSION, RunResult
from bench.core.repeats import Repeats
from bench.core.runspec import RunSpec, part
from bench.core.secrets import redact_args, redact_env

# --- configs -------------------------------------------------------------------------------------------------
# Old spellings of moved keys -> their place now. Still read (users' configs, sweeps and stored multirun.yaml
# files use them), moved on reading with one line on stderr.
CONFIG_MOVED = {"server.max_tokens": "request.max_tokens", "dataset.system_prompt": "request.system_prompt"}


def move_old_spellings(cfg: BenchConfig, told: set[str] | None = None) -> None:
    """Values set under an old spelling go to their new place; the old field is left unset. `told` collects the
    spellings already reported, so a caller converting many jobs' configs says each once."""
    for old, new in CONFIG_MOVED.items():
        (group, key), (new_group, new_key) = old.split("."), new.split(".")
        value = getattr(getattr(cfg, group), key)
        if value is None:
            continue
        now, default = getattr(getattr(cfg, new_group), new_key), getattr(RequestConfig(), new_key)
        if now not in (default, value):
            raise ConfigError(f"{old}={value!r} and {new}={now!r}: set {new} only ({old} is its old spelling)")
        if told is None or old not in told:
            print(f"bench: {old} is now {new}; read as {new}={value!r}", file=sys.stderr)
            if told is not None:
                told.add(old)
        setattr(getattr(cfg, new_group), new_key, value)
        setattr(getattr(cfg, group), key, None)


def current_key(key: str) -> str:
    """A dotted key as it is spelled now (`server.max_tokens` -> `request.max_tokens`)."""
    return CONFIG_MOVED.get(key, key)


# --- run.json ------------------------------------------------------------------------------------------------
# Top-level keys renamed between schema versions, old -> new.
RENAMED: dict[str, str] = {}


def run_from_json(data: Mapping[str, Any], run_dir: Path) -> tuple[RunResult, list[str]]:
    """Today's RunResult of a run.json object of any schema, and what of it could not be used (for a warning).
    RecordError when its values cannot be a run's."""
    notes: list[str] = []
    data = {RENAMED.get(k, k): v for k, v in data.items()}
    data.setdefault("schema_version", 0)
    data["variant"] = data.get("variant") or run_dir.name
    data["status"] = data.get("status") or FAILED  # a run with no status cannot be trusted as complete
    version = data["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise RecordError(f"schema_version: {version!r} is not an integer")
    # Schema 5 and older kept the run's settings in three places: server.config (the resolved server fields),
    # server.prefix_cache and the top-level slo. They are the spec's now.
    server = data.get("server")
    older: dict[str, Any] = {}
    if isinstance(server, Mapping):
        older = {k: server[k] for k in ("config", "prefix_cache") if k in server}
        data["server"] = {k: v for k, v in server.items() if k not in older}
    older["slo"] = data.pop("slo", None)
    spec = data.pop("spec", None)
    result = _result(data, notes)
    if spec is not None:
        result.spec = RunSpec.from_dict(spec)
    else:
        try:
            result.spec = _spec_of_older_run(result, older, run_dir, notes)
        except RecordError as e:  # the figures still read; the settings are unknown, never a difference
            notes.append(f"its recorded settings are unreadable ({e}): compared as unknown")
    if version < 4 and len({t.level for t in result.trials}) > 1:
        result.wall_clock_s = replay_wall_clock(result.trials)  # schema 4's definition (records.SCHEMA_VERSION)
    return result, notes


_FIELDS = {f.name for f in dataclasses.fields(RunResult)}
_CONTAINERS: dict[str, type] = {
    "trials": list, "starts": list, "stats": dict, "server_metrics": dict, "telemetry": list, "level_telemetry": list,
    "server": dict, "provenance": dict, "prompts": dict, "params": dict, "slo": dict, "search": dict, "tracing": dict,
}  # fmt: skip


def _result(data: dict[str, Any], notes: list[str]) -> RunResult:
    unknown = sorted(data.keys() - _FIELDS)
    if unknown:
        version = data["schema_version"]
        why = f"written by a newer bench, schema {version} > {SCHEMA_VERSION}" if version > SCHEMA_VERSION else (
            "unknown to this bench")  # fmt: skip
        notes.append(f"ignoring {len(unknown)} key(s) ({why}): {', '.join(unknown)}")
    # Missing or null keys take their defaults, so every reader can iterate the containers.
    kept = {k: v for k, v in data.items() if k in _FIELDS and v is not None}
    wrong = [f for f, t in _CONTAINERS.items() if f in kept and not isinstance(kept[f], t)]
    if wrong:
        raise RecordError(f"wrong type for {', '.join(wrong)}")
    for name in ("trials", "starts"):  # an entry that is not an object is no trial or start: dropped
        kept[name] = [x for x in kept.get(name, []) if isinstance(x, dict)]
    for name in ("telemetry", "level_telemetry"):  # per device: readers key them by their device's name
        bad = [
            i
            for i, x in enumerate(kept.get(name, []))
            if not isinstance(x, dict) or not isinstance(x.get("device"), str)
        ]
        if bad:
            raise RecordError(f"{name}[{bad[0]}] is not a device's figures (an object with a device name)")
    try:
        return RunResult(**kept)
    except TypeError as e:
        raise RecordError(str(e)) from None


def _spec_of_older_run(result: RunResult, older: dict[str, Any], run_dir: Path, notes: list[str]) -> RunSpec | None:
    """A run.json of schema 5 or older recorded the resolved server fields (with request.max_tokens among them),
    the SLO, the prefix-cache policy and the swept keys; the rest of the workload comes from the files Hydra
    wrote for that same run, where they are. What neither holds is named in `unrecorded`."""
    stored = older.get("config")
    if not isinstance(stored, Mapping):
        return None
    config = dict(stored)
    # Older benches redacted the environment's secrets but kept a secret flag's value in extra_args: a spec never.
    if isinstance(config.get("extra_args"), list):
        config["extra_args"] = redact_args([str(a) for a in config["extra_args"]])
    if isinstance(config.get("env"), Mapping):
        config["env"] = redact_env({str(k): v for k, v in config["env"].items()})
    request: dict[str, Any] = {}
    if config.get("max_tokens") is not None:  # where run.json has always kept the request's max_tokens
        request["max_tokens"] = config["max_tokens"]
    workload, recorded = _hydra_workload(run_dir, notes)
    request = {**(workload.get("request") or {}), **request}
    dataset = dict(workload.get("dataset") or {})
    if dataset.get("system_prompt") is not None and "system_prompt" not in (workload.get("request") or {}):
        request["system_prompt"] = dataset["system_prompt"]  # dataset.system_prompt, the old spelling
    repeats = dict(workload.get("repeats") or {}) if isinstance(workload.get("repeats"), Mapping) else {}
    if isinstance(workload.get("repeats"), int):  # `repeats: N`, the older form: N passes in one start
        repeats = {"passes": workload["repeats"]}
    if older.get("prefix_cache"):
        repeats["prefix_cache"] = older["prefix_cache"]
    parts: dict[str, Any] = {
        "server": {k: v for k, v in config.items() if k != "max_tokens"},
        "request": request,
        "dataset": dataset,
        "load": workload.get("load") or {},
        "slo": older.get("slo") or workload.get("slo") or {},
        "repeats": repeats,
        "tracing": {"enabled": bool(result.tracing.get("enabled"))},
    }
    for key, value in result.params.items():  # a multirun's swept keys: this run's own values
        group, _, leaf = current_key(key).partition(".")
        if leaf and group in parts and group != "server":
            parts[group] = {**parts[group], leaf: value}
    unrecorded = [p for p in ("request", "dataset", "load", "repeats") if p not in recorded]
    typed: dict[str, Any] = {}
    for name, kind in _KINDS.items():
        try:
            typed[name] = part(kind, parts[name], f"run.json {name}")
        except RecordError:
            if name in ("server", "slo", "tracing"):  # run.json's own: its values are wrong, not missing
                raise
            notes.append(f"the {name} Hydra recorded for it is unreadable: compared as unknown")
            typed[name], unrecorded = kind(), [*unrecorded, name]
    engine = result.server.engine or result.provenance.engine or ""
    endpoint = result.server.endpoint
    caps = result.provenance.cpu_caps
    return RunSpec(
        variant=result.variant,
        engine=engine,
        endpoint=endpoint,
        host_cpu=caps if engine == "cpu" and not endpoint and caps else None,
        unrecorded=tuple(dict.fromkeys(unrecorded)),
        **typed,
    )


def _kinds() -> dict[str, type]:
    from bench.core.config import DatasetConfig, LoadConfig, ServerConfig, SloConfig
    from bench.core.tracing import TracingConfig

    return {"server": ServerConfig, "request": RequestConfig, "dataset": DatasetConfig, "load": LoadConfig,
            "slo": SloConfig, "repeats": Repeats, "tracing": TracingConfig}  # fmt: skip


_KINDS = _kinds()


def _hydra_workload(run_dir: Path, notes: list[str]) -> tuple[dict[str, Any], set[str]]:
    """The workload parts Hydra recorded for this run: its job's .hydra/config.yaml, else its sweep's
    multirun.yaml (the swept values are in run.json's params); the parts found."""
    from omegaconf import DictConfig, OmegaConf

    for path in (run_dir / ".hydra" / "config.yaml", run_dir.parent / "multirun.yaml"):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            tree = OmegaConf.load(path)
            if not isinstance(tree, DictConfig):
                raise ValueError("not a mapping")
            out: dict[str, Any] = {}
            for name in ("request", "dataset", "load", "slo", "repeats"):
                if name in tree:
                    node = tree[name]
                    out[name] = OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node
        except Exception as e:  # a torn or hand-edited file: the parts stay unrecorded, the run still reads
            notes.append(f"{path.name}: not readable as the run's config ({str(e).splitlines()[0] if str(e) else e})")
            continue
        clean = {k: v for k, v in out.items() if not _interpolated(v)}
        return clean, set(clean)
    return {}, set()


def _interpolated(value: Any) -> bool:
    """Whether a stored config part still holds an unresolved `${...}` (its value was decided at run time)."""
    if isinstance(value, Mapping):
        return any(_interpolated(v) for v in value.values())
    if isinstance(value, list):
        return any(_interpolated(v) for v in value)
    return isinstance(value, str) and "${" in value
