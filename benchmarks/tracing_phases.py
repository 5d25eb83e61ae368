"""Where traced requests' time went, per server start and load level, from a run folder's requests.jsonl.

    .venv/bin/python benchmarks/tracing_phases.py RUN_DIR      # a run made with tracing.enabled=true

Medians (max) in ms of: vLLM's queue and prefill; the time before the engine queued the request (e2e - queue -
prefill - decode); the client's latency minus the server's e2e; the client's TTFT minus the server's.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from bench.core.files import read_records
from bench.core.records import RequestRecord


def _ms(values: list[float]) -> str:
    return f"{1e3 * statistics.median(values):7.1f} ({1e3 * max(values):7.1f})"


def row(records: list[RequestRecord]) -> str:
    def of(f) -> list[float]:  # type: ignore[no-untyped-def]
        return [f(r) for r in records]

    before = of(lambda r: r.server_e2e_s - r.server_queue_s - r.server_prefill_s - r.server_decode_s)
    return (
        f"queue {_ms(of(lambda r: r.server_queue_s))}  prefill {_ms(of(lambda r: r.server_prefill_s))}  "
        f"before queue {_ms(before)}  latency - e2e {_ms(of(lambda r: r.latency_s - r.server_e2e_s))}  "
        f"TTFT client - server {_ms(of(lambda r: r.ttft_s - r.server_ttft_s))}"
    )


def main(run_dir: Path) -> int:
    traced = [r for r in read_records(run_dir) if r.server_e2e_s is not None and r.error is None]
    if not traced:
        print(f"{run_dir}: no request carries the server's phases (run it with tracing.enabled=true)")
        return 1
    for key in sorted({(r.start, r.level) for r in traced}):
        group = [r for r in traced if (r.start, r.level) == key]
        print(f"start {key[0]} level {key[1]:g} n={len(group)}: {row(group)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
