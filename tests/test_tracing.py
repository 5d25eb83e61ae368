"""The OTLP receiver, the W3C trace ids the client sends, and the join of vLLM's spans to the requests."""

from __future__ import annotations

import gzip
import re
import urllib.error
import urllib.request

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from bench.core.records import RequestRecord
from bench.run.tracing import Collected, Receiver, ServerSpan, join, join_rates, new_trace, parse_export

# A span as vLLM 0.32 exports it (v1/engine/output_processor.py do_tracing): doubles, an int, the request id.
VLLM_ATTRS = {
    "gen_ai.latency.time_to_first_token": 0.120,
    "gen_ai.latency.e2e": 0.900,
    "gen_ai.latency.time_in_queue": 0.002,
    "gen_ai.usage.prompt_tokens": 180,
    "gen_ai.usage.completion_tokens": 12,
    "gen_ai.latency.time_in_model_prefill": 0.100,
    "gen_ai.latency.time_in_model_decode": 0.790,
    "gen_ai.latency.time_in_model_inference": 0.890,
    "gen_ai.request.id": "chatcmpl-abc",
}


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, str):
        return KeyValue(key=key, value=AnyValue(string_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(double_value=float(value)))  # type: ignore[arg-type]


def export(*trace_ids: str, name: str = "llm_request", attrs: dict | None = None) -> bytes:
    spans = [
        Span(trace_id=bytes.fromhex(t), span_id=b"\x01" * 8, name=name,
             attributes=[_kv(k, v) for k, v in (attrs or VLLM_ATTRS).items()])
        for t in trace_ids
    ]  # fmt: skip
    msg = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])
    return msg.SerializeToString()


