"""One variant's run: pre-flight, server up, replay, measure, server down, results on disk."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.core import cpu, runspec
from bench.core.checks import check_request, check_server
from bench.core.config import (
    BenchConfig,
    ServerConfig,
    resolve_server,
    to_repeats,
    value_at,
)
from bench.core.errors import BenchError, ConfigError, EndpointError, MissingPartError, PortInUseError
from bench.core.files import atomic_write_text, read_requests, read_run
from bench.core.identity import config_hash
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
    RunResult,
    ServerInfo,
    Start,
)
from bench.core.runspec import RunSpec
from bench.core.tracing import parse_listen
from bench.run import launch, preflight, provenance, raycluster, telemetry, tracing
from bench.run import load as loadplan
from bench.run.client import RequestTemplate
from bench.run.dataset import QAItem, load_dataset
from bench.run.finish import close, now
from bench.run.measure import Job, measure
from bench.run.server import DEV_MODE_ENV, Server


def pick_engine(engine: str) -> str:
    if engine != "auto":
        return engine
    return "cuda" if telemetry.gpu_count() > 0 else "cpu"


def spec_of(cfg: BenchConfig, server: ServerConfig, engine: str) -> RunSpec:
    """The run's RunSpec: `server` resolved for `engine`; the host CPU where the CPU engine picks kernels by it."""
    host_cpu = cpu.detect().as_dict() if engine == "cpu" and not cfg.endpoint else None
    return runspec.from_config(cfg, server, engine, host_cpu)


def sweep_values(cfg: BenchConfig) -> dict[str, Any]:
    """The value of every swept key in this run (`sweep_params`), so the analyzer can draw against it."""
    out: dict[str, Any] = {}
    for key in cfg.sweep_params:
        node = value_at(cfg, key)
        # A config group (dataset=drcd) is named by its option's name.
        out[key] = node.get("name") if isinstance(node, dict) and "name" in node else node
    return out


def _start_done(previous: RunResult, start: int) -> bool:
    """Whether an earlier run already measured this server start completely (resume skips it)."""
    if not previous.starts:  # written before starts were recorded: one start, the run's own status
        return start == 0 and previous.status == OK
    return any(s.start == start and s.status == OK for s in previous.starts)


def _drop_start(result: RunResult, run_dir: Path, start: int) -> None:
    """Forget an earlier, unfinished attempt at this start before measuring it again."""
    result.trials = [t for t in result.trials if t.start != start]
    result.starts = [s for s in result.starts if s.start != start]
    kept = [r for r in read_requests(run_dir) if int(r.get("start", 0)) != start]  # lines kept verbatim
    atomic_write_text(run_dir / REQUESTS_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))


def check_job(cfg: BenchConfig) -> ServerConfig:
    """What a job's config can only be checked against once its engine is known: the load's pacing, the engine
    profile, the variant resolved for that engine, the request against its context. The resolved server."""
    loadplan.check(cfg.load)
    engine = pick_engine(cfg.engine)
    if engine not in cfg.engines:
        raise ConfigError(f"no engine profile {engine!r} in `engines`; have: {', '.join(cfg.engines)}")
    server = resolve_server(cfg.server, engine, cfg.engines[engine])
    check_server(server)
    check_request(cfg.request, server)
    return server


def run_variant(cfg: BenchConfig) -> RunResult:
    """One server start of a variant (`cfg.start`), added to the variant's folder; start 0 begins it afresh.
    Never raises for a failed start: the failure is the result. Ctrl-C is recorded, then re-raised."""
    server = check_job(cfg)
    engine = pick_engine(cfg.engine)
    run_dir = Path(cfg.out_dir) / cfg.run_name
    spec = spec_of(cfg, server, engine)
    chash = config_hash(spec)
    previous = read_run(run_dir)
    same = previous if previous is not None and previous.config_hash == chash else None
    if cfg.resume and same is not None and _start_done(same, cfg.start):
        where = f" (start {cfg.start})" if to_repeats(cfg.repeats).starts > 1 else ""
        print(
            f"bench: {cfg.run_name}{where}: complete in {run_dir}, skipped (resume=false re-runs it)", file=sys.stderr
        )
        return same
    result = _begin(cfg, spec, server, run_dir, chash, same)
    job = Job(cfg, server, engine, run_dir, result, Start(start=cfg.start, status=FAILED, started_at=now()))
    try:
        _run(job)
    # Recorded in run.json, and bad input for the command (exit 2): an endpoint that is no OpenAI server, a port
    # in use, a part the settings need that is not installed.
    except (EndpointError, PortInUseError, MissingPartError) as e:
        job.entry.status, job.entry.reason = FAILED, str(e)
        raise
    except BenchError as e:
        job.entry.status, job.entry.reason = FAILED, str(e)
    except KeyboardInterrupt:
        job.entry.status = INTERRUPTED
        job.entry.reason = "interrupted (Ctrl-C or SIGTERM); re-run the same command to resume"
        raise
    finally:
        close(job.result, job.entry, run_dir)
    return job.result


