"""Tracing's settings and the receiver's address (the receiver itself and the join: bench/run/tracing.py)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import ConfigError


@dataclass
class TracingConfig:
    """vLLM's per-request spans (`--otlp-traces-endpoint`) received by bench and joined to the requests."""

    # Off by default: README "Where each request's time went inside the server: tracing" gives its cost and why.
    enabled: bool = False
    # Where bench's OTLP/HTTP receiver listens, HOST:PORT (port 0: a free one). The servers bench starts export
    # to it on this machine; endpoint mode needs an address the remote server reaches, e.g. 0.0.0.0:4318.
    listen: str = "127.0.0.1:0"
    # After the replay, how long to wait for spans still in vLLM's exporter (it sends every 5 s).
    wait_s: float = 20.0


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:4318` for IPv6) as (host, port); ValueError naming the value otherwise."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 0.0.0.0:4318; port 0 picks a free one)")
    return host, int(port)


def check_listen(value: str) -> None:
    try:
        parse_listen(value)
    except ValueError as e:
        raise ConfigError(f"tracing.listen={e}") from None
