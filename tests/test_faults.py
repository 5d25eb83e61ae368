"""Faults an unattended sweep meets: a hung server, bench killed outright, a port race, a killed model maker."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import models, runner
from bench.config import ServerConfig
from bench.errors import ServerError
from bench.server import VllmServer, free_port
from tests.conftest import BENCH_RUN, lines, require_engine, signal_server_mid_replay, vllm_processes, wait_for

FAKE = str(Path(__file__).with_name("fake_server.py"))


def test_a_taken_port_is_retried_once_on_another(tmp_path, monkeypatch):
    modes = iter(["port_taken", "ok"])

    def fake_server(server, model, draft, log_path):
        port = free_port("127.0.0.1")
        return VllmServer([sys.executable, FAKE, next(modes), str(port)], "127.0.0.1", port, log_path, {}, 20, 2)

    monkeypatch.setattr(runner, "make_server", fake_server)
    commands: list[list[str]] = []
    with runner.start_server(ServerConfig(model="/m"), "/m", None, tmp_path / "log", commands.append) as srv:
        assert srv.healthy()
    assert [c[2] for c in commands] == ["port_taken", "ok"]


def test_a_taken_configured_port_is_not_retried(tmp_path, monkeypatch):
    def fake_server(server, model, draft, log_path):
        return VllmServer(
            [sys.executable, FAKE, "port_taken", "1"], "127.0.0.1", free_port("127.0.0.1"), log_path, {}, 20, 2
        )

    monkeypatch.setattr(runner, "make_server", fake_server)
    with pytest.raises(ServerError, match="port was taken"):
        runner.start_server(ServerConfig(model="/m", port=8123), "/m", None, tmp_path / "log", lambda c: None)


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
    rc, output = signal_server_mid_replay(out, ["dataset.sample_size=12", "load.request_timeout_s=10"], signal.SIGSTOP)
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
