"""One variant's run: pre-flight, server up, replay, measure, server down, results on disk."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.core import clock, cpu, slo
from bench.core.config import (
    BenchConfig,
    RequestConfig,
    ServerConfig,
    check_request,
    check_server,
    resolve_server,
    to_repeats,
    value_at,
)
from bench.core.describe import run_stats, trial_stats
from bench.core.errors import BenchError, ConfigError, ServerError
from bench.core.records import (
    FAILED,
    INTERRUPTED,
    OK,
    PARTIAL,
    REQUESTS_FILE,
    RUN_FILE,
    SERVER_LOG,
    TELEMETRY_FILE,
    Provenance,
    RequestRecord,
    RequestWriter,
    RunResult,
    ServerInfo,
    Start,
    Trial,
    read_requests,
    read_run,
    trial_key,
    write_run,
)
from bench.run import load as loadplan
from bench.run import preflight, provenance, telemetry
from bench.run import prometheus as metrics
from bench.run.client import Endpoint, RequestTemplate, replay
from bench.run.dataset import QAItem, load_dataset
from bench.run.diagnose import diagnose
from bench.run.load import Level
from bench.run.models import resolve_model
from bench.run.server import (
    DEV_MODE_ENV,
    RemoteServer,
    Server,
    VllmServer,
    build_command,
    free_port,
    log_tail,
    reset_prefix_cache,
)

HUNG_AFTER_TIMEOUTS = 3
# A request that could not reach the server (refused, reset, dropped): the server may be dying.
CONNECTION_ERRORS = ("ClientConnectorError", "ServerDisconnectedError", "ClientOSError", "APIConnectionError")
DEATH_GRACE_S = 10.0  # how long a refused connection waits for the server process to be reaped


def pick_engine(engine: str) -> str:
    if engine != "auto":
        return engine
    return "cuda" if telemetry.gpu_count() > 0 else "cpu"


def config_hash(server: ServerConfig, cfg: BenchConfig, engine: str) -> str:
    """What makes two runs comparable; resume re-runs a variant whose hash changed."""
    fields = dataclasses.asdict(server)
    fields.pop("port")  # a picked port is no part of the experiment
    fields.pop("lossless")  # a declaration about the answers, not a setting
    key: dict[str, Any] = {
        "server": fields,
        # dataset.too_long came after runs were stored: left out at its default, so those runs still resume.
        "dataset": {k: v for k, v in dataclasses.asdict(cfg.dataset).items() if k != "too_long" or v != "skip"},
        **loadplan.hash_key(cfg.load, cfg.slo),
        "engine": engine,
    }
    _hash_request(key, cfg.request)
    if engine == "cpu" and not cfg.endpoint:  # the same settings run other kernels on another CPU
        key["cpu"] = cpu.detect().as_dict()
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


# Where stored runs hashed a request's fields before the request group: with the server's and the dataset's.
_REQUEST_HASHED_IN = {"max_tokens": "server", "system_prompt": "dataset"}


def _hash_request(key: dict[str, Any], request: RequestConfig) -> None:
    """The request's part of the config hash, placed as stored runs have it; later fields count only when set."""
    defaults = dataclasses.asdict(RequestConfig())
    for name, value in dataclasses.asdict(request).items():
        if name in _REQUEST_HASHED_IN:
            key[_REQUEST_HASHED_IN[name]][name] = value
        elif value != defaults[name]:
            key.setdefault("request", {})[name] = value


def make_server(server: ServerConfig, model: str, draft_model: str | None, log_path: Path) -> VllmServer:
    """The variant's server, not yet started: a free port unless one is configured."""
    port = server.port or free_port(server.host)
    env = dict(server.env)
    if server.api_key:
        env["VLLM_API_KEY"] = server.api_key  # an env var, so the key never shows in `ps` or the log
    cmd = build_command(server, model, port, draft_model)

    def progress(elapsed_s: float, phase: str) -> None:
        print(f"bench: {server.name}: starting the server, {elapsed_s:3.0f} s: {phase}", file=sys.stderr)

    return VllmServer(cmd, server.host, port, log_path, env, server.startup_timeout_s, on_progress=progress)


