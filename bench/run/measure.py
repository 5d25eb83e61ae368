"""One server start's measured replay: warm-up, its load levels and passes, and what watches them."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import deque
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tqdm import tqdm

from bench.core import clock, slo
from bench.core.config import BenchConfig, Repeats, ServerConfig, to_repeats
from bench.core.files import RequestWriter, read_requests
from bench.core.records import REQUESTS_FILE, SERVER_LOG, TELEMETRY_FILE, RequestRecord, RunResult, Start, Trial
from bench.run import prometheus as metrics
from bench.run import raycluster, telemetry
from bench.run.client import Endpoint, RequestTemplate, replay
from bench.run.dataset import QAItem, load_dataset
from bench.run.diagnose import diagnose
from bench.run.load import Level, LevelRun, Plan, make_plan
from bench.run.raytelemetry import ClusterSampler
from bench.run.server import Server, log_tail, reset_prefix_cache

HUNG_AFTER_TIMEOUTS = 3
# A request that could not reach the server (refused, reset, dropped): the server may be dying.
CONNECTION_ERRORS = ("ClientConnectorError", "ServerDisconnectedError", "ClientOSError", "APIConnectionError")
DEATH_GRACE_S = 10.0  # how long a refused connection waits for the server process to be reaped


@dataclass
class Job:
    """One server start of a variant as it runs: its settings, and the records it fills in."""

    cfg: BenchConfig
    server: ServerConfig  # resolved on the engine; once started, named as the server answers to
    engine: str
    run_dir: Path
    result: RunResult  # the variant's record, every start so far
    entry: Start  # this start's part of it
    # The warm-up's trace ids: their spans are expected, not requests that failed to join (tracing.enabled).
    warmup_trace_ids: set[str] = dataclasses.field(default_factory=set)

    @property
    def repeats(self) -> Repeats:
        return to_repeats(self.cfg.repeats)


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


@dataclass(frozen=True)
class Replay:
    """What every pass of one server start shares: where requests go, what they say, which items, which start."""

    endpoint: Endpoint
    template: RequestTemplate
    items: list[QAItem]
    seed: int = 0
    start: int = 0


@dataclass(frozen=True)
class PassHooks:
    """Around each pass: `reset_cache` empties the prefix cache first (so every pass meets the same cache);
    `counters` (a /metrics scrape) before and after give the pass's prefix-cache hit rate and server phases."""

    reset_cache: Callable[[], bool] | None = None
    counters: Callable[[], dict[str, float] | None] | None = None


def run_pass(
    run: Replay, level: Level, phase: str, repeat: int, on_record: Callable[[RequestRecord], None],
    watchdog: Callable[[], str | None], hooks: PassHooks, trials: list[Trial],
) -> str | None:  # fmt: skip
    """One pass over the items at one level; its trial is appended to `trials` however it ends."""
    reset_ok = hooks.reset_cache() if hooks.reset_cache is not None else None
    before = hooks.counters() if hooks.counters is not None else None
    t0 = time.perf_counter()
    try:
        stopped = replay(run.endpoint, run.template, run.items, level, on_record, watchdog,
                         start=run.start, repeat=repeat, seed=run.seed)  # fmt: skip
        return stopped or watchdog()  # died during the last request
    finally:
        t1 = time.perf_counter()
        after = hooks.counters() if hooks.counters is not None else None
        hits, phases = None, {}
        if before is not None and after is not None:
            d = metrics.delta(before, after)
            hits, phases = metrics.prefix_cache_hit_rate(d), metrics.phase_figures(d)
        kind = "rate" if level.rate is not None else "concurrency"
        # The trial's window on the telemetry clock: per-level utilization and energy. The server's phases over
        # this pass only: per load level, as the client's figures are.
        trials.append(Trial(run.start, repeat, level.value, kind, phase, t1 - t0, clock.wall(t0), clock.wall(t1),
                            reset_ok, hits, {k: v for k, v in phases.items() if v is not None}))  # fmt: skip


def replay_levels(
    run: Replay, plan: Plan, passes: int, on_record: Callable[[RequestRecord], None],
    watchdog: Callable[[], str | None], trials: list[Trial], hooks: PassHooks = PassHooks(),
) -> str | None:  # fmt: skip
    """The load levels `plan` asks for, one after the other (a fixed list, or a search deciding on the
    levels done), `passes` passes each, in one server start. Returns why it stopped early, or None."""
    done: list[LevelRun] = []
    level_records: list[RequestRecord] = []  # this level's requests: what a load search decides on

    def record(rec: RequestRecord) -> None:
        if plan.decides:  # only a search looks at a level's requests; the rest stream to disk
            level_records.append(rec)
        on_record(rec)

    stopped: str | None = None
    while not stopped and (step := plan.next(done)) is not None:
        level, phase = step
        level_records.clear()
        first = len(trials)
        for rep in range(passes):
            stopped = run_pass(run, level, phase, rep, record, watchdog, hooks, trials)
            if stopped:
                break
        level_wall = sum(t.wall_clock_s or 0.0 for t in trials[first:])
        done.append(LevelRun(level, phase, list(level_records), level_wall))
    return stopped


