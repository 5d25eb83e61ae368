"""A two-variant sweep on the real CPU engine through the Ray launcher, on a local Ray head it starts and stops."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from tests.conftest import BENCH_RUN, require_engine
from tests.test_ray_launcher import ray_processes

pytestmark = pytest.mark.server


def test_a_ray_sweep_of_two_variants_on_the_cpu_engine(tmp_path):
    require_engine()
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="bash scripts/setup.sh test (installs ray)")
    before = set(ray_processes())
    out = tmp_path / "sweep"
    p = subprocess.run(
        [*BENCH_RUN, "-m", "hydra/launcher=ray", "server=single,spec_ngram", "engine=cpu", "engines.cpu.dtype=float32",
         f"out_dir={out}", "dataset.sample_size=3"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    assert "each Ray job asks for" in p.stderr
    for variant in ("single", "spec_ngram"):
        run = json.loads((out / variant / "run.json").read_text())
        assert run["status"] == "ok" and run["n_ok"] == 3, run.get("reason")
        assert run["provenance"]["ray"]["nodes"] == 1
    assert list(pd.read_csv(out / "summary.csv")["variant"]) == ["single", "spec_ngram"]
    analyzed = subprocess.run([*BENCH_RUN[:-1], "analyze", str(out)], capture_output=True, text=True)
    assert analyzed.returncode == 0, analyzed.stderr[-2000:]
    assert set(ray_processes()) <= before, "the local Ray head outlived the sweep"
