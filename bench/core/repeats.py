"""How often each variant is measured: fresh server starts x passes over the dataset in each."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bench.core.errors import ConfigError

__all__ = ["MAX_COUNT", "PREFIX_CACHE", "Repeats", "to_repeats"]

PREFIX_CACHE = ("reset", "keep")
# The most of anything countable that sizes work (starts, passes, requests, levels, sweep points, probes): far beyond
# any real benchmark, and small enough that a typo (1e18 requests, 2**64 starts) is refused, not run or crashed on.
MAX_COUNT = 10**6


@dataclass
class Repeats:
    """How often each variant is measured: `starts` fresh servers, `passes` over the dataset in each."""

    starts: int = 1
    passes: int = 1
    # reset: the prefix cache is emptied before every pass, so each pass meets the same cache (vLLM needs
    # VLLM_SERVER_DEV_MODE=1 for it; bench sets it on the servers it starts). keep: later passes over the
    # same prompts hit the cache left by earlier ones (their TTFT then measures the cache).
    prefix_cache: str = "reset"


def to_repeats(value: Any) -> Repeats:
    """`repeats: N` (older configs: N passes in one start) or `repeats: {starts, passes, prefix_cache}`."""
    if isinstance(value, Repeats):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        out = Repeats(passes=value)
    elif isinstance(value, dict) and set(value) <= {f.name for f in dataclasses.fields(Repeats)}:
        out = Repeats(**value)
    else:
        raise ConfigError(
            f"repeats={value!r}: give a number of passes or {{starts: S, passes: P, prefix_cache: reset}}"
        )
    counts = (out.starts, out.passes)
    if not all(_count(n) for n in counts) or out.prefix_cache not in PREFIX_CACHE:
        raise ConfigError(
            f"repeats={value!r} is out of range: starts and passes whole numbers in 1..{MAX_COUNT:,},"
            f" prefix_cache one of {', '.join(PREFIX_CACHE)}"
        )
    return out


def _count(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_COUNT
