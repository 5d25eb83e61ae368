"""The variant's server for one start: a local vLLM made from its config (a taken port retried once), or an endpoint."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager
from pathlib import Path

from bench.core.config import BenchConfig, ServerConfig
from bench.core.errors import ConfigError, ServerError
from bench.core.records import SERVER_LOG, RunResult
from bench.core.secrets import redact_url
from bench.run import compile_cache, provenance, raycluster
from bench.run.endpoint import RemoteServer
from bench.run.models import resolve_model
from bench.run.server import Server, VllmServer, build_command, free_port
from bench.run.tracing import PROTOCOL_ENV

OTLP_FLAG = "--otlp-traces-endpoint"


def make_server(
    server: ServerConfig, model: str, draft_model: str | None, log_path: Path, otlp: str | None = None
) -> VllmServer:
    """The variant's server, not yet started: a free port unless one is configured; with `otlp`, exporting a span
    per request to that OTLP/HTTP endpoint (bench's receiver)."""
    port = server.port or free_port(server.host)
    env = dict(server.env)
    if server.api_key:
        env["VLLM_API_KEY"] = server.api_key  # an env var, so the key never shows in `ps` or the log
    cmd = build_command(server, model, port, draft_model)
    if otlp is not None:
        if any(a.split("=")[0] == OTLP_FLAG for a in server.extra_args):
            raise ConfigError(f"server {server.name}: extra_args sets {OTLP_FLAG}, and tracing.enabled=true sets it "
                              "to bench's receiver: drop one")  # fmt: skip
        # The flag is spelled so from vLLM 0.4 to 0.32; HTTP, as the receiver speaks (vLLM's default is gRPC).
        cmd += [OTLP_FLAG, otlp]
        env.update(PROTOCOL_ENV)

    def progress(elapsed_s: float, phase: str) -> None:
        print(f"bench: {server.name}: starting the server, {elapsed_s:3.0f} s: {phase}", file=sys.stderr)

    return VllmServer(cmd, server.host, port, log_path, env, server.startup_timeout_s, on_progress=progress)


@contextmanager
def start_server(
    server: ServerConfig,
    model: str,
    draft_model: str | None,
    log_path: Path,
    on_command: Callable[[list[str]], None],
    otlp: str | None = None,
) -> Iterator[VllmServer]:
    """A healthy server for the block, stopped however it ends. A picked port can be taken between our
    check and the server's bind: one retry on another."""
    for attempt in (1, 2):
        srv = make_server(server, model, draft_model, log_path, otlp)
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
    cfg: BenchConfig, server: ServerConfig, model: str | None, run_dir: Path, result: RunResult, otlp: str | None = None
) -> ContextManager[Server]:
    """The variant's server as one protocol: a remote endpoint (checked, never started) or a local vLLM
    serving `model` (a local path), exporting its spans to `otlp` when given."""
    if cfg.endpoint or model is None:
        remote = RemoteServer(cfg.endpoint or "", server.api_key)
        result.server.endpoint = redact_url(remote.base_url)
        return remote
    draft = (server.speculative_config or {}).get("model")

    def on_command(cmd: list[str]) -> None:
        result.server.command, result.server.model_path = provenance.redact_args(cmd), model

    draft_path = resolve_model(draft) if draft else None
    # After the config hash (runner): where the cache lives is no part of what is measured.
    server = dataclasses.replace(server, env=compile_cache.root_env(server.env, run_dir))
    return _local(server, model, draft_path, run_dir / SERVER_LOG, on_command, result, otlp)


@contextmanager
def _local(
    server: ServerConfig,
    model: str,
    draft: str | None,
    log: Path,
    on_command: Callable[[list[str]], None],
    result: RunResult,
    otlp: str | None,
) -> Iterator[VllmServer]:
    """A local vLLM, inside the Ray cluster its executor backend needs (none for mp)."""
    with raycluster.for_server(server) as (env, cluster):
        if cluster is not None:
            result.provenance.ray = cluster
            server = dataclasses.replace(server, env={**server.env, **env})
        cache = compile_cache.state(server.env, log.parent)
        with start_server(server, model, draft, log, on_command, otlp) as srv:
            srv.compile_cache, srv.compile_cache_bytes = cache, compile_cache.size_bytes(server.env)
            compile_cache.mark_started(server.env, log.parent)
            yield srv
