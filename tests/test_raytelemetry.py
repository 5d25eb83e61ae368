"""Telemetry from every node of a Ray cluster: an actor per node samples there (one node on this machine)."""

from __future__ import annotations

import time

import pytest

from bench.run import raycluster
from bench.run.raytelemetry import ClusterSampler


def test_each_node_of_a_local_cluster_is_sampled_and_named():
    ray = pytest.importorskip("ray", reason="bash scripts/setup.sh test (installs ray)")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        assert raycluster.ray_connected()
        with ClusterSampler(0.1) as sampler:
            time.sleep(1.0)
        info = raycluster.describe()
    finally:
        ray.shutdown()
    assert len(sampler.nodes) == info["nodes"] == 1  # this machine is the one node
    node = sampler.nodes[0]
    devices = {s.device for s in sampler.samples}
    # No GPU here: psutil's per-core figures, named after the node they were taken on.
    assert f"{node}/cpu0" in devices and all(d.startswith(f"{node}/") for d in devices)
    assert {s.source for s in sampler.samples} == {"psutil"}
    assert len([s for s in sampler.samples if s.device == f"{node}/cpu0"]) >= 5
    assert not raycluster.ray_connected()