@contextmanager
def start_server(
    server: ServerConfig, model: str, draft_model: str | None, log_path: Path, on_command: Callable[[list[str]], None]
) -> Iterator[VllmServer]:
    """A healthy server for the block, stopped however it ends. A picked port can be taken between our
    check and the server's bind: one retry on another."""
    for attempt in (1, 2):
        srv = make_server(server, model, draft_model, log_path)
        on_command(srv.cmd)
        try:
            with srv:
                yield srv
            return
        except ServerError as e:
            if srv.startup_s is not None or server.port or attempt == 2 or "port was taken" not in str(e):
                raise
            print(f"bench: {server.name}: {e}; retrying on another port", file=sys.stderr)


def serve(
    cfg: BenchConfig, server: ServerConfig, model: str | None, run_dir: Path, result: RunResult
) -> ContextManager[Server]:
    """The variant's server as one protocol: a remote endpoint (checked, never started) or a local vLLM
    serving `model` (a local path)."""
    if cfg.endpoint or model is None:
        remote = RemoteServer(cfg.endpoint or "", server.api_key)
        result.server.endpoint = remote.base_url
        return remote
    draft = (server.speculative_config or {}).get("model")

    def on_command(cmd: list[str]) -> None:
        result.server.command, result.server.model_path = provenance.redact_args(cmd), model

    return start_server(server, model, resolve_model(draft) if draft else None, run_dir / SERVER_LOG, on_command)


class Watchdog:
    """Why the replay should stop, asked before each request: the server exited, or stopped answering."""

    def __init__(self, srv: Server, log_path: Path, request_timeout_s: float) -> None:
        self.srv, self.log_path, self.request_timeout_s = srv, log_path, request_timeout_s
        self.recent: deque[RequestRecord] = deque(maxlen=HUNG_AFTER_TIMEOUTS)

    def seen(self, record: RequestRecord) -> None:
        self.recent.append(record)

    def __call__(self) -> str | None:
        last = self.recent[-1] if self.recent else None
        refused = last is not None and last.error is not None and last.error.startswith(CONNECTION_ERRORS)
        # A refused connection may be the server dying: wait for it to be reaped, so the status is decided
        # on its exit and not on a race (a SIGKILLed server read 'ok').
        code = self.srv.exited(DEATH_GRACE_S if refused else 0.0)
        if code is not None:
            hint = diagnose(log_tail(self.log_path, 400, self.srv.log_offset))  # this start's lines only
            return f"server exited with code {code} during the replay" + (f": {hint}" if hint else "")
        # A hung server would cost every remaining request its full timeout: stop after a few.
        timeouts = [r for r in self.recent if r.error and "Timeout" in r.error]
        if len(timeouts) == HUNG_AFTER_TIMEOUTS:
            return (
                f"server stopped answering: {HUNG_AFTER_TIMEOUTS} requests in a row timed out after "
                f"{self.request_timeout_s:.0f} s (load.request_timeout_s)"
            )
        return None