def post(rx: Receiver, body: bytes, encoding: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(rx.endpoint, data=body, method="POST")
    req.add_header("Content-Type", "application/x-protobuf")
    if encoding:
        req.add_header("Content-Encoding", encoding)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_traceparent_is_w3c_version_00_sampled_with_a_fresh_128_bit_trace_id():
    seen = set()
    for _ in range(50):
        trace_id, header = new_trace()
        assert re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01", header)
        assert header.split("-")[1] == trace_id and trace_id != "0" * 32
        seen.add(trace_id)
    assert len(seen) == 50


def test_a_vllm_span_becomes_the_record_fields_with_units_in_their_names():
    trace_id = new_trace()[0]
    spans, other = parse_export(export(trace_id))
    assert other == [] and spans == [
        ServerSpan(trace_id, "chatcmpl-abc", {
            "server_queue_s": 0.002, "server_prefill_s": 0.1, "server_decode_s": 0.79, "server_inference_s": 0.89,
            "server_ttft_s": 0.12, "server_e2e_s": 0.9,
        })
    ]  # fmt: skip
    fields = spans[0].fields()
    assert set(fields) <= {f.name for f in RequestRecord.__dataclass_fields__.values()}


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_the_receiver_collects_spans_plain_and_gzipped(encoding):
    ids = [new_trace()[0] for _ in range(3)]
    body = export(*ids)
    with Receiver() as rx:
        code, answer = post(rx, gzip.compress(body) if encoding else body, encoding)
        assert code == 200
        ExportTraceServiceResponse.FromString(answer)  # what the exporter expects back
        assert rx.wait_for(ids, 1.0)
    assert sorted(rx.collected.spans) == sorted(ids)


def test_a_malformed_body_gets_400_and_the_receiver_keeps_working():
    trace_id = new_trace()[0]
    with Receiver() as rx:
        assert post(rx, b"\xff\xff\xff\xff")[0] == 400
        assert post(rx, b"not gzip at all", "gzip")[0] == 400
        assert post(rx, export(trace_id))[0] == 200
    assert rx.collected.bad_bodies == 2 and list(rx.collected.spans) == [trace_id]


def test_a_grpc_exporter_is_recognised_and_counted():
    """vLLM's default protocol is gRPC: its HTTP/2 preface is counted, so bench can say which variable to set."""
    import socket

    with Receiver() as rx:
        with socket.create_connection(("127.0.0.1", rx.port), timeout=5) as s:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            s.recv(1024)
    assert rx.collected.grpc_attempts == 1 and not rx.collected.spans


def test_spans_that_are_not_requests_are_counted_apart_and_waiting_is_bounded():
    with Receiver() as rx:
        post(rx, export(new_trace()[0], name="load_model", attrs={"code.function": "load"}))
        assert not rx.wait_for([new_trace()[0]], 0.3)
    assert rx.collected.other_spans == {"load_model": 1} and not rx.collected.spans


def _line(start: int, trace_id: str | None, error: str | None = None, level: float = 1.0) -> dict:
    return {"start": start, "level": level, "trace_id": trace_id, "error": error}


def test_join_is_by_trace_id_and_counts_what_it_cannot_join():
    ids = [new_trace()[0] for _ in range(6)]
    collected = Collected()
    # ids[0..1] requests with spans; ids[2] a request whose span never came; ids[3] a span of no request;
    # ids[4] the warm-up's; ids[5] a request of another start, whose span is not this start's to claim.
    spans = [ServerSpan(t, f"r{t[:4]}", {"server_e2e_s": 0.5}) for t in (ids[0], ids[1], ids[3], ids[4])]
    collected.add(spans, ["a", "a"])
    lines = [_line(0, ids[0]), _line(0, ids[1]), _line(0, ids[2]), _line(1, ids[5]), _line(0, None, "HTTP 400")]
    counts = join(lines, 0, collected, warmup={ids[4]})
    assert counts == {
        "requests": 3, "joined": 2, "unmatched_requests": 1, "spans": 4, "warmup_spans": 1, "unmatched_spans": 1,
        "duplicate_spans": 0, "other_spans": {"a": 2}, "bad_bodies": 0, "grpc_attempts": 0,
    }  # fmt: skip
    assert lines[0]["server_e2e_s"] == 0.5 and lines[0]["server_request_id"] == f"r{ids[0][:4]}"
    assert "server_e2e_s" not in lines[2] and "server_e2e_s" not in lines[3]


def test_a_second_span_for_one_trace_id_is_counted_not_joined_twice():
    trace_id = new_trace()[0]
    collected = Collected()
    collected.add([ServerSpan(trace_id, "a", {"server_e2e_s": 1.0}), ServerSpan(trace_id, "b", {})])
    assert collected.duplicates == 1 and collected.spans[trace_id].request_id == "a"


def _record(trace_id: str | None, e2e: float | None, level: float, error: str | None = None) -> RequestRecord:
    return RequestRecord(0, "q", "en", "?", "?", [], "", 0.0, 1.0, 1.0, 0.1, [], 0.05, 10, 5, "stop", error, 0.0,
                         0.0, level=level, trace_id=trace_id, server_e2e_s=e2e)  # fmt: skip


def test_join_rates_per_level_count_successful_requests_only():
    records = [_record("a", 0.9, 1), _record("b", None, 1), _record("c", 0.8, 8), _record("d", None, 8, "HTTP 500")]
    rates = join_rates(records)
    assert rates["requests"] == 3 and rates["joined"] == 2
    assert [(lv["level"], lv["join_rate"]) for lv in rates["levels"]] == [(1, 0.5), (8, 1.0)]


def test_old_request_lines_without_trace_fields_still_read():
    old = {k: v for k, v in _record(None, None, 1).__dict__.items() if k != "trace_id" and not k.startswith("server_")}
    rec = RequestRecord.from_dict(old)
    assert rec.trace_id is None and rec.server_e2e_s is None and rec.server_queue_s is None


def test_listen_addresses_parse_and_bad_ones_name_the_value():
    from bench.core.errors import ConfigError
    from bench.core.tracing import check_listen, parse_listen

    assert parse_listen("0.0.0.0:4318") == ("0.0.0.0", 4318)
    assert parse_listen("[::1]:0") == ("::1", 0)
    with pytest.raises(ConfigError, match="tracing.listen='4318' is not HOST:PORT"):
        check_listen("4318")


def test_vllms_own_exporter_reaches_the_receiver():
    """The OTLP/HTTP exporter vLLM uses (opentelemetry-exporter-otlp-proto-http), gzip on, against the receiver."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    trace_id, header = new_trace()
    with Receiver() as rx:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(rx.endpoint, compression=Compression.Gzip)))
        parent = TraceContextTextMapPropagator().extract({"traceparent": header})  # as vLLM continues the client's
        provider.get_tracer("t").start_span("llm_request", context=parent, attributes=VLLM_ATTRS).end()
        assert rx.wait_for([trace_id], 5.0)
        provider.shutdown()
    assert rx.collected.spans[trace_id].phases["server_e2e_s"] == 0.9


def test_endpoint_mode_joins_the_spans_a_remote_server_sends_to_the_receiver(tmp_path):
    """A stand-in for a remote vLLM started with --otlp-traces-endpoint pointing at bench's receiver: one span lost
    and one of another client are counted, the rest joined, and the run stays ok."""
    import json
    import subprocess
    import sys
    import time
    from pathlib import Path

    from bench.run.server import free_port, port_in_use

    port, rx_port = free_port("127.0.0.1"), free_port("127.0.0.1")
    script = str(Path(__file__).with_name("traced_endpoint.py"))
    proc = subprocess.Popen([sys.executable, script, str(port), f"http://127.0.0.1:{rx_port}/v1/traces"])
    try:
        deadline = time.monotonic() + 20
        while not port_in_use("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.1)
        out = tmp_path / "out"
        done = subprocess.run(
            [sys.executable, "-m", "bench", "run", f"endpoint=http://127.0.0.1:{port}", f"out_dir={out}",
             "tracing.enabled=true", f"tracing.listen=127.0.0.1:{rx_port}", "tracing.wait_s=2",
             "dataset.sample_size=4", "telemetry_interval_s=0"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        proc.kill()
        proc.wait()
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3 of 4 requests joined to the server's spans (75%); 1 spans matched no request" in done.stderr
    run = json.loads((out / "single" / "run.json").read_text())
    assert run["tracing"]["levels"] == [{"level": 1.0, "requests": 4, "joined": 3, "join_rate": 0.75}]
    counts = run["starts"][0]["tracing"]
    assert (counts["warmup_spans"], counts["unmatched_spans"], counts["unmatched_requests"]) == (1, 1, 1)
    lines = [json.loads(line) for line in (out / "single" / "requests.jsonl").read_text().splitlines()]
    assert [d.get("server_e2e_s") for d in lines] == [None, 0.007, 0.007, 0.007]  # the lost span is not guessed
    assert len({d["trace_id"] for d in lines}) == 4


def test_a_traced_server_exports_over_http_to_the_receiver_and_a_second_endpoint_flag_is_refused(tmp_path):
    from bench.core.config import ServerConfig
    from bench.core.errors import ConfigError
    from bench.run.launch import make_server

    srv = make_server(ServerConfig(model="/m"), "/m", None, tmp_path / "log", "http://127.0.0.1:9/v1/traces")
    i = srv.cmd.index("--otlp-traces-endpoint")
    assert srv.cmd[i + 1] == "http://127.0.0.1:9/v1/traces"
    assert srv.env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "http/protobuf"
    assert "--otlp-traces-endpoint" not in make_server(ServerConfig(model="/m"), "/m", None, tmp_path / "log").cmd
    mine = ServerConfig(model="/m", extra_args=["--otlp-traces-endpoint=http://collector:4317"])
    with pytest.raises(ConfigError, match="extra_args sets --otlp-traces-endpoint"):
        make_server(mine, "/m", None, tmp_path / "log", "http://127.0.0.1:9/v1/traces")


def test_a_gzip_bomb_is_refused_after_decompression_without_taking_its_size_in_memory():
    import tracemalloc

    from bench.run.tracing import MAX_BODY, BodyTooLarge, decode_body

    bomb = gzip.compress(b"\0" * (MAX_BODY + (16 << 20)), compresslevel=9)  # ~80 MiB inflated, ~80 KiB sent
    assert len(bomb) < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge):
            decode_body(bomb, "gzip", limit=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # the limit and a step, not the bomb's 80 MiB
    body = export(new_trace()[0])
    assert decode_body(gzip.compress(body) + gzip.compress(b""), "gzip") == body  # several members still read
    with Receiver() as rx:
        assert post(rx, bomb, "gzip")[0] == 413
        assert post(rx, body)[0] == 200
    assert rx.collected.bad_bodies == 1
