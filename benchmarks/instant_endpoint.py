"""A minimal OpenAI-compatible endpoint that answers at once: measures the client, not a server.

    python benchmarks/instant_endpoint.py PORT [CHUNKS]

POST /v1/chat/completions streams CHUNKS one-word chunks, a usage chunk and [DONE] (or one JSON
body without `stream`); GET /health answers 200; GET /v1/models lists the one model, `instant`, as
bench's endpoint mode asks first. Loopback only.
"""

from __future__ import annotations

import json
import sys

from aiohttp import web

CHUNKS = int(sys.argv[2]) if len(sys.argv) > 2 else 16


def _chunk(content: str | None, finish: str | None = None, usage: dict | None = None) -> bytes:
    choices = [] if usage else [{"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}]
    body = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "instant", "choices": choices}
    if usage:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    n = min(CHUNKS, int(body.get("max_tokens") or CHUNKS))
    usage = {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}
    if not body.get("stream"):
        message = {"role": "assistant", "content": " ".join(["word"] * n)}
        return web.json_response(
            {"id": "x", "object": "chat.completion", "created": 0, "model": "instant", "usage": usage,
             "choices": [{"index": 0, "message": message, "finish_reason": "length"}]}
        )  # fmt: skip
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i in range(n):
        await resp.write(_chunk(" word", "length" if i == n - 1 else None))
    await resp.write(_chunk(None, usage=usage))
    await resp.write(b"data: [DONE]\n\n")
    return resp


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "instant", "object": "model", "owned_by": "bench"}]})


def app() -> web.Application:
    a = web.Application()
    a.add_routes([web.post("/v1/chat/completions", chat), web.get("/health", health), web.get("/v1/models", models)])
    return a


if __name__ == "__main__":
    web.run_app(app(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
