"""One anchor pair (wall clock, monotonic clock) per process: every timestamp bench records derives from it."""

from __future__ import annotations

import time

# Requests and telemetry samples are timed on the monotonic clock and written as epoch seconds through
# this one pair, so an NTP step or a manual clock change mid-run cannot misalign them.
_WALL, _MONO = time.time(), time.perf_counter()


def wall(mono: float | None = None) -> float:
    """Epoch seconds of a time.perf_counter() reading (now, without one)."""
    return _WALL + ((time.perf_counter() if mono is None else mono) - _MONO)