def replay_levels(
    endpoint: Endpoint,
    template: RequestTemplate,
    items: list[QAItem],
    plan: loadplan.Plan,
    repeats: int,
    on_record: Callable[[RequestRecord], None],
    watchdog: Callable[[], str | None],
    trials: list[Trial],
    seed: int = 0,
    start: int = 0,
    reset_cache: Callable[[], bool] | None = None,
    counters: Callable[[], dict[str, float] | None] | None = None,
) -> str | None:
    """The load levels `plan` asks for, one after the other (a fixed list, or a search deciding on the
    levels done), `repeats` passes each, in one server start. Each trial is appended to `trials` as it
    ends (also when interrupted). Before each pass `reset_cache` empties the prefix cache (so every pass
    meets the same cache); `counters` (a /metrics scrape) around each pass give its prefix-cache hit
    rate. Returns why it stopped early, or None."""
    done: list[loadplan.LevelRun] = []
    level_records: list[RequestRecord] = []  # this level's requests: what a load search decides on

    def record(rec: RequestRecord) -> None:
        if plan.decides:  # only a search looks at a level's requests; the rest stream to disk
            level_records.append(rec)
        on_record(rec)

    stopped: str | None = None
    while not stopped and (step := plan.next(done)) is not None:
        level, phase = step
        level_records.clear()
        level_wall = 0.0
        for rep in range(repeats):
            reset_ok = reset_cache() if reset_cache is not None else None
            pass_before = counters() if counters is not None else None
            t0 = time.perf_counter()
            try:
                stopped = replay(endpoint, template, items, level, record, watchdog, start=start, repeat=rep, seed=seed)
                stopped = stopped or watchdog()  # died during the last request
            finally:
                t1 = time.perf_counter()
                level_wall += t1 - t0
                pass_after = counters() if counters is not None else None
                hits = None
                if pass_before is not None and pass_after is not None:
                    hits = metrics.prefix_cache_hit_rate(metrics.delta(pass_before, pass_after))
                kind = "rate" if level.rate is not None else "concurrency"
                # The trial's window on the telemetry clock: per-level utilization and energy.
                trials.append(Trial(start, rep, level.value, kind, phase, t1 - t0, clock.wall(t0), clock.wall(t1),
                                    reset_ok, hits))  # fmt: skip
            if stopped:
                break
        done.append(loadplan.LevelRun(level, phase, list(level_records), level_wall))
    return stopped


def sweep_values(cfg: BenchConfig) -> dict[str, Any]:
    """The value of every swept key in this run (`sweep_params`), so the analyzer can draw against it."""
    out: dict[str, Any] = {}
    for key in cfg.sweep_params:
        node = value_at(cfg, key)
        # A config group (dataset=drcd) is named by its option's name.
        out[key] = node.get("name") if isinstance(node, dict) and "name" in node else node
    return out


def baseline_answers(cfg: BenchConfig) -> dict[Any, str] | None:
    """The baseline variant's answers in this results folder, for the identical-answer SLO; None if not run."""
    if cfg.run_name == cfg.baseline_variant:
        return None
    return slo.baseline_answers(read_requests(Path(cfg.out_dir) / cfg.baseline_variant)) or None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _start_done(previous: RunResult, start: int) -> bool:
    """Whether an earlier run already measured this server start completely (resume skips it)."""
    if not previous.starts:  # written before starts were recorded: one start, the run's own status
        return start == 0 and previous.status == OK
    return any(s.start == start and s.status == OK for s in previous.starts)


def _drop_start(result: RunResult, run_dir: Path, start: int) -> None:
    """Forget an earlier, unfinished attempt at this start before measuring it again."""
    result.trials = [t for t in result.trials if t.start != start]
    result.starts = [s for s in result.starts if s.start != start]
    kept = [r for r in read_requests(run_dir) if int(r.get("start", 0)) != start]
    with (run_dir / REQUESTS_FILE).open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)


