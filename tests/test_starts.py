"""Server starts x passes: the interleaved job order, each start kept apart on disk, resume per start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli.overrides import job_order, rotated
from bench.core.config import Repeats, to_repeats
from bench.core.errors import ConfigError
from bench.run.server import VllmServer, free_port

ENDPOINT = str(Path(__file__).resolve().parents[1] / "benchmarks" / "instant_endpoint.py")


def test_variants_are_interleaved_start_by_start_in_rotated_order():
    assert rotated(["A", "B", "C"], 0) == ["A", "B", "C"]
    assert rotated(["A", "B", "C"], 4) == ["B", "C", "A"]
    assert job_order(["A", "B", "C"], 3) == [
        ("A", 0), ("B", 0), ("C", 0), ("B", 1), ("C", 1), ("A", 1), ("C", 2), ("A", 2), ("B", 2),
    ]  # fmt: skip
    assert job_order(["A"], 2) == [("A", 0), ("A", 1)]


def test_repeats_reads_the_old_number_and_the_new_mapping():
    assert to_repeats(3) == Repeats(starts=1, passes=3)
    assert to_repeats({"starts": 2, "passes": 3}) == Repeats(2, 3, "reset")
    for bad in ({"start": 2}, {"starts": 0}, {"prefix_cache": "sometimes"}, "three"):
        with pytest.raises(ConfigError, match="repeats"):
            to_repeats(bad)


def _order(sweep: Path) -> list[tuple[str, int]]:
    """The (variant, start) jobs in the order their requests were sent."""
    rows = sorted(
        (r["start_time"], d.name, r["start"])
        for d in sweep.iterdir() if (d / "requests.jsonl").exists()
        for r in map(json.loads, (d / "requests.jsonl").read_text().splitlines())
    )  # fmt: skip
    out: list[tuple[str, int]] = []
    for _, variant, start in rows:
        if not out or out[-1] != (variant, start):
            out.append((variant, start))
    return out


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    port = free_port("127.0.0.1")
    log = tmp_path_factory.mktemp("endpoint") / "e.log"
    # An instant stand-in in endpoint mode: these tests are about the dispatcher and the files, not vLLM.
    with VllmServer([sys.executable, ENDPOINT, str(port), "4"], "127.0.0.1", port, log, {}, 30):
        yield f"http://127.0.0.1:{port}"


def _bench(endpoint: str, out: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "bench", "run", f"endpoint={endpoint}", f"out_dir={out}", "dataset.sample_size=3",
           "telemetry_interval_s=0", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_a_sweep_runs_start_by_start_with_the_order_rotated(endpoint, tmp_path):
    out = tmp_path / "sweep"
    p = _bench(endpoint, out, "-m", "server=single,spec_ngram,pp2", "repeats.starts=3", "repeats.passes=2")
    assert p.returncode == 0, p.stderr[-3000:]
    assert _order(out) == job_order(["single", "spec_ngram", "pp2"], 3)
    run = json.loads((out / "single" / "run.json").read_text())
    # Each start's passes kept apart: trials and requests carry (start, repeat).
    assert [(t["start"], t["repeat"]) for t in run["trials"]] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert [s["start"] for s in run["starts"]] == [0, 1, 2] and run["n_requests"] == 18
    assert p.stdout.count("variant status") == 1  # one summary, after the last start
    # An endpoint not in vLLM's dev mode refuses the cache reset: recorded per pass, and said.
    assert run["trials"][0]["prefix_cache_reset"] is False and "VLLM_SERVER_DEV_MODE" in p.stderr


def test_a_preset_sweep_is_interleaved_too_and_resume_skips_finished_starts(endpoint, tmp_path):
    out = tmp_path / "nightly"
    p = _bench(endpoint, out, "+sweep=nightly", "repeats.starts=2", "repeats.passes=1")
    assert p.returncode == 0, p.stderr[-3000:]
    assert _order(out) == [("single", 0), ("spec_ngram", 0), ("spec_ngram", 1), ("single", 1)]
    # Start 1 of single lost: a resume measures that start again and nothing else.
    run_file = out / "single" / "run.json"
    run = json.loads(run_file.read_text())
    run["starts"][1]["status"], run["status"] = "interrupted", "interrupted"
    run_file.write_text(json.dumps(run))
    p = _bench(endpoint, out, "+sweep=nightly", "repeats.starts=2", "repeats.passes=1")
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stderr.count("skipped") == 3, p.stderr
    run = json.loads(run_file.read_text())
    assert run["status"] == "ok" and [s["status"] for s in run["starts"]] == ["ok", "ok"]
    records = [json.loads(line) for line in (out / "single" / "requests.jsonl").read_text().splitlines()]
    assert sorted(r["start"] for r in records) == [0, 0, 0, 1, 1, 1]  # the lost start's records replaced


def test_an_old_repeats_number_still_runs_as_passes_of_one_start(endpoint, tmp_path):
    p = _bench(endpoint, tmp_path / "old", "repeats=2")
    assert p.returncode == 0, p.stderr[-3000:]
    run = json.loads((tmp_path / "old" / "single" / "run.json").read_text())
    assert [(t["start"], t["repeat"]) for t in run["trials"]] == [(0, 0), (0, 1)]
