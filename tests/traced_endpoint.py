"""An OpenAI-compatible endpoint that exports a span per request as a remote vLLM with tracing on would.

    python tests/traced_endpoint.py PORT OTLP_URL

Each chat request's `traceparent` is continued: an `llm_request` span with vLLM's gen_ai.latency.* attributes goes
to OTLP_URL (OTLP/HTTP, gzip), like vLLM's exporter, except for the second request (its span is lost). One more
span, of a trace no bench request carries, stands for another client of the same server. Loopback only.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import urllib.request

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

PORT, OTLP = int(sys.argv[1]), sys.argv[2]
seen = [0]


def export(trace_id: str) -> None:
    attrs = {"gen_ai.latency.time_in_queue": 0.001, "gen_ai.latency.time_in_model_prefill": 0.002,
             "gen_ai.latency.time_in_model_decode": 0.003, "gen_ai.latency.time_in_model_inference": 0.005,
             "gen_ai.latency.time_to_first_token": 0.003, "gen_ai.latency.e2e": 0.007}  # fmt: skip
    kvs = [KeyValue(key=k, value=AnyValue(double_value=v)) for k, v in attrs.items()]
    kvs.append(KeyValue(key="gen_ai.request.id", value=AnyValue(string_value=f"chatcmpl-{seen[0]}")))
    span = Span(trace_id=bytes.fromhex(trace_id), span_id=os.urandom(8), name="llm_request", attributes=kvs)
    body = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
    req = urllib.request.Request(OTLP, data=gzip.compress(body.SerializeToString()), method="POST")
    req.add_header("Content-Type", "application/x-protobuf")
    req.add_header("Content-Encoding", "gzip")
    urllib.request.urlopen(req, timeout=5).read()


def _chunk(content: str | None, usage: dict | None = None) -> bytes:
    choices = [] if usage else [{"index": 0, "delta": {"content": content}, "finish_reason": None}]
    body: dict = {"id": "x", "object": "chat.completion.chunk", "model": "m", "choices": choices}
    if usage:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def chat(request: web.Request) -> web.StreamResponse:
    await request.json()
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for _ in range(3):
        await resp.write(_chunk(" word"))
    await resp.write(_chunk(None, usage={"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}))
    await resp.write(b"data: [DONE]\n\n")
    seen[0] += 1
    if seen[0] != 2:
        export(request.headers["traceparent"].split("-")[1])
    if seen[0] == 1:
        export(os.urandom(16).hex())  # another client's request
    return resp


async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})


app = web.Application()
app.router.add_post("/v1/chat/completions", chat)
app.router.add_get("/v1/models", models)
web.run_app(app, host="127.0.0.1", port=PORT, print=None)
