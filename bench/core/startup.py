"""Start-up as a compared figure: each start's time to healthy, by the compile cache's state (cold or warm)."""

from __future__ import annotations

from collections.abc import Sequence

from bench.core.metric_registry import CACHE_STATES
from bench.core.records import Start


def metric_name(state: str) -> str:
    return f"startup_{state}_s"


STARTUP_METRICS = tuple(metric_name(s) for s in CACHE_STATES)


def by_cache(starts: Sequence[Start]) -> dict[str, list[float]]:
    """startup_cold_s / startup_warm_s -> each start's time to healthy, in start order; only the states seen.
    A start without a recorded cache state (older results, an endpoint) has no figure here."""
    out: dict[str, list[float]] = {}
    for s in sorted(starts, key=lambda s: s.start):
        if s.compile_cache in CACHE_STATES and s.startup_s is not None:
            out.setdefault(metric_name(s.compile_cache), []).append(float(s.startup_s))
    return out


def means(starts: Sequence[Start]) -> dict[str, float]:
    """A run's row: the mean time to healthy of its cold starts and of its warm starts."""
    return {m: sum(v) / len(v) for m, v in by_cache(starts).items()}