class Watch:
    """What watches the measured replay, opened together and closed however it ends: the requests file, the
    watchdog, the progress bar, the telemetry sampler and the KV-cache poller."""

    def __init__(self, job: Job, srv: Server, n_planned: int) -> None:
        self.job, self.srv, self.n_planned = job, srv, n_planned
        self.watchdog = Watchdog(srv, job.run_dir / SERVER_LOG, job.cfg.load.request_timeout_s)
        self._stack = ExitStack()

    def __enter__(self) -> Watch:
        cfg = self.job.cfg
        desc = f"{cfg.run_name} start {cfg.start}" if self.job.repeats.starts > 1 else cfg.run_name
        # An endpoint's server is elsewhere: this machine's CPU or GPUs would say nothing about it.
        interval = 0 if cfg.endpoint else cfg.telemetry_interval_s
        with ExitStack() as stack:
            self.writer = stack.enter_context(RequestWriter(self.job.run_dir / REQUESTS_FILE, append=True))
            self.sampler = self._sampler(interval)
            stack.enter_context(self.sampler)  # both return themselves; entered apart, so mypy keeps the union
            self.kv = stack.enter_context(metrics.KvPeakPoller(self.srv.base_url, self.job.server.api_key))
            self.bar = stack.enter_context(tqdm(total=self.n_planned, desc=desc, unit="req", file=sys.stderr))
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return self._stack.__exit__(kind, exc, tb)

    def _sampler(self, interval: float) -> telemetry.Sampler | ClusterSampler:
        """A server on vLLM's Ray executor may have workers on other nodes: a sampler on each node of the cluster
        (bench/run/raytelemetry.py); every other server, this machine's sampler."""
        if self.job.server.distributed_executor_backend == "ray" and raycluster.ray_connected():
            return ClusterSampler(interval)
        return telemetry.Sampler(interval, self.job.engine == "cuda", self.srv.pids)

    def record(self, rec: RequestRecord) -> None:
        self.writer.write(rec)
        self.watchdog.seen(rec)
        self.bar.update(1)
        if rec.error:
            self.bar.set_postfix_str(f"failed: {rec.error[:40]}")


def measure(job: Job, srv: Server, items: list[QAItem]) -> str | None:
    """Warm-up, then the measured levels and passes; what the server and the telemetry saw goes on the records.
    Returns why the replay stopped early, with how many requests it kept, or None."""
    cfg, api_key = job.cfg, job.server.api_key
    endpoint = Endpoint(srv.base_url, api_key, cfg.load.request_timeout_s, cfg.load.client)
    run = Replay(endpoint, RequestTemplate(job.server.served_model_name, cfg.request), items, cfg.dataset.seed,
                 cfg.start)  # fmt: skip
    # First requests pay one-off costs; not measured, and not from the measured set (see warmup_items).
    warmed = job.warmup_trace_ids
    replay(endpoint, run.template, warmup_items(cfg, items), Level(1), lambda r: warmed.add(r.trace_id or ""))
    before = metrics.scrape(srv.base_url, api_key)
    answers = baseline_answers(cfg) if cfg.slo.identical_to_baseline else None
    plan = make_plan(cfg.load, len(items), dataclasses.asdict(cfg.slo), answers)
    n_planned = plan.planned_requests() * job.repeats.passes
    reset = (lambda: reset_prefix_cache(srv.base_url, api_key)) if job.repeats.prefix_cache == "reset" else None
    hooks = PassHooks(reset, lambda: metrics.scrape(srv.base_url, api_key))
    trials: list[Trial] = []
    with Watch(job, srv, n_planned) as watch:
        try:
            stopped = replay_levels(run, plan, job.repeats.passes, watch.record, watch.watchdog, trials, hooks)
        finally:
            job.result.trials += trials
            telemetry.write_samples(job.run_dir / TELEMETRY_FILE, watch.sampler.samples, append=True)
            if plan.decides:
                job.result.search = {"mode": plan.mode, **plan.outcome}
    _note_observed(job, before, metrics.scrape(srv.base_url, api_key), watch, trials)
    return f"{stopped}; {watch.bar.n} of {n_planned} requests measured and kept" if stopped else None


def _note_observed(
    job: Job, before: dict[str, float] | None, after: dict[str, float] | None, watch: Watch, trials: list[Trial]
) -> None:
    """The server's counters, its KV-cache peak and the telemetry over the replay, on this start's entry."""
    entry, samples = job.entry, watch.sampler.samples
    if before is not None and after is not None:
        entry.counters = metrics.delta(before, after)
    entry.kv_cache_usage_peak = watch.kv.peak
    entry.telemetry = telemetry.summarize(samples, None)
    if job.cfg.start == 0:  # per-level windows of the first start (a level's energy over several starts: future work)
        job.result.level_telemetry = level_telemetry(samples, trials)
    if job.repeats.prefix_cache == "reset" and not all(t.prefix_cache_reset for t in trials):
        print(
            f"bench: {job.cfg.run_name}: the server did not reset its prefix cache between passes (an endpoint:"
            " start it with VLLM_SERVER_DEV_MODE=1, or set repeats.prefix_cache=keep)",
            file=sys.stderr,
        )


def baseline_answers(cfg: BenchConfig) -> dict[Any, str] | None:
    """The baseline variant's answers in this results folder, for the identical-answer SLO; None if not run."""
    if cfg.run_name == cfg.baseline_variant:
        return None
    return slo.baseline_answers(read_requests(Path(cfg.out_dir) / cfg.baseline_variant)) or None


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


def level_telemetry(samples: list[telemetry.Sample], trials: list[Trial]) -> list[dict[str, Any]]:
    """Per load level and device, the telemetry summary over that level's trial windows only."""
    out = []
    windowed = [(t.level, t.t_start, t.t_end) for t in trials if t.t_start is not None and t.t_end is not None]
    for level in sorted({lv for lv, _, _ in windowed}):
        windows = [(t0, t1) for lv, t0, t1 in windowed if lv == level]
        out += [{"level": level} | d for d in telemetry.summarize(samples, None, windows)]
    return out
