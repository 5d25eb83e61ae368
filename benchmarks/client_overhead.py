"""How fast bench's client can go: against an endpoint that answers at once, beside `vllm bench serve`.

    .venv/bin/python benchmarks/client_overhead.py [--n 2000] [--concurrency 32] [--chunks 16]
    .venv/bin/python benchmarks/client_overhead.py --memory 10000

Both clients replay the same number of streamed requests, at the same concurrency, against the
same local instant endpoint (benchmarks/instant_endpoint.py, its own process), alternating
(bench, vllm, bench over the openai SDK, bench, ...) so drift hits all. Prints requests/s, streamed
chunks/s and the client's CPU time per request (µs). --memory streams N records to disk and prints
bench's peak RSS.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.core.config import RequestConfig
from bench.core.files import RequestWriter
from bench.core.records import RequestRecord
from bench.run.client import Endpoint, RequestTemplate, replay
from bench.run.dataset import QAItem
from bench.run.load import Level
from bench.run.models import resolve_model
from bench.run.server import VllmServer, free_port

ENDPOINT = str(Path(__file__).with_name("instant_endpoint.py"))


def template(chunks: int) -> RequestTemplate:
    return RequestTemplate("instant", RequestConfig(max_tokens=chunks, system_prompt=""))


def items(n: int) -> list[QAItem]:
    return [QAItem(f"q{i}", "When did it open?", "The bridge opened in 1901.", ["1901"], "en") for i in range(n)]


def bench_client(target: Endpoint, n: int, concurrency: int, chunks: int, client: str = "aiohttp") -> dict[str, float]:
    records: list[RequestRecord] = []
    cpu0, t0 = time.process_time(), time.perf_counter()
    endpoint = dataclasses.replace(target, client=client)
    replay(endpoint, template(chunks), items(n), Level(concurrency), records.append)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert not [r for r in records if r.error], [r.error for r in records if r.error][:3]
    return {"req_s": n / wall, "chunks_s": sum(r.output_tokens or 0 for r in records) / wall, "cpu_us": 1e6 * cpu / n}


def vllm_client(base_url: str, n: int, concurrency: int, chunks: int, tokenizer: str, out: str) -> dict[str, float]:
    from vllm.benchmarks.serve import add_cli_args, main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    args = parser.parse_args(
        [
            "--backend", "openai-chat", "--base-url", base_url, "--endpoint", "/v1/chat/completions",
            "--model", "instant", "--tokenizer", tokenizer, "--dataset-name", "random", "--random-input-len", "16",
            "--random-output-len", str(chunks), "--num-prompts", str(n), "--max-concurrency", str(concurrency),
            "--temperature", "0", "--disable-tqdm", "--save-result", "--result-dir", out,
        ]
    )  # fmt: skip
    cpu0 = time.process_time()
    res = main(args)
    cpu = time.process_time() - cpu0
    return {"req_s": res["completed"] / res["duration"], "chunks_s": res["total_output_tokens"] / res["duration"],
            "cpu_us": 1e6 * cpu / n}  # fmt: skip


def memory(target: Endpoint, n: int, concurrency: int, chunks: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, RequestWriter(Path(tmp) / "requests.jsonl") as w:
        before = psutil.Process().memory_info().rss
        t0 = time.perf_counter()
        replay(target, template(chunks), items(n), Level(concurrency), w.write)
        wall = time.perf_counter() - t0
        size = (Path(tmp) / "requests.jsonl").stat().st_size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{n} requests at concurrency {concurrency} in {wall:.1f} s; records on disk {size / 2**20:.1f} MiB;")
    print(f"bench process RSS before {before / 2**20:.0f} MiB, peak {peak:.0f} MiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--chunks", type=int, default=16)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--memory", type=int, default=0, help="only the memory check, with this many requests")
    a = p.parse_args()
    port = free_port("127.0.0.1")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, ENDPOINT, str(port), str(a.chunks)]
        with VllmServer(cmd, "127.0.0.1", port, Path(tmp) / "endpoint.log", {}, 30) as srv:
            target = Endpoint(srv.base_url, timeout_s=60.0)
            if a.memory:
                memory(target, a.memory, a.concurrency, a.chunks)
                return
            tokenizer = resolve_model("bundled:smollm2-135m")
            ours, sdk, theirs = [], [], []
            bench_client(target, 200, a.concurrency, a.chunks)  # warm-up
            for r in range(a.rounds):
                ours.append(bench_client(target, a.n, a.concurrency, a.chunks))
                theirs.append(vllm_client(srv.base_url, a.n, a.concurrency, a.chunks, tokenizer, f"{tmp}/v{r}"))
                sdk.append(bench_client(target, a.n, a.concurrency, a.chunks, client="openai"))
    print(f"\n{a.rounds} alternating rounds of {a.n} streamed requests, concurrency {a.concurrency}, "
          f"{a.chunks} chunks each, {os.cpu_count()} cores (endpoint in its own process)\n")  # fmt: skip
    print(f"{'client':25} {'requests/s':>11} {'chunks/s':>10} {'CPU µs/request':>15}")
    for name, rows in (("bench", ours), ("vllm bench serve", theirs), ("bench load.client=openai", sdk)):
        m = {k: statistics.fmean(r[k] for r in rows) for k in rows[0]}
        print(f"{name:25} {m['req_s']:>11.0f} {m['chunks_s']:>10.0f} {m['cpu_us']:>15.0f}")
    ratio = statistics.fmean(r["req_s"] for r in ours) / statistics.fmean(r["req_s"] for r in theirs)
    print(f"\nbench / vllm bench serve requests/s: {ratio:.2f}x")


if __name__ == "__main__":
    main()
    # vLLM's import of triton prints pages of nanobind "leaked" warnings at interpreter exit; they
    # would bury the table above. Nothing is left to clean up here, so skip the interpreter's teardown.
    sys.stdout.flush()
    os._exit(0)