def run_variant(cfg: BenchConfig) -> RunResult:
    """One server start of a variant (`cfg.start`), added to the variant's folder; start 0 begins it afresh.
    Never raises for a failed start: the failure is the result. Ctrl-C is recorded, then re-raised."""
    loadplan.check(cfg.load)
    engine = pick_engine(cfg.engine)
    if engine not in cfg.engines:
        raise ConfigError(f"no engine profile {engine!r} in `engines`; have: {', '.join(cfg.engines)}")
    server = resolve_server(cfg.server, engine, cfg.engines[engine])
    check_server(server)
    check_request(cfg.request, server)
    run_dir = Path(cfg.out_dir) / cfg.run_name
    chash = config_hash(server, cfg, engine)
    repeats, k = to_repeats(cfg.repeats), cfg.start
    previous = read_run(run_dir)
    same = previous is not None and previous.config_hash == chash
    if cfg.resume and previous is not None and same and _start_done(previous, k):
        where = f" (start {k})" if repeats.starts > 1 else ""
        print(
            f"bench: {cfg.run_name}{where}: complete in {run_dir}, skipped (resume=false re-runs it)", file=sys.stderr
        )
        return previous

    run_dir.mkdir(parents=True, exist_ok=True)
    # The old run.json goes first: until the new one is written, this folder is not complete.
    (run_dir / RUN_FILE).unlink(missing_ok=True)
    if previous is not None and same and k > 0:
        result = previous  # a later start of the same run: its starts so far are kept
        _drop_start(result, run_dir, k)
    else:
        for name in (REQUESTS_FILE, TELEMETRY_FILE, SERVER_LOG):
            (run_dir / name).unlink(missing_ok=True)
        result = RunResult(variant=cfg.run_name, status=FAILED, config_hash=chash, started_at=_now())
        result.params = sweep_values(cfg)
        result.slo = dataclasses.asdict(cfg.slo)
        found = provenance.collect() | {"engine": engine} | provenance.of_python(server.python)
        result.provenance = Provenance.from_dict(found)
        config = dataclasses.asdict(server) | {"env": provenance.redact_env(server.env), "api_key": None}
        config["max_tokens"] = cfg.request.max_tokens  # where run.json has always kept it
        result.server = ServerInfo(config=config, engine=engine, prefix_cache=repeats.prefix_cache)
    entry = Start(start=k, status=FAILED, started_at=_now())
    try:
        _run(cfg, server, engine, run_dir, result, entry)
    except BenchError as e:
        entry.status, entry.reason = FAILED, str(e)
    except KeyboardInterrupt:
        entry.status = INTERRUPTED
        entry.reason = "interrupted (Ctrl-C or SIGTERM); re-run the same command to resume"
        raise
    finally:
        entry.finished_at = _now()
        result.starts = sorted([*result.starts, entry], key=lambda s: s.start)
        result.finished_at = entry.finished_at
        _finish(result, run_dir)
        if result.status != OK and (run_dir / SERVER_LOG).exists():
            result.log_tail = log_tail(run_dir / SERVER_LOG)
        write_run(run_dir, result)
    return result


def warmup_items(cfg: BenchConfig, measured: list[QAItem]) -> list[QAItem]:
    """Warm-up requests from questions outside the measured set, on passages it does not use, so the
    warm-up leaves nothing in the prefix cache that a measured request could hit; built-in stand-ins
    where the dataset has no such question."""
    n = cfg.load.warmup_requests
    if n <= 0:
        return []
    used = {it.id for it in measured}
    passages = {it.context for it in measured}
    pool = load_dataset(dataclasses.replace(cfg.dataset, sample_size=None)) if cfg.dataset.sample_size else measured
    outside = [it for it in pool if it.id not in used and it.context not in passages]
    while len(outside) < n:  # a stand-in shares nothing with the dataset but the chat template
        i = len(outside)
        context = f"Warm-up note {i}: the lighthouse keeper logged {i + 3} ships before noon."
        outside.append(QAItem(f"warmup-{i}", "How many ships were logged?", context, [str(i + 3)], "en"))
    return outside[:n]


