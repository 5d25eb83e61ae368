"""Replay QA items as streamed chat completions, one at a time, N at a time, or at a request rate."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiohttp
import openai

from bench.core.clock import wall
from bench.core.config import CLIENTS, RequestConfig
from bench.core.records import RequestRecord
from bench.core.scoring import score
from bench.core.secrets import auth_headers, split_userinfo
from bench.run.dataset import QAItem
from bench.run.load import Level, Pacing
from bench.run.tracing import new_trace

# aiohttp: a plain HTTP client parsing the SSE stream itself, as `vllm bench serve` does; the openai SDK
# builds a pydantic object per streamed chunk and on 2 cores sustained a fifth of vllm bench serve's
# request rate (benchmarks/client_overhead.py), so it measures the client. `openai` is for those who
# want the official SDK's own overhead in the numbers.
# A torn stream or connection, a timeout, a body that is not JSON: recorded on the request, never raised.
# RecursionError: a chunk nested deeper than json goes (the SDK parses it itself); it lost the request's record.
_REQUEST_ERRORS = (aiohttp.ClientError, openai.APIError, OSError, ValueError, asyncio.TimeoutError, RecursionError)


def make_async_client(base_url: str, api_key: str | None, timeout_s: float, concurrency: int) -> openai.AsyncOpenAI:
    import httpx2

    url, basic = split_userinfo(base_url)  # user-info is sent as basic auth, over the SDK's bearer header

    # The pool is sized to the load: a request never queues for a connection inside the client.
    limits = httpx2.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    # max_retries=0: a retried request would hide a server fault and distort its latency.
    return openai.AsyncOpenAI(
        base_url=f"{url}/v1",
        api_key=api_key or "EMPTY",
        default_headers={"Authorization": basic} if basic else None,
        timeout=timeout_s,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpx2Client(limits=limits, timeout=timeout_s),
    )


def make_session(base_url: str, api_key: str | None, timeout_s: float, concurrency: int) -> aiohttp.ClientSession:
    headers = auth_headers(base_url, api_key)
    connector = aiohttp.TCPConnector(limit=concurrency + 4, keepalive_timeout=60)
    return aiohttp.ClientSession(connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s))


@dataclass(frozen=True)
class Endpoint:
    """Where requests go and how: a local server's or a remote endpoint's base URL (no /v1)."""

    base_url: str
    api_key: str | None = None
    timeout_s: float = 300.0  # per request
    client: str = "aiohttp"  # one of CLIENTS


@dataclass(frozen=True)
class RequestTemplate:
    """What every request of a run shares: the served model's name and the request's parameters (their defaults
    in RequestConfig); the item adds the user message."""

    model: str
    request: RequestConfig = field(default_factory=RequestConfig)

    def body(self, item: QAItem) -> dict[str, Any]:
        r = self.request
        system = [{"role": "system", "content": r.system_prompt}] if r.system_prompt else []
        return {
            "model": self.model,
            "messages": [*system, {"role": "user", "content": item.user_prompt()}],
            "max_tokens": r.max_tokens,
            "temperature": r.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }


def _text(choice: dict[str, Any], inner: str | None, key: str) -> str | None:
    """A choice's text field (`delta.content`, `finish_reason`): a string that UTF-8 can encode, or None. Anything
    else is a chunk of the wrong shape, which fails its request (ValueError) and lets the run go on."""
    node = choice.get(inner) if inner else choice
    if node is None:
        return None
    if not isinstance(node, dict):
        raise ValueError(f"not an OpenAI stream chunk: {inner} is {type(node).__name__}, not an object")
    value = node.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"not an OpenAI stream chunk: {key} is {type(value).__name__}, not text")
    if value:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"not an OpenAI stream chunk: {key} is not valid Unicode (a lone surrogate)") from None
    return value


class _Stream:
    """One streamed response as it arrives, chunk by chunk as JSON objects, whichever client read it."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter, max_tokens: int | None = None) -> None:
        self.clock = clock
        self.max_tokens = max_tokens  # what was asked: a reply claiming more output tokens is not believed
        self.t0 = clock()
        self.start_wall = wall(self.t0)  # the run's anchor: requests and telemetry on one clock
        self.chunk_times: list[float] = []  # every chunk that carries a choice
        self.first_text: float | None = None  # the first chunk whose content is visible text
        self.parts: list[str] = []
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.error: str | None = None
        # Every request carries its own W3C trace: a vLLM with tracing on continues it, and its span joins the
        # record by this id (bench/run/tracing.py); one with tracing off ignores the header.
        self.trace_id, self.traceparent = new_trace()

    def add(self, chunk: dict[str, Any]) -> None:
        now = self.clock()
        # A hostile or broken endpoint: a chunk of the wrong shape fails this request (ValueError is a request
        # error), never the run.
        if not isinstance(chunk, dict) or not isinstance(chunk.get("choices") or [], list):
            raise ValueError(f"not an OpenAI stream chunk: {str(chunk)[:80]}")
        if any(not isinstance(c, dict) for c in chunk.get("choices") or []):
            raise ValueError(f"not an OpenAI stream chunk: {str(chunk)[:80]}")
        if chunk.get("usage") and not isinstance(chunk["usage"], dict):
            raise ValueError(f"usage is not an object: {str(chunk['usage'])[:80]}")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        if choices:
            # Timed like vLLM's benchmark client: every chunk that carries a choice. vLLM sends the first
            # one (role only, empty content) as the first token comes out of the engine; a token whose
            # text is still empty (a partial character) is a gap all the same.
            self.chunk_times.append(now)
        for choice in choices or ():
            content = _text(choice, "delta", "content")
            if content:
                self.parts.append(content)
                if self.first_text is None:
                    self.first_text = now
            if finish := _text(choice, None, "finish_reason"):
                self.finish_reason = finish

    def add_sse(self, buffer: bytes) -> bytes:
        """Feed raw SSE bytes; returns the unfinished last line, to be prefixed to the next read."""
        *lines, rest = buffer.split(b"\n")
        for line in lines:
            line = line.strip()
            if line.startswith(b"data:") and (data := line[5:].strip()) != b"[DONE]":
                try:
                    chunk = json.loads(data)
                except RecursionError:  # nested deeper than the parser goes: not a chunk, and not a crash
                    raise ValueError("not an OpenAI stream chunk: nested too deep") from None
                self.add(chunk)
        return rest

    def _bad_usage(self, out: Any) -> str | None:
        """Usage figures no server could have sent: they would make throughput whatever the endpoint says."""
        prompt = (self.usage or {}).get("prompt_tokens")
        for name, v in (("completion_tokens", out), ("prompt_tokens", prompt)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                return f"endpoint reported {name}={v!r}: not a count"
        if out is not None and self.max_tokens is not None and out > self.max_tokens:
            return f"endpoint reported {out} output tokens for max_tokens {self.max_tokens}"
        return None

    def fail(self, e: BaseException) -> None:
        # An endpoint's text quoted in the reason may hold what UTF-8 cannot encode (a lone surrogate).
        self.error = f"{type(e).__name__}: {e}"[:500].encode("utf-8", "backslashreplace").decode("utf-8")

    def record(
        self, item: QAItem, index: int, start: int, repeat: int, level: float, scheduled: float | None
    ) -> RequestRecord:
        # As `vllm bench serve`: a request ends at its last token chunk. The usage chunk, [DONE] and the
        # connection's release carry no token; counted, they inflate TPOT when answers are short.
        t1 = self.chunk_times[-1] if self.chunk_times and not self.error else self.clock()
        answer = "".join(self.parts).strip()
        usage = self.usage or {}
        bad_usage = self._bad_usage(usage.get("completion_tokens"))
        if bad_usage:  # figures no server could have sent are not used, only named
            usage = {}
        out = usage.get("completion_tokens")
        first = self.chunk_times[0] if self.chunk_times else None
        itl = [b - a for a, b in zip(self.chunk_times, self.chunk_times[1:], strict=False)]
        # vLLM's definition: time per output token after the first, so TTFT is not counted twice.
        tpot = (t1 - first) / (out - 1) if first is not None and out and out > 1 else None
        error = self.error or (None if self.usage else "stream ended without a usage chunk") or bad_usage
        s = score(answer, item.answers)
        return RequestRecord(
            index=index,
            question_id=item.id,
            lang=item.lang,
            question=item.question,
            prompt=item.user_prompt(),
            references=item.answers,
            answer=answer,
            start_time=self.start_wall,
            end_time=self.start_wall + (t1 - self.t0),
            latency_s=t1 - self.t0,
            ttft_s=first - self.t0 if first is not None else None,
            ttft_visible_s=self.first_text - self.t0 if self.first_text is not None else None,
            itl_s=itl,
            tpot_s=tpot,
            prompt_tokens=usage.get("prompt_tokens"),
            output_tokens=out,
            finish_reason=self.finish_reason,
            error=error,
            exact_match=s.exact_match,
            f1=s.f1,
            start=start,
            repeat=repeat,
            level=level,
            scheduled_time=scheduled,
            trace_id=self.trace_id,
        )


async def _post_aiohttp(session: aiohttp.ClientSession, url: str, args: dict[str, Any], s: _Stream) -> None:
    async with session.post(url, json=args, headers={"traceparent": s.traceparent}) as resp:
        if resp.status != 200:
            s.error = f"HTTP {resp.status}: {(await resp.text())[:300]}"
            return
        rest = b""
        async for data in resp.content.iter_any():
            rest = s.add_sse(rest + data)
        s.add_sse(rest + b"\n")


async def _post_openai(client: openai.AsyncOpenAI, args: dict[str, Any], s: _Stream) -> None:
    stream = await client.chat.completions.create(**args, extra_headers={"traceparent": s.traceparent})
    async for chunk in stream:
        s.add(chunk.to_dict())


def cycled(items: list[QAItem], n: int) -> Iterator[QAItem]:
    """The first n items, the list cycled when n is longer: a level of 64 in flight over 77 questions would be
    one wave and its ramp-down, not a steady state (issue 18). Repeated requests keep their question id."""
    return itertools.islice(itertools.cycle(items), n)


def _never() -> str | None:
    return None


async def _until_due(pacing: Pacing, start: float) -> float | None:
    """Wait until the next request is due; its due time in epoch seconds, None for a closed loop."""
    due = pacing.next_send_time()
    if due is None:
        return None
    await asyncio.sleep(max(0.0, start + due - time.perf_counter()))
    return wall(start) + due  # compared with start_time, it shows when the client fell behind


_Post = Callable[[dict[str, Any], _Stream], Awaitable[None]]


def _client(endpoint: Endpoint, concurrency: int) -> tuple[_Post, Callable[[], Awaitable[None]]]:
    """How the configured client posts one request, and how it closes. Made inside the level's event loop."""
    if endpoint.client == "openai":
        sdk = make_async_client(endpoint.base_url, endpoint.api_key, endpoint.timeout_s, concurrency)
        return partial(_post_openai, sdk), sdk.close
    session = make_session(endpoint.base_url, endpoint.api_key, endpoint.timeout_s, concurrency)
    url = split_userinfo(endpoint.base_url)[0]
    return partial(_post_aiohttp, session, f"{url}/v1/chat/completions"), session.close


async def _replay(
    endpoint: Endpoint,
    template: RequestTemplate,
    items: list[QAItem],
    level: Level,
    on_record: Callable[[RequestRecord], None],
    should_stop: Callable[[], str | None],
    trial: tuple[int, int],
    seed: int,
) -> str | None:
    start_index, repeat = trial
    slots = asyncio.Semaphore(level.concurrency)
    in_flight: set[asyncio.Task[None]] = set()
    pacing = level.pacing(seed + repeat)
    start = time.perf_counter()
    stopped: str | None = None
    post, close = _client(endpoint, level.concurrency)

    async def one(item: QAItem, index: int, scheduled: float | None) -> None:
        s = _Stream(max_tokens=template.request.max_tokens)
        try:
            await post(template.body(item), s)
        except _REQUEST_ERRORS as e:
            s.fail(e)
        finally:
            slots.release()
        on_record(s.record(item, index, start_index, repeat, level.value, scheduled))

    n = len(items) if level.max_requests is None else level.max_requests
    for index, item in enumerate(cycled(items, n)):
        if level.max_duration_s is not None and time.perf_counter() - start >= level.max_duration_s:
            break
        scheduled = await _until_due(pacing, start)
        await slots.acquire()
        stopped = should_stop()
        if stopped:
            slots.release()
            break
        task = asyncio.create_task(one(item, index, scheduled))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)  # finished requests are on disk, not held here
    if in_flight:
        await asyncio.gather(*in_flight)
    await close()
    return stopped


def replay(
    endpoint: Endpoint,
    template: RequestTemplate,
    items: Iterable[QAItem],
    level: Level,
    on_record: Callable[[RequestRecord], None],
    should_stop: Callable[[], str | None] = _never,
    *,
    start: int = 0,
    repeat: int = 0,
    seed: int = 0,
) -> str | None:
    """Replay `items` at one load level against `endpoint`; the records carry `start` (which server
    start) and `repeat` (which pass within it). Returns why it stopped early, or None. One event loop
    per level, so the client is made inside it."""
    if endpoint.client not in CLIENTS:
        raise ValueError(f"client {endpoint.client!r} is not one of {', '.join(CLIENTS)}")
    return asyncio.run(_replay(endpoint, template, list(items), level, on_record, should_stop, (start, repeat), seed))
