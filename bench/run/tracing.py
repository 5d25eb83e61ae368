"""vLLM's per-request OpenTelemetry spans: a small OTLP/HTTP receiver, W3C trace ids, the join to the requests."""

from __future__ import annotations

import os
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

# vLLM names its one span per finished request so (v1/engine/output_processor.py do_tracing, 0.32); other spans
# (code-level ones some vLLM builds add) carry no request's phases and are only counted.
REQUEST_SPAN = "llm_request"
# Span attribute -> RequestRecord field (vllm/tracing/utils.py SpanAttributes, 0.32). vLLM's definitions:
# queue = scheduled - queued, prefill = first token - scheduled, decode = last token - first token,
# inference = last token - scheduled (= prefill + decode), all engine-core timestamps; ttft and e2e run from the
# front end's arrival time, so e2e also holds the time before the engine queued the request.
PHASES = {
    "gen_ai.latency.time_in_queue": "server_queue_s",
    "gen_ai.latency.time_in_model_prefill": "server_prefill_s",
    "gen_ai.latency.time_in_model_decode": "server_decode_s",
    "gen_ai.latency.time_in_model_inference": "server_inference_s",
    "gen_ai.latency.time_to_first_token": "server_ttft_s",
    "gen_ai.latency.e2e": "server_e2e_s",
}
REQUEST_ID = "gen_ai.request.id"
# What vLLM's exporter needs to send here: the flag, and HTTP instead of its default gRPC (vllm/tracing/otel.py).
PROTOCOL_ENV = {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}
PROTOCOL_HINT = 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf in its environment (README "Tracing")'
TRACES_PATH = "/v1/traces"
MAX_BODY = 64 << 20  # an export batch is at most 512 spans of ~1 KiB: anything near this is not vLLM's


def new_trace() -> tuple[str, str]:
    """A fresh 128-bit trace id and the W3C `traceparent` that carries it. The sampled flag (01) matters: vLLM's
    tracer samples by its parent, so an unsampled parent would mean no span."""
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, f"00-{trace_id}-{span_id}-01"


@dataclass(frozen=True)
class ServerSpan:
    """One request as vLLM's span tells it: its trace id and the RequestRecord fields it fills (PHASES)."""

    trace_id: str
    request_id: str | None
    phases: dict[str, float]

    def fields(self) -> dict[str, Any]:
        return {"server_request_id": self.request_id, **self.phases}


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind in ("double_value", "int_value", "string_value", "bool_value") else None


def parse_export(body: bytes) -> tuple[list[ServerSpan], list[str]]:
    """The request spans of one OTLP export body, and the names of the other spans in it. DecodeError if it is not
    one."""
    msg = ExportTraceServiceRequest.FromString(body)
    spans: list[ServerSpan] = []
    other: list[str] = []
    for rs in msg.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                attrs = {a.key: _value(a.value) for a in span.attributes}
                if span.name != REQUEST_SPAN or len(span.trace_id) != 16:
                    other.append(span.name)
                    continue
                phases = {f: float(attrs[k]) for k, f in PHASES.items() if isinstance(attrs.get(k), (int, float))}
                rid = attrs.get(REQUEST_ID)
                spans.append(ServerSpan(span.trace_id.hex(), rid if isinstance(rid, str) else None, phases))
    return spans, other