def _run(cfg: BenchConfig, server: ServerConfig, engine: str, run_dir: Path, result: RunResult, entry: Start) -> None:
    items = load_dataset(cfg.dataset)
    repeats, k = to_repeats(cfg.repeats), cfg.start
    reset = repeats.prefix_cache == "reset"
    model: str | None = None
    if not cfg.endpoint:
        caps = cpu.detect()
        # Refusals that need no model first: making one (an AWQ quantization) takes minutes.
        refusal = preflight.gpu_shortage(server, engine) or preflight.missing_kernel(server.model, None, engine, caps)
        if not refusal:
            model = resolve_model(server.model)
            refusal = preflight.indivisible_heads(server, model) or preflight.missing_kernel(
                server.model, model, engine, caps
            )
        if refusal or model is None:
            entry.reason = refusal
            return
        items = _fit_prompts(cfg, server, model, items, result)
    # The reset endpoint is served in vLLM's dev mode only; set here, so it is no part of the config hash.
    started = dataclasses.replace(server, env={**server.env, **DEV_MODE_ENV}) if reset else server
    with serve(cfg, started, model, run_dir, result) as srv:
        if srv.models and server.served_model_name not in srv.models:  # an endpoint serves its own name
            server = dataclasses.replace(server, served_model_name=srv.models[0])
            result.server.served_model_name = server.served_model_name
        entry.startup_s = srv.startup_s
        entry.startup_phases_s = dict(srv.startup_phases_s)
        if engine == "cpu" and model is not None:  # the kernel library vLLM really loaded
            result.server.kernel_library_loaded = cpu.loaded_library(srv.pids())
        endpoint = Endpoint(srv.base_url, server.api_key, cfg.load.request_timeout_s, cfg.load.client)
        template = RequestTemplate(server.served_model_name, cfg.request)
        # First requests pay one-off costs; not measured, and not from the measured set (see warmup_items).
        replay(endpoint, template, warmup_items(cfg, items), Level(1), lambda r: None)
        before = metrics.scrape(srv.base_url, server.api_key)
        objectives = dataclasses.asdict(cfg.slo)
        answers = baseline_answers(cfg) if cfg.slo.identical_to_baseline else None
        plan = loadplan.make_plan(cfg.load, len(items), objectives, answers)
        n_planned = plan.planned_requests() * repeats.passes
        watchdog = Watchdog(srv, run_dir / SERVER_LOG, cfg.load.request_timeout_s)
        desc = f"{cfg.run_name} start {k}" if repeats.starts > 1 else cfg.run_name
        with (
            RequestWriter(run_dir / REQUESTS_FILE, append=True) as writer,
            # An endpoint's server is elsewhere: this machine's CPU or GPUs would say nothing about it.
            telemetry.Sampler(0 if cfg.endpoint else cfg.telemetry_interval_s, engine == "cuda", srv.pids) as sampler,
            metrics.KvPeakPoller(srv.base_url, server.api_key) as kv,
            tqdm(total=n_planned, desc=desc, unit="req", file=sys.stderr) as bar,
        ):

            def record(rec: RequestRecord) -> None:
                writer.write(rec)
                watchdog.seen(rec)
                bar.update(1)
                if rec.error:
                    bar.set_postfix_str(f"failed: {rec.error[:40]}")

            trials: list[Trial] = []
            try:
                stopped = replay_levels(
                    endpoint, template, items, plan, repeats.passes, record, watchdog, trials, cfg.dataset.seed, k,
                    (lambda: reset_prefix_cache(srv.base_url, server.api_key)) if reset else None,
                    lambda: metrics.scrape(srv.base_url, server.api_key),
                )  # fmt: skip
            finally:
                result.trials += trials
                telemetry.write_samples(run_dir / TELEMETRY_FILE, sampler.samples, append=True)
                if plan.decides:
                    result.search = {"mode": plan.mode, **plan.outcome}
        after = metrics.scrape(srv.base_url, server.api_key)
        if before is not None and after is not None:
            entry.counters = metrics.delta(before, after)
        entry.kv_cache_usage_peak = kv.peak
        entry.telemetry = telemetry.summarize(sampler.samples, None)
        if k == 0:  # per-level windows of the first start (a level's energy over several starts: future work)
            result.level_telemetry = level_telemetry(sampler.samples, trials)
        if reset and not all(t.prefix_cache_reset for t in trials):
            print(
                f"bench: {cfg.run_name}: the server did not reset its prefix cache between passes (an endpoint:"
                " start it with VLLM_SERVER_DEV_MODE=1, or set repeats.prefix_cache=keep)",
                file=sys.stderr,
            )
    entry.shutdown_s = srv.shutdown_s
    if stopped:
        entry.status = PARTIAL
        entry.reason = f"{stopped}; {bar.n} of {n_planned} requests measured and kept"
    else:
        entry.status = OK


def _status(starts: list[Start]) -> tuple[str, str | None]:
    """The run's status: ok when every start is; else the first start that is not, and why."""
    bad = [s for s in starts if s.status != OK]
    if not bad:
        return OK, None
    first = bad[0]
    reason = first.reason
    if len(starts) > 1 and reason:
        reason = f"start {first.start}: {reason}"
    return first.status, reason


def _sum(values: list[Any]) -> float | None:
    nums = [v for v in values if v is not None]
    return float(sum(nums)) if nums else None


