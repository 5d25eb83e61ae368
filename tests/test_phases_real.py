"""The server's phases on the real CPU engine: what must hold on any machine, never a speed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bench.core.files import read_requests
from bench.run.prometheus import PHASE_HISTOGRAMS
from tests.conftest import BENCH_RUN, require_engine

pytestmark = pytest.mark.server
# Two load levels in one server start: each level's pass gets its own scrapes, the run its own.
LEVELS = ["server=single", "dataset.sample_size=4", "load.levels=[1,2]", "engines.cpu.dtype=float32"]
# queue + prefill + decode is inference by vLLM's definition (three timestamps of one request); a few ms allows
# for the float sums over a handful of requests.
FEW_MS = 0.005


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_engine()
    out = tmp_path_factory.mktemp("phases") / "sweep"
    p = subprocess.run([*BENCH_RUN, *LEVELS, f"out_dir={out}"], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    return out / "single"


def _parts_make_the_whole(f: dict) -> None:
    parts = f["server_queue_s_mean"] + f["server_prefill_s_mean"] + f["server_decode_s_mean"]
    assert parts == pytest.approx(f["server_inference_s_mean"], abs=FEW_MS)


def test_the_server_counted_every_request_once(run_dir: Path) -> None:
    run = json.loads((run_dir / "run.json").read_text())
    n = len(list(read_requests(run_dir)))
    assert n == run["n_requests"] == 8 and run["n_failed"] == 0  # 4 questions at each of 2 levels
    counters = run["starts"][0]["counters"]
    assert {h: counters[f"{h}_count"] for h in PHASE_HISTOGRAMS.values()} == {h: n for h in PHASE_HISTOGRAMS.values()}


def test_run_phases_add_up_and_the_server_sees_less_than_the_client(run_dir: Path) -> None:
    run = json.loads((run_dir / "run.json").read_text())
    m, stats = run["server_metrics"], run["stats"]
    _parts_make_the_whole(m)
    assert 0 < m["server_e2e_s_mean"] <= stats["latency_s_mean"]
    assert m["outside_engine_e2e_s"] == pytest.approx(stats["latency_s_mean"] - m["server_e2e_s_mean"])
    for phase in ("queue", "prefill", "decode", "e2e"):  # percentiles within the histogram's reach, in order
        p50, p90, p99 = (m[f"server_{phase}_s_p{q}"] for q in (50, 90, 99))
        assert 0 <= p50 <= p90 <= p99


def test_each_level_has_its_own_phases(run_dir: Path) -> None:
    run = json.loads((run_dir / "run.json").read_text())
    assert sorted(t["level"] for t in run["trials"]) == [1.0, 2.0]
    for t in run["trials"]:
        _parts_make_the_whole(t)
        assert t["outside_engine_e2e_s"] >= 0 and t["server_e2e_s_mean"] > 0
    summary = pd.read_csv(run_dir.parent / "summary.csv")
    assert summary.loc[0, "server_decode_s_mean"] > 0 and summary.loc[0, "outside_engine_e2e_s"] >= 0
