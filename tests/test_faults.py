"""Faults an unattended sweep meets: a hung server, bench killed outright, a port race, a killed model maker."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.core.config import ServerConfig
from bench.core.errors import ServerError
from bench.run import launch, models
from bench.run.server import VllmServer, free_port
from tests.conftest import BENCH_RUN, lines, require_engine, signal_server_mid_replay, vllm_processes, wait_for

FAKE = str(Path(__file__).with_name("fake_server.py"))


def test_a_taken_port_is_retried_once_on_another(tmp_path, monkeypatch):
    modes = iter(["port_taken", "ok"])

    def fake_server(server, model, draft, log_path, otlp=None):
        port = free_port("127.0.0.1")
        return VllmServer([sys.executable, FAKE, next(modes), str(port)], "127.0.0.1", port, log_path, {}, 20, 2)

    monkeypatch.setattr(launch, "make_server", fake_server)
    commands: list[list[str]] = []
    with launch.start_server(ServerConfig(model="/m"), "/m", None, tmp_path / "log", commands.append) as srv:
        assert srv.healthy()
    assert [c[2] for c in commands] == ["port_taken", "ok"]


def test_a_taken_configured_port_is_not_retried(tmp_path, monkeypatch):
    def fake_server(server, model, draft, log_path, otlp=None):
        return VllmServer(
            [sys.executable, FAKE, "port_taken", "1"], "127.0.0.1", free_port("127.0.0.1"), log_path, {}, 20, 2
        )

    monkeypatch.setattr(launch, "make_server", fake_server)
    with (
        pytest.raises(ServerError, match="port was taken"),
        launch.start_server(ServerConfig(model="/m", port=8123), "/m", None, tmp_path / "log", lambda c: None),
    ):
        pass


@pytest.mark.parametrize("how", ["fails", "killed"])
def test_an_interrupted_model_make_leaves_nothing_usable(tmp_path, monkeypatch, how):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path))
    out = tmp_path / "models" / "m"
    # The maker writes a config into its temp folder, then dies: by an error, or killed outright.
    die = "sys.exit(3)" if how == "fails" else "os.kill(os.getpid(), signal.SIGKILL)"
    maker = [
        sys.executable,
        "-c",
        "import os, signal, sys, pathlib; d = pathlib.Path(sys.argv[1]); d.mkdir(); "
        f"(d / 'config.json').write_text('{{}}'); {die}",
    ]
    with pytest.raises(ServerError, match="making bundled model m failed"):
        models._make_locked("m", out, maker)
    assert not out.exists() and not list(out.parent.glob(".m.tmp*"))
    ok = [
        sys.executable,
        "-c",
        "import sys, pathlib; d = pathlib.Path(sys.argv[1]); d.mkdir(); (d / 'config.json').write_text('{}')",
    ]
    models._make_locked("m", out, ok)
    assert (out / "config.json").exists() and (out / models._DONE).exists()


@pytest.mark.server
def test_a_hung_server_times_out_and_the_variant_stops_cleanly(tmp_path):
    require_engine()
    out = tmp_path / "r"
    # SIGSTOP: alive, port open, answering nothing
    rc, output, _ = signal_server_mid_replay(
        out, ["dataset.sample_size=12", "load.request_timeout_s=10"], signal.SIGSTOP
    )
    run = json.loads((out / "single" / "run.json").read_text())
    assert rc == 1, output[-2000:]
    assert run["status"] == "partial" and "3 requests in a row timed out after 10 s" in run["reason"]
    assert run["n_requests"] >= 5 and run["n_failed"] >= 3
    assert vllm_processes() == []


@pytest.mark.server
def test_bench_killed_outright_takes_its_server_down(tmp_path):
    require_engine()
    out = tmp_path / "r"
    bench = subprocess.Popen(
        [*BENCH_RUN, f"out_dir={out}", "dataset.sample_size=12"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for(lambda: lines(out / "single" / "requests.jsonl") >= 1, 600, "the first request", bench)
    assert vllm_processes()
    bench.send_signal(signal.SIGKILL)  # no handler runs: only the kernel's parent-death signal is left
    bench.wait()
    deadline = time.monotonic() + 60
    while vllm_processes() and time.monotonic() < deadline:
        time.sleep(1)
    assert vllm_processes() == []
    assert not (out / "single" / "run.json").exists()  # never mistaken for a complete run


@pytest.mark.server
def test_sigterm_to_bench_stops_its_server_and_keeps_what_was_measured(tmp_path):
    """What a cancelled CI job or `kill` sends: the same clean path as Ctrl-C."""
    require_engine()
    out = tmp_path / "r"
    bench = subprocess.Popen(
        [*BENCH_RUN, f"out_dir={out}", "dataset.sample_size=12"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: lines(out / "single" / "requests.jsonl") >= 2, 600, "two requests", bench)
        bench.send_signal(signal.SIGTERM)
        output, _ = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
    run = json.loads((out / "single" / "run.json").read_text())
    assert bench.returncode == 130, output[-2000:]
    assert run["status"] == "interrupted" and run["n_requests"] >= 2
    assert lines(out / "single" / "requests.jsonl") == run["n_requests"]
    assert vllm_processes() == [] and "Traceback" not in output


@pytest.mark.server
def test_one_sweep_with_an_unknown_variant_a_malformed_dataset_and_a_refused_variant(tmp_path):
    """The good run completes; every other one is in the summary, failed, with a reason a user can act on."""
    require_engine()
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [')
    (tmp_path / "conf" / "dataset").mkdir(parents=True)
    # A user's own dataset config, found through Hydra's search path, pointing at a malformed file.
    (tmp_path / "conf" / "dataset" / "broken.yaml").write_text(
        f"defaults:\n  - dataset_schema\n  - _self_\n\nname: broken\nsource: squad\npath: {broken}\n"
    )
    out = tmp_path / "sweep"
    p = subprocess.run(
        [*BENCH_RUN, "-m", "server=single,nope,tp2", "dataset=builtin,broken", "dataset.sample_size=3",
         f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "run_name=${server.name}-${dataset.name}",
         "baseline_variant=single-builtin", f"out_dir={out}"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert p.returncode == 1, p.stderr[-3000:]
    assert "unknown server variant nope; available:" in p.stderr and "Traceback" not in p.stderr
    runs = {d.name: json.loads((d / "run.json").read_text()) for d in out.iterdir() if (d / "run.json").exists()}
    assert sorted(runs) == ["nope", "single-broken", "single-builtin", "tp2-broken", "tp2-builtin"]
    assert runs["single-builtin"]["status"] == "ok" and runs["single-builtin"]["n_ok"] == 3
    assert "not valid JSON" in runs["single-broken"]["reason"] and "not valid JSON" in runs["tp2-broken"]["reason"]
    assert "9 attention heads, not divisible by tensor_parallel_size=2" in runs["tp2-builtin"]["reason"]
    assert "unknown server variant 'nope'" in runs["nope"]["reason"]
    assert all(r["status"] == "failed" for name, r in runs.items() if name != "single-builtin")
    summary = (out / "summary.csv").read_text()
    assert all(name in summary for name in runs)
    assert vllm_processes() == []
