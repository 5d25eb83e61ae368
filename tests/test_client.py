"""The SSE stream parser and its timing, fed bytes as vLLM sends them, on a clock the test advances."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.run.client import _Stream
from bench.run.dataset import QAItem

ITEM = QAItem(id="q1", question="首都？", context="北京是中国的首都。", answers=["北京"], lang="zh")


class Clock:
    """Returns `now`; the test moves it between chunks."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def sse(obj: dict[str, Any] | str) -> bytes:
    return b"data: " + (obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)).encode() + b"\n\n"


def delta(content: str | None = None, role: str | None = None, finish: str | None = None) -> dict[str, Any]:
    d = {k: v for k, v in (("role", role), ("content", content)) if v is not None}
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


USAGE = {"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 4}}


def feed(clock: Clock, events: list[tuple[float, bytes]]) -> _Stream:
    """Each event arrives at its time (seconds after the request was sent), in one read."""
    s, rest = _Stream(clock), b""
    for t, data in events:
        clock.now = 100.0 + t
        rest = s.add_sse(rest + data)
    s.add_sse(rest + b"\n")
    return s


def test_role_only_first_chunk_times_both_ttft_definitions() -> None:
    clock = Clock()
    s = feed(
        clock,
        [
            (0.3, sse(delta("", role="assistant"))),  # vLLM: the first token is out, its text is not
            (0.4, sse(delta(""))),  # half of a multi-byte character
            (0.6, sse(delta("北京"))),
            (0.7, sse(delta("", finish="stop"))),
            (0.9, sse(USAGE)),
            (1.5, sse("[DONE]")),
        ],
    )
    clock.now = 102.0  # the connection's release: not part of the request
    r = s.record(ITEM, 0, start=1, repeat=2, level=4.0, scheduled=None)
    assert r.ttft_s == pytest.approx(0.3)  # vLLM's definition: the first chunk with a choice
    assert r.ttft_visible_s == pytest.approx(0.6)  # guidellm's and aiperf's: the first visible text
    assert r.latency_s == pytest.approx(0.7)  # ends at the last token chunk, as vllm bench serve
    assert r.end_time - r.start_time == pytest.approx(0.7)
    assert r.itl_s == pytest.approx([0.1, 0.2, 0.1])
    assert r.tpot_s == pytest.approx((0.7 - 0.3) / 3)  # completion_tokens - 1
    assert (r.answer, r.output_tokens, r.prompt_tokens, r.finish_reason, r.error) == ("北京", 4, 20, "stop", None)
    assert (r.start, r.repeat, r.level, r.f1) == (1, 2, 4.0, 1.0)


def test_a_chunk_with_several_tokens_is_one_gap_and_tokens_come_from_usage() -> None:
    # Under speculation one chunk carries the accepted tokens of a step.
    usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9}}
    s = feed(
        Clock(),
        [(0.2, sse(delta("The capital", role="assistant"))), (0.5, sse(delta(" is Beijing, the", finish="length")))]
        + [(0.6, sse(usage) + sse("[DONE]"))],
    )
    r = s.record(ITEM, 0, 0, 0, 1.0, None)
    assert r.answer == "The capital is Beijing, the" and r.output_tokens == 9
    assert r.ttft_s == r.ttft_visible_s == pytest.approx(0.2)
    assert r.itl_s == pytest.approx([0.3]) and r.tpot_s == pytest.approx(0.3 / 8)
    assert r.latency_s == pytest.approx(0.5)


def test_lines_split_across_reads_are_joined() -> None:
    whole = sse(delta("Bei", role="assistant")) + sse(delta("jing", finish="stop")) + sse(USAGE) + sse("[DONE]")
    cuts = [0, 7, 8, 31, 60, 61, len(whole) - 3, len(whole)]
    s = feed(Clock(), [(0.1 * i, whole[a:b]) for i, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False))])
    r = s.record(ITEM, 0, 0, 0, 1.0, None)
    assert r.answer == "Beijing" and len(s.chunk_times) == 2 and r.error is None and r.output_tokens == 4


def test_carriage_returns_and_comments_are_tolerated() -> None:
    data = b": ping\r\n\r\n" + sse(delta("x", role="assistant")).replace(b"\n", b"\r\n") + sse(USAGE)
    r = feed(Clock(), [(0.1, data)]).record(ITEM, 0, 0, 0, 1.0, None)
    assert r.answer == "x" and r.error is None


def test_a_stream_without_usage_is_an_error_and_a_failure_ends_when_it_failed() -> None:
    clock = Clock()
    s = feed(clock, [(0.2, sse(delta("x", role="assistant")))])
    assert s.record(ITEM, 0, 0, 0, 1.0, None).error == "stream ended without a usage chunk"
    s.fail(ConnectionResetError("reset by peer"))
    clock.now = 103.0
    r = s.record(ITEM, 0, 0, 0, 1.0, None)
    assert r.error == "ConnectionResetError: reset by peer" and r.latency_s == pytest.approx(3.0)


def test_no_chunk_at_all_has_no_ttft() -> None:
    r = feed(Clock(), [(0.1, sse(USAGE))]).record(ITEM, 0, 0, 0, 1.0, None)
    assert r.ttft_s is None and r.ttft_visible_s is None and r.tpot_s is None and r.itl_s == []


WRONG_SHAPES = {
    "delta a string": b'data: {"choices": [{"index": 0, "delta": "word"}]}\n\n',
    "content a number": b'data: {"choices": [{"index": 0, "delta": {"content": 42}}]}\n\n',
    "a lone surrogate": b'data: {"choices": [{"index": 0, "delta": {"content": "\\ud800"}}]}\n\n',
    "finish_reason a list": b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": [1]}]}\n\n',
    "nested 100k deep": b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n",
    "invalid UTF-8": b'data: {"choices": [{"delta": {"content": "\xff\xfe"}}]}\n\n',
}


@pytest.mark.parametrize("chunk", list(WRONG_SHAPES.values()), ids=list(WRONG_SHAPES))
def test_a_wrong_shaped_chunk_is_a_value_error_of_that_request(chunk: bytes) -> None:
    s = _Stream(Clock())
    with pytest.raises(ValueError, match="not an OpenAI stream chunk|codec|Expecting"):
        s.add_sse(chunk)
    s.fail(ValueError("x"))
    rec = s.record(ITEM, 0, 0, 0, 1.0, None)
    assert rec.error and json.dumps(rec.error, ensure_ascii=False).encode("utf-8")  # writable as UTF-8


def test_usage_counts_that_are_text_fail_the_request_not_the_run() -> None:
    s = _Stream(Clock(), max_tokens=8)
    s.add_sse(sse(delta("a")) + sse({"choices": [], "usage": {"prompt_tokens": "ten", "completion_tokens": "4"}}))
    rec = s.record(ITEM, 0, 0, 0, 1.0, None)  # computing TPOT from "4" crashed the whole run
    assert rec.error is not None and "not a count" in rec.error and rec.output_tokens is None
