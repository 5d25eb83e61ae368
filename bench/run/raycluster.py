"""The Ray cluster a run uses: a running one's address, or a local head started for one server start; what it was."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.core.config import ServerConfig
from bench.core.errors import MissingPartError
from bench.core.secrets import redact_url


def ray_connected() -> bool:
    """Whether this process is connected to a Ray cluster: a job the Ray launcher placed, or a server start on
    the ray backend. Ray is not imported to find out: importing it costs every other run a second or two."""
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def describe() -> dict[str, Any]:
    """The connected cluster as provenance records it: Ray's version, the nodes alive, the address without
    credentials, and the node this process runs on (Ray's auth token never leaves ~/.ray)."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    context = ray.get_runtime_context()
    here = context.get_node_id()
    ip = next((n.get("NodeManagerAddress") for n in nodes if n.get("NodeID") == here), None)
    return {
        "ray_version": ray.__version__,
        "address": redact_url(str(context.gcs_address)),
        "nodes": len(nodes),
        "node_ip": ip,
        "cluster_cpus": ray.cluster_resources().get("CPU", 0),
        "cluster_gpus": ray.cluster_resources().get("GPU", 0),
    }


@contextmanager
def for_server(server: ServerConfig) -> Iterator[tuple[dict[str, str], dict[str, Any] | None]]:
    """(the server's extra environment, the cluster's provenance) for the block. Only the ray backend needs a
    cluster: `server.ray_address` names a running one; else the cluster this job runs in (the Ray launcher);
    else a local head, started here and stopped when the block ends, so no Ray process outlives the run."""
    if server.distributed_executor_backend != "ray":
        yield {}, None
        return
    try:
        import ray
    except ImportError:
        raise MissingPartError(
            f"server {server.name}: distributed_executor_backend=ray needs Ray: run `bash scripts/setup.sh cluster`"
            " (or pip install 'bench-vllm[cluster]')"
        ) from None

    joined = ray.is_initialized()  # a job the Ray launcher placed: its own cluster, whatever ray_address says
    if not joined and server.ray_address:
        ray.init(address=server.ray_address, logging_level=logging.WARNING)
    elif not joined:
        # All of this machine's CPUs: vLLM's CPU workers and the GPU workers' drivers both ask Ray for CPUs.
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
    try:
        info = describe() | {"local_head": not joined and not server.ray_address}
        # vLLM's engine joins this cluster (ray.init(address=RAY_ADDRESS)) instead of starting its own.
        yield {"RAY_ADDRESS": str(ray.get_runtime_context().gcs_address)}, info
    finally:
        if not joined:
            ray.shutdown()  # stops a local head's processes; only disconnects from a running cluster
