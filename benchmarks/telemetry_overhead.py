"""What sampling costs: sequential replay wall-clock with telemetry on vs off, on one real CPU server.

    .venv/bin/python benchmarks/telemetry_overhead.py [--n 12] [--pairs 3]

On and off alternate (on, off, off, on, ...) within one server start so machine drift cancels;
prints each replay and the mean difference. Target: under 2%.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import metrics, telemetry
from bench.client import Level, make_client, replay, send
from bench.models import resolve_model
from bench.runner import make_server

sys.path.insert(0, str(Path(__file__).parent))
from common import cpu_single  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=12, help="questions per replay")
    p.add_argument("--pairs", type=int, default=4)
    a = p.parse_args()
    cfg, server, items = cpu_single(a.n, seed=2)
    name, prompt = server.served_model_name, cfg.dataset.system_prompt
    walls: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        with make_server(server, resolve_model(server.model), None, Path(tmp) / "server.log") as srv:
            client = make_client(srv.base_url, None, 300)
            for item in items:  # one pass first: every measured pass then meets the same prefix cache
                send(client, name, item, -1, prompt, server.max_tokens)
            order = [on for i in range(a.pairs) for on in ((True, False) if i % 2 == 0 else (False, True))]
            for on in order:
                probes = (
                    (
                        telemetry.Sampler(cfg.telemetry_interval_s, False, srv.pids),
                        metrics.KvPeakPoller(srv.base_url, None),
                    )
                    if on
                    else ()
                )
                with contextlib.ExitStack() as stack:
                    for probe in probes:
                        stack.enter_context(probe)
                    t0 = time.perf_counter()
                    replay((srv.base_url, None, 300), name, items, prompt, server.max_tokens, Level(1), lambda r: None)
                    walls[on].append(time.perf_counter() - t0)
                print(f"telemetry {'on ' if on else 'off'}: {walls[on][-1]:.2f} s", flush=True)
    on, off = statistics.fmean(walls[True]), statistics.fmean(walls[False])
    print(f"\nmean of {a.pairs} replays of {a.n} requests: on {on:.2f} s, off {off:.2f} s,", end=" ")
    print(f"difference {100 * (on - off) / off:+.2f}% (sampling every {cfg.telemetry_interval_s} s, /metrics 1 s)")


if __name__ == "__main__":
    main()