def _begin(
    cfg: BenchConfig, spec: RunSpec, server: ServerConfig, run_dir: Path, chash: str, same: RunResult | None
) -> RunResult:
    """The record this start adds to: the same run's (a later start keeps the starts so far), else a new one."""
    run_dir.mkdir(parents=True, exist_ok=True)
    # The old run.json goes first: until the new one is written, this folder is not complete.
    (run_dir / RUN_FILE).unlink(missing_ok=True)
    if same is not None and cfg.start > 0:
        _drop_start(same, run_dir, cfg.start)
        return same
    for name in (REQUESTS_FILE, TELEMETRY_FILE, SERVER_LOG):
        (run_dir / name).unlink(missing_ok=True)
    result = RunResult(variant=cfg.run_name, status=FAILED, config_hash=chash, started_at=now(), spec=spec)
    result.params = sweep_values(cfg)
    found = provenance.collect() | {"engine": spec.engine} | provenance.of_python(server.python)
    result.provenance = Provenance.from_dict(found)
    if raycluster.ray_connected():  # a job the Ray launcher placed: on which node of which cluster
        result.provenance.ray = raycluster.describe()
    result.server = ServerInfo(engine=spec.engine)
    return result


def _run(job: Job) -> None:
    """Pre-flight, the server up, the measured replay, the server down; the start's entry says how it went."""
    cfg, entry = job.cfg, job.entry
    items = load_dataset(cfg.dataset)
    model: str | None = None
    if not cfg.endpoint:
        model, refusal = preflight.model_or_refusal(job.server, job.engine)
        if model is None:
            entry.reason = refusal
            return
        items = _fit_prompts(job, model, items)
    # The reset endpoint is served in vLLM's dev mode only; set here, so it is no part of the config hash.
    started = job.server
    if job.repeats.prefix_cache == "reset":
        started = dataclasses.replace(started, env={**started.env, **DEV_MODE_ENV})
    with _receiver(cfg) as rx, launch.serve(cfg, started, model, job.run_dir, job.result, _otlp(rx, model)) as srv:
        _note_start(job, srv, model)
        stopped = measure(job, srv, items)
        if rx is not None:  # while the server lives: its exporter sends the last spans some seconds later
            rx.wait_for(_traced(job), cfg.tracing.wait_s)
    entry.shutdown_s = srv.shutdown_s
    if rx is not None:
        _join_spans(job, rx)
    if stopped:
        entry.status, entry.reason = PARTIAL, stopped
    else:
        entry.status = OK


@contextmanager
def _receiver(cfg: BenchConfig) -> Iterator[tracing.Receiver | None]:
    """bench's OTLP receiver for this start when tracing.enabled, else None."""
    if not cfg.tracing.enabled:
        yield None
        return
    host, port = parse_listen(cfg.tracing.listen)
    try:
        rx = tracing.Receiver(host, port).__enter__()
    except OSError as e:
        raise PortInUseError(f"tracing.listen={cfg.tracing.listen}: cannot listen there: {e}") from None
    try:
        if cfg.endpoint:  # the remote server is told by its own command line (README "Tracing")
            print(f"bench: tracing: receiving OTLP/HTTP spans on {host}:{rx.port}", file=sys.stderr)
        yield rx
    finally:
        rx.__exit__()


def _otlp(rx: tracing.Receiver | None, model: str | None) -> str | None:
    return rx.endpoint if rx is not None and model is not None else None


def _traced(job: Job) -> list[str]:
    """This start's successful requests: the spans to wait for."""
    ours = [d for d in read_requests(job.run_dir) if int(d.get("start", 0)) == job.cfg.start]
    return [d["trace_id"] for d in ours if not d.get("error") and d.get("trace_id")]


def _join_spans(job: Job, rx: tracing.Receiver) -> None:
    """This start's request lines gain their spans' phases (requests.jsonl rewritten); the counts go on its entry."""
    lines = list(read_requests(job.run_dir))
    counts = tracing.join(lines, job.cfg.start, rx.collected, job.warmup_trace_ids)
    text = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in lines)
    atomic_write_text(job.run_dir / REQUESTS_FILE, text)
    job.entry.tracing = counts
    n, joined = counts["requests"], counts["joined"]
    share = f" ({joined / n:.0%})" if n else ""
    print(
        f"bench: {job.cfg.run_name}: tracing: {joined} of {n} requests joined to the server's spans{share}; "
        f"{counts['unmatched_spans']} spans matched no request",
        file=sys.stderr,
    )
    if counts["grpc_attempts"] and not counts["spans"]:
        print(f"bench: tracing: the server exports OTLP over gRPC; set {tracing.PROTOCOL_HINT}", file=sys.stderr)


def _note_start(job: Job, srv: Server, model: str | None) -> None:
    """What the started server says of itself, on the records; the name it serves the model under."""
    if srv.models and job.server.served_model_name not in srv.models:  # an endpoint serves its own name
        job.server = dataclasses.replace(job.server, served_model_name=srv.models[0])
        job.result.server.served_model_name = job.server.served_model_name
    job.entry.startup_s = srv.startup_s
    job.entry.startup_phases_s = dict(srv.startup_phases_s)
    job.entry.compile_cache, job.entry.compile_cache_bytes = srv.compile_cache, srv.compile_cache_bytes
    if job.engine == "cpu" and model is not None:  # the kernel library vLLM really loaded
        job.result.server.kernel_library_loaded = cpu.loaded_library(srv.pids())


def _fit_prompts(job: Job, model: str, items: list[QAItem]) -> list[QAItem]:
    """The prompts to replay under `dataset.too_long`, counted with the served model's tokenizer."""
    cfg, result = job.cfg, job.result
    template = RequestTemplate(job.server.served_model_name, cfg.request)
    counts = preflight.prompt_tokens(model, [template.body(item)["messages"] for item in items])
    fit = preflight.fit_prompts(items, counts, job.server, cfg.request, cfg.dataset.too_long)
    result.prompts = fit.as_dict()
    kept, note = preflight.apply_policy(items, fit)
    if note:
        result.prompts["note"] = note
        print(f"bench: {cfg.run_name}: {note}", file=sys.stderr)
    return kept
