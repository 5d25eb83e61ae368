"""Replay QA items as streamed chat completions and time every chunk."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import openai

from bench.dataset import QAItem
from bench.results import RequestRecord
from bench.scoring import score


def make_client(base_url: str, api_key: str | None, timeout_s: float) -> openai.OpenAI:
    # max_retries=0: a retried request would hide a server fault and distort its latency.
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=api_key or "EMPTY", timeout=timeout_s, max_retries=0)


def messages(item: QAItem, system_prompt: str) -> list[dict[str, str]]:
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*system, {"role": "user", "content": item.user_prompt()}]


def send(
    client: openai.OpenAI,
    model: str,
    item: QAItem,
    index: int,
    system_prompt: str,
    max_tokens: int,
    repeat: int = 0,
) -> RequestRecord:
    """One greedy streamed request. Failures become a record with `error` set, never an exception."""
    start_wall, t0 = time.time(), time.perf_counter()
    chunk_times: list[float] = []
    parts: list[str] = []
    usage = None
    finish_reason = None
    error = None
    try:
        stream = client.chat.completions.create(
            model=model,
            messages=messages(item, system_prompt),  # type: ignore[arg-type]
            max_tokens=max_tokens,
            temperature=0.0,
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    chunk_times.append(time.perf_counter())
                    parts.append(choice.delta.content)
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
    except openai.APIError as e:
        error = f"{type(e).__name__}: {e}"[:500]
    except (OSError, ValueError) as e:  # a torn stream or connection the SDK did not wrap
        error = f"{type(e).__name__}: {e}"[:500]
    t1 = time.perf_counter()
    answer = "".join(parts).strip()
    output_tokens = usage.completion_tokens if usage else None
    ttft = chunk_times[0] - t0 if chunk_times else None
    itl = [b - a for a, b in zip(chunk_times, chunk_times[1:], strict=False)]
    # vLLM's definition: time per output token after the first, so TTFT is not counted twice.
    tpot = (
        (t1 - chunk_times[0]) / (output_tokens - 1)
        if ttft is not None and output_tokens and output_tokens > 1
        else None
    )
    if error is None and usage is None:
        error = "stream ended without a usage chunk"
    s = score(answer, item.answers)
    return RequestRecord(
        index=index,
        question_id=item.id,
        lang=item.lang,
        question=item.question,
        prompt=item.user_prompt(),
        references=item.answers,
        answer=answer,
        start_time=start_wall,
        end_time=start_wall + (t1 - t0),
        latency_s=t1 - t0,
        ttft_s=ttft,
        itl_s=itl,
        tpot_s=tpot,
        prompt_tokens=usage.prompt_tokens if usage else None,
        output_tokens=output_tokens,
        finish_reason=finish_reason,
        error=error,
        exact_match=s.exact_match,
        f1=s.f1,
        repeat=repeat,
    )


def replay_sequential(
    client: openai.OpenAI,
    model: str,
    items: Iterable[QAItem],
    system_prompt: str,
    max_tokens: int,
    on_record: Callable[[RequestRecord], None],
    should_stop: Callable[[], str | None] = lambda: None,
    repeat: int = 0,
) -> str | None:
    """One request at a time, as the write-up did. Returns why it stopped early, or None."""
    for i, item in enumerate(items):
        reason = should_stop()
        if reason:
            return reason
        on_record(send(client, model, item, i, system_prompt, max_tokens, repeat))
    return None
