"""Shared fixtures: results folders to analyze, copied from a real sweep or fabricated."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.results import FAILED, OK, PARTIAL, RequestRecord, RequestWriter, RunResult, write_run
from bench.telemetry import Sample, write_samples

REAL_SWEEP = Path(__file__).resolve().parents[1] / "results" / "parallel"
T0 = 1_800_000_000.0  # epoch seconds; any fixed clock will do


def _requests(run_dir: Path, n: int, latency_s: float, f1: float) -> None:
    with RequestWriter(run_dir / "requests.jsonl") as w:
        t = T0
        for i in range(n):
            lat = latency_s * (0.7 + 0.1 * (i % 7))
            w.write(
                RequestRecord(
                    index=i,
                    question_id=f"q{i}",
                    lang="en",
                    question="?",
                    prompt="?",
                    references=["Edith Rowe"],
                    answer="Edith Rowe" if i % 2 else "the harbour master",
                    start_time=t,
                    end_time=t + lat,
                    latency_s=lat,
                    ttft_s=lat * 0.2,
                    itl_s=[lat * 0.08] * 10,
                    tpot_s=lat * 0.08,
                    prompt_tokens=180,
                    output_tokens=11,
                    finish_reason="stop",
                    error=None if i != 3 else "HTTP 500",
                    exact_match=float(i % 2),
                    f1=f1,
                )
            )
            t += lat


def _telemetry(run_dir: Path, wall_s: float, utils: dict[str, float], source: str) -> None:
    samples = [
        Sample(T0 + k * 0.5, dev, source, min(100.0, u + (k % 5) * 3) if source == "nvml" else u + (k % 5) * 3, 1000.0)
        for k in range(int(wall_s * 2)) for dev, u in utils.items()
    ]  # fmt: skip
    write_samples(run_dir / "telemetry.csv", samples)


def fabricate_sweep(sweep_dir: Path, slowdown: float = 1.0) -> Path:
    """An ok baseline, an imbalanced pp2, a failed tp2, a partial speculative run without telemetry,
    a variant with an unknown name on CPU figures, and a folder whose run.json is torn."""
    runs = {
        "single": (OK, None, 60.0, 0.55, {"gpu0": 80.0}, "nvml", {}),
        "pp2": (OK, None, 90.0, 0.55, {"gpu0": 40.0, "gpu1": 85.0}, "nvml", {}),
        "tp2": (FAILED, "the model has 9 attention heads, not divisible by tensor_parallel_size=2: pick 1, 3 or 9",
                None, None, {}, "", {}),
        "spec_ngram": (PARTIAL, "server exited with code 1 during the replay; 4 of 8 requests measured and kept",
                       30.0, 0.5, {}, "", {"spec_acceptance_rate": 0.42, "spec_mean_acceptance_length": 2.3}),
        "my-experiment": (OK, None, 45.0, 0.4, {"server": 150.0, "cpu0": 90.0, "cpu1": 60.0}, "psutil", {}),
    }  # fmt: skip
    for name, (status, reason, wall, f1, utils, source, spec) in runs.items():
        d = sweep_dir / name
        d.mkdir(parents=True)
        wall = wall * slowdown if wall else None
        n = 4 if status == PARTIAL else 8 if wall else 0
        if n:
            _requests(d, n, wall / 8, f1)
        if utils:
            _telemetry(d, wall, utils, source)
        stats = {
            "output_tok_per_s": 88.0 / wall if wall else None,
            "f1": f1,
            "exact_match": 0.5 if f1 else None,
            "ttft_s_p50": 0.3,
            "tpot_s_p50": 0.05,
            "latency_s_p50": 0.8,
        }
        telemetry = [
            {"device": k, "source": source, "util_mean_pct": v, "mem_peak_mib": 1000.0} for k, v in utils.items()
        ]
        write_run(
            d,
            RunResult(
                variant=name,
                status=status,
                reason=reason,
                wall_clock_s=wall,
                n_requests=n,
                stats=stats,
                server_metrics={"available": True, **spec},
                telemetry=telemetry,
                server={"engine": "cuda", "command": ["vllm", "serve", "m", "--api-key", "<redacted>"]},
                provenance={
                    "time": "2026-11-25T17:00:00+00:00",
                    "vllm_version": "0.25.0",
                    "git_commit": "abc123",
                    "cpu": "Test CPU",
                    "cpu_count": 2,
                    "gpus": [{"name": "H100", "driver": "550"}],
                },
            ),
        )
    (sweep_dir / "torn").mkdir()
    (sweep_dir / "torn" / "run.json").write_text('{"variant": "torn", "sta')
    return sweep_dir


@pytest.fixture
def fake_results(tmp_path: Path) -> Path:
    return fabricate_sweep(tmp_path / "fake")


@pytest.fixture
def fake_results_other(tmp_path: Path) -> Path:
    """A second sweep for comparisons: the same variants, 1.5x slower (another machine, another vLLM)."""
    return fabricate_sweep(tmp_path / "other" / "fake", slowdown=1.5)


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """A results folder for end-to-end checks: the real CPU sweep when one is on disk, else a fabricated one."""
    if any(REAL_SWEEP.glob("*/run.json")):
        return Path(
            shutil.copytree(REAL_SWEEP, tmp_path / "parallel", ignore=shutil.ignore_patterns(".hydra", "*.log"))
        )
    return fabricate_sweep(tmp_path / "parallel")
