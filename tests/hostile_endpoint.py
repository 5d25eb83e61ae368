"""An OpenAI-compatible endpoint that misbehaves one way, for the hostile-input tests. Loopback only.

    python tests/hostile_endpoint.py MODE PORT

not_http: answers every connection with bytes that are not HTTP. models_shape: /v1/models of the wrong shape.
models_401: /v1/models refused. models_html: /v1/models answers an HTML page. reset_html: the prefix-cache reset
route answers HTML (everything else works). chunk_list: stream chunks that are JSON lists. absurd_usage: usage
claims a billion output tokens. http500: every completion fails with 500. stall: the stream stalls after its
first chunk.
basic_auth: every route needs HTTP basic auth as admin / BASIC_PASSWORD (it holds @), else 401.
bad_chunks: every other request (the warm-up, the first, answers well; so do the odd ones, and the run goes on)
sends the next wrong-shaped chunk of BAD_CHUNKS in turn: delta a string, content a number, content a lone UTF-16
surrogate, a chunk nested 100k deep, usage counts that are text, finish_reason a list.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import sys
from typing import Any

from aiohttp import web

MODE, PORT = sys.argv[1], int(sys.argv[2])
BASIC_PASSWORD = "hunter@2-planted"
# kind -> one wrong-shaped chunk, sent in place of a request's first token (usage_text: of its usage chunk)
BAD_CHUNKS = {
    "delta_string": b'data: {"choices": [{"index": 0, "delta": "word", "finish_reason": null}]}\n\n',
    "content_number": b'data: {"choices": [{"index": 0, "delta": {"content": 42}, "finish_reason": null}]}\n\n',
    "surrogate": b'data: {"choices": [{"index": 0, "delta": {"content": "\\ud800"}, "finish_reason": null}]}\n\n',
    "deep": b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n",
    "usage_text": b'data: {"choices": [], "usage": {"prompt_tokens": "ten", "completion_tokens": "4"}}\n\n',
    "finish_list": b'data: {"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": [1]}]}\n\n',
}
_served = [0]


@web.middleware
async def basic_auth(request: web.Request, handler: Any) -> web.StreamResponse:
    wanted = "Basic " + base64.b64encode(f"admin:{BASIC_PASSWORD}".encode()).decode()
    if MODE == "basic_auth" and request.headers.get("Authorization") != wanted:
        return web.json_response({"error": "basic auth needed"}, status=401)
    return await handler(request)


def _chunk(content: str | None, finish: str | None = None, usage: dict | None = None) -> bytes:
    choices = [] if usage else [{"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}]
    body: dict = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": choices}
    if usage:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if MODE == "http500":
        return web.Response(status=500, text="Internal Server Error")
    n = min(4, int(body.get("max_tokens") or 4))
    usage = {"prompt_tokens": 10, "completion_tokens": 10**9 if MODE == "absurd_usage" else n, "total_tokens": 10 + n}
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    _served[0] += 1
    kind = list(BAD_CHUNKS)[(_served[0] // 2 - 1) % len(BAD_CHUNKS)] if MODE == "bad_chunks" else None
    if _served[0] % 2:
        kind = None
    for i in range(n):
        if kind not in (None, "usage_text") and i == 0:
            await resp.write(BAD_CHUNKS[kind])
            continue
        if MODE == "chunk_list":
            await resp.write(b"data: [1, 2, 3]\n\n")
            continue
        await resp.write(_chunk(" word", "length" if i == n - 1 else None))
        if MODE == "stall":
            await asyncio.sleep(600)
    await resp.write(BAD_CHUNKS["usage_text"] if kind == "usage_text" else _chunk(None, usage=usage))
    await resp.write(b"data: [DONE]\n\n")
    return resp


async def models(request: web.Request) -> web.Response:
    if MODE == "models_shape":
        return web.json_response({"object": "list", "data": "everything"})
    if MODE == "models_401":
        return web.json_response({"error": "no key"}, status=401)
    if MODE == "models_html":
        return web.Response(text="<html><body>Welcome to nginx</body></html>", content_type="text/html")
    return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})


async def reset(request: web.Request) -> web.Response:
    if MODE == "reset_html":
        return web.Response(text="<html><body>Not here</body></html>", content_type="text/html")
    return web.json_response({"success": True})


def not_http() -> None:
    with socket.create_server(("127.0.0.1", PORT)) as s:
        while True:
            conn, _ = s.accept()
            with conn:
                conn.sendall(b"\x00\xffSSH-2.0-not-http\r\n\x00" * 4)


if __name__ == "__main__":
    if MODE == "not_http":
        not_http()
    a = web.Application(middlewares=[basic_auth])
    routes = [web.post("/v1/chat/completions", chat), web.get("/v1/models", models)]
    a.add_routes([*routes, web.post("/reset_prefix_cache", reset)])
    web.run_app(a, host="127.0.0.1", port=PORT, access_log=None, print=None)
