"""What sampling costs: sequential replay wall-clock with telemetry on vs off, on one real CPU server.

    .venv/bin/python benchmarks/telemetry_overhead.py [--n 12] [--pairs 6]

On and off alternate (on, off, off, on, ...) within one server start so machine drift cancels;
prints each replay and the mean and median difference. Target: under 2%.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.run import prometheus as metrics
from bench.run import telemetry
from bench.run.client import Endpoint, RequestTemplate, replay
from bench.run.launch import make_server
from bench.run.load import Level
from bench.run.models import resolve_model

sys.path.insert(0, str(Path(__file__).parent))
from common import cpu_single  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=12, help="questions per replay")
    p.add_argument("--pairs", type=int, default=6)
    a = p.parse_args()
    cfg, server, items = cpu_single(a.n, seed=2)
    template = RequestTemplate(server.served_model_name, cfg.request)
    walls: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        with make_server(server, resolve_model(server.model), None, Path(tmp) / "server.log") as srv:
            # One pass first: every measured pass then meets the same prefix cache.
            replay(Endpoint(srv.base_url), template, items, Level(1), lambda r: None)
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
                    replay(Endpoint(srv.base_url), template, items, Level(1), lambda r: None)
                    walls[on].append(time.perf_counter() - t0)
                print(f"telemetry {'on ' if on else 'off'}: {walls[on][-1]:.2f} s", flush=True)
    print(f"\n{a.pairs} replays of {a.n} requests each way (sampling every {cfg.telemetry_interval_s} s, /metrics 1 s)")
    for label, f in (("mean", statistics.fmean), ("median", statistics.median)):
        on, off = f(walls[True]), f(walls[False])
        print(f"{label:6}: on {on:.2f} s, off {off:.2f} s, difference {100 * (on - off) / off:+.2f}%")


if __name__ == "__main__":
    main()