def level_telemetry(samples: list[telemetry.Sample], trials: list[Trial]) -> list[dict[str, Any]]:
    """Per load level and device, the telemetry summary over that level's trial windows only."""
    out = []
    windowed = [(t.level, t.t_start, t.t_end) for t in trials if t.t_start is not None and t.t_end is not None]
    for level in sorted({lv for lv, _, _ in windowed}):
        windows = [(t0, t1) for lv, t0, t1 in windowed if lv == level]
        out += [{"level": level} | d for d in telemetry.summarize(samples, None, windows)]
    return out


def _fit_prompts(
    cfg: BenchConfig, server: ServerConfig, model: str, items: list[QAItem], result: RunResult
) -> list[QAItem]:
    """The prompts to replay under `dataset.too_long`, counted with the served model's tokenizer."""
    template = RequestTemplate(server.served_model_name, cfg.request)
    messages = [template.body(item)["messages"] for item in items]
    counts = preflight.prompt_tokens(model, messages)
    fit = preflight.fit_prompts(items, counts, server, cfg.request, cfg.dataset.too_long)
    result.prompts = fit.as_dict()
    kept, note = preflight.apply_policy(items, fit)
    if note:
        result.prompts["note"] = note
        print(f"bench: {cfg.run_name}: {note}", file=sys.stderr)
    return kept


def final_status(status: str, n_requests: int, n_failed: int) -> str:
    """What happened decides the status: a replay that ran to its end is ok only if no request failed."""
    if status != OK or not n_requests or not n_failed:
        return status
    return FAILED if n_failed == n_requests else PARTIAL


def _finish(result: RunResult, run_dir: Path) -> None:
    """Counts and stats from what is on disk, so an interrupted run reports exactly what it kept."""
    result.status, result.reason = _status(result.starts)
    result.startup_s = _sum([s.startup_s for s in result.starts])
    result.shutdown_s = _sum([s.shutdown_s for s in result.starts])
    counted = [s.counters for s in result.starts if s.counters is not None]
    if counted:
        total: dict[str, float] = {}
        for counters in counted:
            for key, v in counters.items():
                total[key] = total.get(key, 0.0) + v
        peaks = [
            s.kv_cache_usage_peak for s in result.starts if s.counters is not None and s.kv_cache_usage_peak is not None
        ]
        result.server_metrics = metrics.summarize_delta(total, max(peaks) if peaks else None)
    else:
        result.server_metrics = {"available": False}
    result.telemetry = telemetry.merge_summaries([s.telemetry for s in result.starts if s.telemetry])
    records = list(read_requests(run_dir))
    failed = [r for r in records if r["error"]]
    result.n_requests, result.n_failed, result.n_ok = len(records), len(failed), len(records) - len(failed)
    walls = [t.wall_clock_s for t in result.trials if t.wall_clock_s is not None]
    result.replay_s = sum(walls) if walls else None
    if walls:
        result.wall_clock_s = float(statistics.median(walls))
        for t in result.trials:
            if t.wall_clock_s is not None:
                figures = trial_stats([r for r in records if trial_key(r) == t.key], t.wall_clock_s)
                t.figures = {k: v for k, v in figures.items() if k != "wall_clock_s"}
    result.stats = run_stats(records, result.replay_s)
    tokens = result.stats.get("output_tokens")
    for device in result.telemetry:
        if device.get("energy_j") is not None and tokens:
            device["j_per_output_token"] = device["energy_j"] / tokens
    for device in result.level_telemetry:
        level_tokens = sum(
            r["output_tokens"] or 0 for r in records if not r["error"] and r.get("level", 1.0) == device["level"]
        )
        if device.get("energy_j") is not None and level_tokens:
            device["j_per_output_token"] = device["energy_j"] / level_tokens
    status = final_status(result.status, result.n_requests, result.n_failed)
    if status != result.status:
        # Healthy server, requests refused (a kernel this build lacks, a prompt too long): say why.
        hint = diagnose(log_tail(run_dir / SERVER_LOG, 400)) or failed[0]["error"]
        share = "every request" if status == FAILED else f"{result.n_failed} of {result.n_requests} requests"
        result.status, result.reason = status, f"{share} failed: {hint}"
    note = result.prompts.get("note")
    if note and note not in (result.reason or ""):  # skipped or kept long prompts show beside any status
        result.reason = f"{result.reason}; {note}" if result.reason else note
