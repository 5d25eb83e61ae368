"""Telemetry from every node of a Ray cluster: one small actor per node runs bench's own sampler there."""

from __future__ import annotations

import dataclasses
from types import TracebackType
from typing import Any

from bench.run.telemetry import Sample, Sampler


class _NodeSampler:
    """On one node: telemetry.Sampler (NVML where the node has GPUs, else psutil's per-core figures; the server's
    processes live elsewhere, so no process tree here), its samples' devices named after the node."""

    def __init__(self, interval_s: float) -> None:
        import ray

        from bench.run.telemetry import gpu_count

        self.node = ray.util.get_node_ip_address()
        self.sampler = Sampler(interval_s, gpu_count() > 0, lambda: [])

    def start(self) -> str:
        self.sampler.__enter__()
        return self.node

    def stop(self) -> list[dict[str, Any]]:
        self.sampler.__exit__(None, None, None)
        return [dataclasses.asdict(s) | {"device": f"{self.node}/{s.device}"} for s in self.sampler.samples]


class ClusterSampler:
    """`with ClusterSampler(interval_s) as s:` samples every alive node of the connected cluster; `s.samples` after
    exit, as telemetry.Sampler's, with devices `NODE_IP/gpu0`. The actors take no CPU from Ray's accounting (a
    sampler must not keep a job's workers from being placed) and are pinned to their node."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.nodes: list[str] = []
        self._actors: list[Any] = []

    def __enter__(self) -> ClusterSampler:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if self.interval_s <= 0:
            return self
        actor = ray.remote(num_cpus=0)(_NodeSampler)
        for node in (n for n in ray.nodes() if n.get("Alive")):
            where = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
            self._actors.append(actor.options(scheduling_strategy=where).remote(self.interval_s))
        self.nodes = ray.get([a.start.remote() for a in self._actors])
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import ray

        try:
            for rows in ray.get([a.stop.remote() for a in self._actors], timeout=60):
                self.samples += [Sample(**row) for row in rows]
        finally:
            for a in self._actors:
                ray.kill(a)
