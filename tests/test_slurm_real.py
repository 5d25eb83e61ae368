"""submitit_slurm against a real one-node Slurm on this machine (scripts/slurm_local.sh), on the real CPU engine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import require_engine

pytestmark = pytest.mark.server
ROOT = Path(__file__).resolve().parents[1]
SLURM = ["bash", str(ROOT / "scripts" / "slurm_local.sh")]


@pytest.fixture
def slurm():
    """A running one-node Slurm: the one here, or one started for this test and stopped after it."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="bash scripts/setup.sh test")
    if not shutil.which("slurmctld") or not shutil.which("munged"):
        pytest.skip(
            "needs Slurm: apt-get install -y --no-install-recommends slurmd slurmctld slurm-client munge"
            " (the script scripts/slurm_local.sh then configures and starts a one-node cluster)"
        )
    up = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.split()
    started = not any(s in ("idle", "mixed", "allocated") for s in up)
    if started:
        subprocess.run([*SLURM, "start"], check=True, capture_output=True, timeout=120)
    yield
    if started:
        subprocess.run([*SLURM, "stop"], check=True, capture_output=True, timeout=60)


def test_a_slurm_sweep_runs_both_variants_on_the_cpu_engine(slurm, tmp_path):
    require_engine()
    out = tmp_path / "sweep"
    p = subprocess.run(
        [sys.executable, "-m", "bench", "run", "-m", "hydra/launcher=submitit_slurm", "server=single,spec_ngram",
         "engine=cpu", "engines.cpu.dtype=float32", f"out_dir={out}", "dataset.sample_size=2",
         "hydra.launcher.timeout_min=15"],
        capture_output=True, text=True, timeout=1200, cwd=ROOT,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    assert "each SLURM job asks for" in p.stderr and "no GPU" in p.stderr
    for variant in ("single", "spec_ngram"):
        run = json.loads((out / variant / "run.json").read_text())
        assert run["status"] == "ok" and run["n_ok"] == 2, run.get("reason")
    # Each job ran as a Slurm job: submitit left its log under the sweep's .submitit folder with the job id.
    assert list(out.glob(".submitit/*/*_log.out"))
    assert list(pd.read_csv(out / "summary.csv")["variant"]) == ["single", "spec_ngram"]
    assert subprocess.run([sys.executable, "-m", "bench", "analyze", str(out)], capture_output=True).returncode == 0
