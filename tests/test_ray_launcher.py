"""The Ray launcher: a multirun's jobs placed by Ray land in one results folder, and say which cluster ran them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest

from bench.cli.overrides import ray_resources
from bench.run.server import VllmServer, free_port

ENDPOINT = str(Path(__file__).resolve().parents[1] / "benchmarks" / "instant_endpoint.py")


def ray_processes() -> list[int]:
    """Ray's own daemons on this machine (GCS, raylet, workers), which a test must not leave behind."""
    names = ("gcs_server", "raylet", "ray::", "dashboard", "log_monitor")
    return [
        p.pid
        for p in psutil.process_iter(["name", "cmdline"])
        if any(n in " ".join([p.info["name"] or "", *(p.info["cmdline"] or [])]) for n in names)
    ]


def test_ray_jobs_ask_for_the_sweeps_gpus_or_a_whole_cpu_node() -> None:
    ray = "hydra/launcher=ray"
    gpu = ray_resources(["+sweep=parallel", ray], gpus_here=2)
    assert "+hydra.launcher.ray.remote.num_gpus=2" in gpu
    cpu = ray_resources(["server=single", ray, "engine=cpu"], gpus_here=2)
    assert any(o.startswith("+hydra.launcher.ray.remote.num_cpus=") for o in cpu)
    mine = ["server=pp2", ray, "+hydra.launcher.ray.remote.num_gpus=4", "+hydra.launcher.ray.init.address=auto"]
    assert ray_resources(mine, gpus_here=8) == mine  # the user's own figures, and a running cluster, stand
    assert ray_resources(["server=pp2"], gpus_here=8) == ["server=pp2"]  # another launcher: untouched


def test_a_ray_sweep_writes_one_results_folder_and_stops_its_local_head(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="bash scripts/setup.sh test (installs ray)")
    before = set(ray_processes())
    port = free_port("127.0.0.1")
    # Endpoint mode against an instant stand-in: this test is about the launcher, not about vLLM.
    with VllmServer([sys.executable, ENDPOINT, str(port), "4"], "127.0.0.1", port, tmp_path / "e.log", {}, 30):
        p = subprocess.run(
            [sys.executable, "-m", "bench", "run", "-m", "hydra/launcher=ray", "server=single,spec_ngram",
             f"endpoint=http://127.0.0.1:{port}", f"out_dir={tmp_path / 'sweep'}", "dataset.sample_size=3"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    sweep = tmp_path / "sweep"
    for variant in ("single", "spec_ngram"):
        run = json.loads((sweep / variant / "run.json").read_text())
        assert run["status"] == "ok" and run["n_ok"] == 3
        ray = run["provenance"]["ray"]
        assert ray["nodes"] == 1 and ray["ray_version"] and ray["node_ip"]
    assert list(pd.read_csv(sweep / "summary.csv")["variant"]) == ["single", "spec_ngram"]
    assert (sweep / "report.html").exists()
    assert set(ray_processes()) <= before, "the local Ray head outlived the sweep"