def decode_body(body: bytes, encoding: str, limit: int = MAX_BODY) -> bytes:
    """The exporter's body as sent: gzip when OTEL_EXPORTER_OTLP_COMPRESSION=gzip, else as is. Decompressed in
    steps and refused past `limit`: the cap on the compressed size alone let a 1 MiB gzip body take 2 GB."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    out, rest = bytearray(), body
    while rest:  # gzip may hold several members, one after the other
        d = zlib.decompressobj(wbits)
        data = rest
        while data:
            out += d.decompress(data, limit + 1 - len(out))
            if len(out) > limit:
                raise BodyTooLarge(f"decompressed body over {limit} bytes")
            data = d.unconsumed_tail
        if not d.eof:
            raise ValueError("truncated compressed body")
        rest = d.unused_data if encoding == "gzip" else b""
    return bytes(out)


class BodyTooLarge(ValueError):
    """A body over MAX_BODY, compressed or not: answered 413."""


@dataclass
class Collected:
    """Every request span received so far, by trace id, and what could not be read."""

    spans: dict[str, ServerSpan] = field(default_factory=dict)
    duplicates: int = 0  # a second span for one trace id: kept out of the join, counted
    other_spans: dict[str, int] = field(default_factory=dict)  # by name: vLLM's start-up spans, say
    bad_bodies: int = 0
    # Connections that opened with HTTP/2's preface: a vLLM exporting gRPC, its default (PROTOCOL_ENV not set).
    grpc_attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, spans: Iterable[ServerSpan], other: Iterable[str] = ()) -> None:
        with self.lock:
            for s in spans:
                if s.trace_id in self.spans:
                    self.duplicates += 1
                else:
                    self.spans[s.trace_id] = s
            for name in other:
                self.other_spans[name] = self.other_spans.get(name, 0) + 1


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def parse_request(self) -> bool:
        if getattr(self, "raw_requestline", b"").startswith(b"PRI * HTTP/2"):  # set by handle_one_request
            with self.server.collected.lock:
                self.server.collected.grpc_attempts += 1
        return super().parse_request()

    def do_POST(self) -> None:  # noqa: N802 (http.server's spelling)
        # Any path: vLLM's HTTP exporter posts to the endpoint URL verbatim, with or without /v1/traces.
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 <= length <= MAX_BODY:
                return self._answer(413, b"body too large")
            body = decode_body(self.rfile.read(length), self.headers.get("Content-Encoding") or "")
            spans, other = parse_export(body)
        except BodyTooLarge:
            with self.server.collected.lock:
                self.server.collected.bad_bodies += 1
            return self._answer(413, b"body too large")
        except (ValueError, OSError, EOFError, DecodeError, zlib.error) as e:
            with self.server.collected.lock:
                self.server.collected.bad_bodies += 1
            return self._answer(400, f"not an OTLP ExportTraceServiceRequest: {e}"[:200].encode())
        self.server.collected.add(spans, other)
        self._answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def _answer(self, code: int, body: bytes, kind: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # one line per export batch would bury bench's own output


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    collected: Collected


class Receiver:
    """`with Receiver() as rx:` receives OTLP/HTTP trace exports on `rx.endpoint` until the block ends."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.collected = Collected()
        self._server: _HTTPServer | None = None

    def __enter__(self) -> Receiver:
        self._server = _HTTPServer((self.host, self.port), _Handler)
        self._server.collected = self.collected
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def endpoint(self) -> str:
        """The URL a vLLM on this machine exports to (endpoint mode: the README says what a remote one uses)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}{TRACES_PATH}"

    def wait_for(self, trace_ids: Iterable[str], timeout_s: float) -> bool:
        """Wait until every one of `trace_ids` has its span or `timeout_s` passes: vLLM's BatchSpanProcessor
        exports every 5 s, so the last requests' spans come after the replay."""
        wanted = set(trace_ids)
        deadline = time.monotonic() + timeout_s
        while True:
            with self.collected.lock:
                missing = wanted - self.collected.spans.keys()
            if not missing or time.monotonic() >= deadline:
                return not missing
            time.sleep(0.1)


def span_fields(spans: Mapping[str, ServerSpan], trace_id: Any) -> dict[str, Any] | None:
    """The fields a request line gains from its span, or None where no span has its trace id."""
    span = spans.get(trace_id) if isinstance(trace_id, str) else None
    return span.fields() if span is not None else None


def join(lines: list[dict[str, Any]], start: int, collected: Collected, warmup: set[str]) -> dict[str, Any]:
    """Each request line of server start `start` gains its span's fields, in place, joined by trace id alone;
    what cannot be joined is counted, never guessed. Returns the counts that go on the start's entry."""
    with collected.lock:
        spans = dict(collected.spans)
        counts = {"duplicate_spans": collected.duplicates, "other_spans": dict(collected.other_spans)}
        counts |= {"bad_bodies": collected.bad_bodies, "grpc_attempts": collected.grpc_attempts}
    ours = [d for d in lines if int(d.get("start", 0)) == start]
    ids = {d.get("trace_id") for d in ours}
    ok = joined = 0
    for d in ours:
        fields = span_fields(spans, d.get("trace_id"))
        if fields is not None:
            d.update(fields)
        if not d.get("error"):  # a refused request never reached the engine: it has no span to miss
            ok += 1
            joined += fields is not None
    unmatched = [t for t in spans if t not in ids and t not in warmup]
    return {
        "requests": ok,
        "joined": joined,
        "unmatched_requests": ok - joined,
        "spans": len(spans),
        "warmup_spans": sum(t in warmup for t in spans),
        "unmatched_spans": len(unmatched),
        **counts,
    }


def join_rates(records: Iterable[Any]) -> dict[str, Any]:
    """The share of successful requests joined to a span, over the run and per load level (run.json `tracing`)."""
    by_level: dict[float, list[int]] = {}
    for r in records:
        if r.error is None and r.trace_id is not None:
            n = by_level.setdefault(r.level, [0, 0])
            n[0] += 1
            n[1] += r.server_e2e_s is not None
    levels = [
        {"level": lv, "requests": n, "joined": j, "join_rate": j / n if n else None}
        for lv, (n, j) in sorted(by_level.items())
    ]
    total = sum(n for n, _ in by_level.values())
    joined = sum(j for _, j in by_level.values())
    return {"requests": total, "joined": joined, "join_rate": joined / total if total else None, "levels": levels}
