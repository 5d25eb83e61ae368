"""Result records and their files: per-request JSONL, run.json, the sweep's summary.csv."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
SCHEMA_VERSION = 3
# Keys renamed between versions, old -> new, applied when reading (RunResult's, then a trial's).
RENAMED: dict[str, str] = {}
TRIAL_RENAMED: dict[str, str] = {}
# A trial is one (server start, pass within it, load level); files from before `start` get these.
# phase: how a load search came to the level (synchronous, throughput, rate); fixed for given levels.
TRIAL_DEFAULTS: dict[str, Any] = {"start": 0, "repeat": 0, "level": 1.0, "load": "concurrency", "phase": "fixed"}

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
    # One dict of figures per trial, keyed by start, repeat and level (TRIAL_DEFAULTS): their spread within a
    # level, between and within starts, is what `compare` calls noise.
    trials: list[dict[str, Any]] = field(default_factory=list)
    # One dict per server start: status, reason, start-up/shutdown time, /metrics counters, telemetry.
    starts: list[dict[str, Any]] = field(default_factory=list)
    n_requests: int = 0
    n_ok: int = 0
    n_failed: int = 0
    stats: dict[str, float | None] = field(default_factory=dict)
    server_metrics: dict[str, Any] = field(default_factory=dict)
    telemetry: list[dict[str, Any]] = field(default_factory=list)  # per device, over the whole replay
    level_telemetry: list[dict[str, Any]] = field(default_factory=list)  # per load level and device
    server: dict[str, Any] = field(default_factory=dict)
    # The prompt-length pre-flight: dataset.too_long policy, limit, how many did not fit, the longest, their ids.
    prompts: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    # Swept key -> this run's value, in a multirun that varies fields inside a variant (cli `sweep_params`).
    params: dict[str, Any] = field(default_factory=dict)
    slo: dict[str, Any] = field(default_factory=dict)  # the objectives goodput counts (config `slo`)
    search: dict[str, Any] = field(default_factory=dict)  # load=sweep / slo_search: rates tried, the answer


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file and rename, so a crash never leaves a half-written file behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from the other users of a shared box
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_run(run_dir: Path, result: RunResult) -> None:
    text = json.dumps(dataclasses.asdict(result), indent=1, ensure_ascii=False, default=str)
    atomic_write_text(run_dir / RUN_FILE, text + "\n")


_FIELDS = {f.name: f for f in dataclasses.fields(RunResult)}
_warned: set[tuple[str, int]] = set()  # (file, mtime): readers call read_run several times per file


def _warn_once(path: Path, message: str) -> None:
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key not in _warned:
        _warned.add(key)
        log.warning("%s: %s", path, message)


def read_run(run_dir: Path) -> RunResult | None:
    """run.json of any schema version: renamed keys mapped, missing ones defaulted, unknown ones ignored
    with one warning per file. None when there is no file, or it is not a JSON object of a run."""
    path = run_dir / RUN_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        _warn_once(path, f"not readable as JSON ({e})")
        return None
    if not isinstance(data, dict):
        _warn_once(path, "not a JSON object")
        return None
    data = {RENAMED.get(k, k): v for k, v in data.items()}
    data.setdefault("schema_version", 0)
    data["variant"] = data.get("variant") or run_dir.name
    data["status"] = data.get("status") or FAILED  # a run with no status cannot be trusted as complete
    unknown = sorted(data.keys() - _FIELDS.keys())
    if unknown:
        version = data["schema_version"]
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        why = f"written by a newer bench, schema {version} > {SCHEMA_VERSION}" if newer else "unknown to this bench"
        _warn_once(path, f"ignoring {len(unknown)} key(s) ({why}): {', '.join(unknown)}")
    # Missing or null keys take their defaults, so every reader can iterate the containers.
    result = RunResult(**{k: v for k, v in data.items() if k in _FIELDS and v is not None})
    wrong = [f for f, t in _CONTAINERS.items() if not isinstance(getattr(result, f), t)]
    if wrong:
        _warn_once(path, f"wrong type for {', '.join(wrong)}")
        return None
    result.trials = [_trial(t) for t in result.trials if isinstance(t, dict)]
    return result


_CONTAINERS: dict[str, type] = {
    "trials": list, "stats": dict, "server_metrics": dict, "telemetry": list, "level_telemetry": list, "server": dict,
    "provenance": dict,
}  # fmt: skip


def trial_key(record: dict[str, Any]) -> tuple[int, int, float]:
    """(start, repeat, level): the trial a request record or a trial belongs to; older files lack `start`."""
    d = TRIAL_DEFAULTS
    return (
        int(record.get("start", d["start"])),
        int(record.get("repeat", d["repeat"])),
        float(record.get("level", d["level"])),
    )


def _trial(t: dict[str, Any]) -> dict[str, Any]:
    return TRIAL_DEFAULTS | {TRIAL_RENAMED.get(k, k): v for k, v in t.items()}


class RequestWriter:
    """Appends one JSON line per request and flushes it, so a crash keeps every finished request."""

    def __init__(self, path: Path, append: bool = False) -> None:
        self._f = path.open("a" if append else "w", encoding="utf-8")

    def write(self, record: RequestRecord) -> None:
        self._f.write(json.dumps(dataclasses.asdict(record), ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> RequestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_requests(run_dir: Path) -> Iterator[dict[str, Any]]:
    path = run_dir / REQUESTS_FILE
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            # A killed process can leave a torn last line; everything before it is intact.
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                return


def run_dirs(sweep_dir: Path) -> Iterable[Path]:
    return sorted(p.parent for p in sweep_dir.glob(f"*/{RUN_FILE}"))
