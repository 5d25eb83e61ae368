"""How often each variant is measured: fresh server starts x passes over the dataset in each."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.errors import ConfigError

__all__ = ["MAX_COUNT", "PREFIX_CACHE", "UNTIL", "Repeats", "to_repeats"]

PREFIX_CACHE = ("reset", "keep")
UNTIL = ("fixed", "clear")  # every start as planned; or stop once the verdict is clear (bench/regress/rounds.py)
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
    # fixed: `starts` rounds. clear: `starts` is a cap; after each round (two at least) the sequential rule of
    # docs/regression.md stops at a clear regression or a clear no-regression of every variant against the
    # baseline variant, or against `against`, a stored baseline folder (a nightly: rounds on this side only).
    until: str = "fixed"
    against: str | None = None
    # A deadline for the whole sweep: no round is started that the pace so far says would end past it.
    max_minutes: float | None = None


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
    if out.until not in UNTIL:
        raise ConfigError(f"repeats.until={out.until!r} is not one of {', '.join(UNTIL)}")
    if out.max_minutes is not None and not (isinstance(out.max_minutes, (int, float)) and 0 < out.max_minutes < 1e6):
        raise ConfigError(f"repeats.max_minutes={out.max_minutes!r} is out of range: a number of minutes > 0")
    if out.against is not None and not (Path(out.against) / ".").is_dir():
        raise ConfigError(f"repeats.against={out.against!r}: no results folder there (a stored baseline's)")
    return out


def _count(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_COUNT
