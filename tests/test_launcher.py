"""Hydra launchers: a --multirun through submitit's local executor leaves the plain runner's results layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.cli.overrides import slurm_gpus
from bench.run.server import VllmServer, free_port

ENDPOINT = str(Path(__file__).resolve().parents[1] / "benchmarks" / "instant_endpoint.py")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install hydra-submitit-launcher")


def test_submitit_local_sweep_writes_one_results_folder(tmp_path):
    port = free_port("127.0.0.1")
    # Endpoint mode against an instant stand-in: this test is about the launcher, not about vLLM.
    with VllmServer([sys.executable, ENDPOINT, str(port), "4"], "127.0.0.1", port, tmp_path / "e.log", {}, 30):
        p = subprocess.run(
            [sys.executable, "-m", "bench", "run", "-m", "hydra/launcher=submitit_local", "server=single,spec_ngram",
             f"endpoint=http://127.0.0.1:{port}", f"out_dir={tmp_path / 'sweep'}", "dataset.sample_size=3",
             "hydra.launcher.timeout_min=5"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    sweep = tmp_path / "sweep"
    for variant in ("single", "spec_ngram"):
        run = json.loads((sweep / variant / "run.json").read_text())
        assert run["status"] == "ok" and run["n_ok"] == 3
        assert len((sweep / variant / "requests.jsonl").read_text().splitlines()) == 3
    assert list(pd.read_csv(sweep / "summary.csv")["variant"]) == ["single", "spec_ngram"]
    assert (sweep / "report.html").exists()


def test_slurm_jobs_ask_for_the_sweeps_largest_tp_x_pp() -> None:
    slurm = "hydra/launcher=submitit_slurm"
    assert slurm_gpus(["+sweep=parallel", slurm])[-1] == "hydra.launcher.gpus_per_node=2"
    assert slurm_gpus(["-m", "server=single,pp2", "server.tensor_parallel_size=4", slurm])[-1].endswith("=8")
    assert slurm_gpus(["server=single", slurm])[-1].endswith("=1")
    mine = ["+sweep=all", slurm, "hydra.launcher.gpus_per_node=8"]
    assert slurm_gpus(mine) == mine  # the user's own figure stands
    assert slurm_gpus(["+sweep=all", "hydra/launcher=submitit_local"]) == [
        "+sweep=all",
        "hydra/launcher=submitit_local",
    ]
