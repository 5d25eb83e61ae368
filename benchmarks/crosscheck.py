"""Cross-check bench's numbers against independent instruments on one real vLLM CPU server.

    .venv/bin/python benchmarks/crosscheck.py [--n 16] [--rounds 4] [--concurrency 1,8]
    # on a GPU, rounds long enough to resolve 5 % (the questions are cycled to n requests):
    python3 benchmarks/crosscheck.py --engine cuda --model /tmp/smol --n 320 --rounds 4 --concurrency 1,8

Prints a table: bench's output-token total vs the server's /metrics delta (must be equal), and
bench's TTFT p50, TPOT p50 and output tok/s vs vLLM's own `vllm bench serve` client replaying the same
prompts (same user message, no system prompt, greedy, same max_tokens) on the same server,
rounds interleaved (and which client goes first alternating) so drift on a noisy machine hits
both clients alike. bench's side is the replay path of `bench run` itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.core.config import RequestConfig
from bench.run import prometheus as metrics
from bench.run.client import Endpoint, RequestTemplate, cycled, replay
from bench.run.launch import make_server
from bench.run.load import Level
from bench.run.models import resolve_model

sys.path.insert(0, str(Path(__file__).parent))
from common import variant_and_questions  # noqa: E402


def bench_round(name: str, items, max_tokens: int, base_url: str, concurrency: int = 1) -> dict[str, float]:
    """The replay path of `bench run` itself (asyncio client, at most `concurrency` requests in flight)."""
    before = metrics.scrape(base_url)
    records: list = []
    t0 = time.perf_counter()
    template = RequestTemplate(name, RequestConfig(max_tokens=max_tokens, system_prompt=""))  # as the reference client
    replay(Endpoint(base_url), template, items, Level(concurrency), records.append)
    wall = time.perf_counter() - t0
    after = metrics.scrape(base_url)
    assert not any(r.error for r in records), [r.error for r in records if r.error]
    tokens = sum(r.output_tokens or 0 for r in records)
    return {
        "output_tokens": tokens,
        "metrics_generation_tokens": metrics.delta(before or {}, after or {}).get("vllm:generation_tokens_total", -1),
        "ttft_p50_ms": statistics.median(r.ttft_s for r in records if r.ttft_s is not None) * 1000,
        "ttft_visible_p50_ms": statistics.median(r.ttft_visible_s for r in records if r.ttft_visible_s is not None)
        * 1000,
        "tpot_p50_ms": statistics.median(r.tpot_s for r in records if r.tpot_s is not None) * 1000,
        "output_tok_per_s": tokens / wall,
    }


def vllm_round(
    base_url: str, name: str, model: str, prompts: Path, n: int, max_tokens: int, out: Path, concurrency: int = 1
) -> dict:
    from vllm.benchmarks.serve import add_cli_args, main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    args = parser.parse_args(
        [
            "--backend", "openai-chat", "--base-url", base_url, "--endpoint", "/v1/chat/completions",
            "--model", name, "--tokenizer", model, "--dataset-name", "custom", "--dataset-path", str(prompts),
            # The prompt goes out as the user message; the server applies the chat template, as for bench.
            "--skip-chat-template", "--custom-output-len", str(max_tokens), "--num-prompts", str(n),
            "--max-concurrency", str(concurrency), "--temperature", "0", "--save-result", "--result-dir", str(out),
        ]
    )  # fmt: skip
    return main(args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=16, help="requests per round (the built-in questions, cycled)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--concurrency", default="1", help="comma-separated levels, each checked on the same server")
    p.add_argument("--engine", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--model", default=None, help="a model folder instead of the variant's (e.g. /tmp/smol)")
    p.add_argument("--json", type=Path, default=None, help="also write every round's figures here")
    a = p.parse_args()
    cfg, server, questions = variant_and_questions(a.engine, seed=1)
    max_tokens = cfg.request.max_tokens
    # A round longer than the question set cycles it, as load.max_requests does in `bench run`.
    items = list(cycled(questions, a.n))
    model = resolve_model(a.model or server.model)
    levels = [int(c) for c in a.concurrency.split(",")]
    results: dict[int, tuple[list[dict], list[dict]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp) / "prompts.jsonl"
        prompts.write_text("".join(json.dumps({"prompt": it.user_prompt()}, ensure_ascii=False) + "\n" for it in items))
        with make_server(server, model, None, Path(tmp) / "server.log") as srv:
            # Warm-up over every prompt: both clients then meet the same prefix cache.
            template = RequestTemplate(server.served_model_name, RequestConfig(max_tokens=max_tokens, system_prompt=""))
            replay(Endpoint(srv.base_url), template, questions, Level(max(levels)), lambda r: None)
            for c in levels:
                ours, theirs = results.setdefault(c, ([], []))
                for r in range(a.rounds):
                    # Alternate which client goes first, so neither always follows the other.
                    for who in ("bench", "vllm") if r % 2 == 0 else ("vllm", "bench"):
                        if who == "bench":
                            name = server.served_model_name
                            ours.append(bench_round(name, items, max_tokens, srv.base_url, c))
                            continue
                        res = vllm_round(srv.base_url, server.served_model_name, model, prompts, len(items),
                                         max_tokens, Path(tmp) / f"v{c}-{r}", c)  # fmt: skip
                        theirs.append({"ttft_p50_ms": res["median_ttft_ms"], "tpot_p50_ms": res["median_tpot_ms"],
                                       "output_tok_per_s": res["output_throughput"],
                                       "output_tokens": res["total_output_tokens"]})  # fmt: skip
    if a.json:
        a.json.write_text(json.dumps({str(c): {"bench": o, "vllm": t} for c, (o, t) in results.items()}, indent=1))
    for c, (ours, theirs) in results.items():
        report(c, ours, theirs, a, server, max_tokens)


def report(
    concurrency: int, ours: list[dict], theirs: list[dict], a: argparse.Namespace, server, max_tokens: int
) -> None:
    def mean(rows: list[dict], key: str) -> float:
        return statistics.fmean(row[key] for row in rows)

    def spread(rows: list[dict], key: str) -> float:
        """Half the range of the rounds, as a share of their mean: what one round can resolve."""
        vals = [row[key] for row in rows]
        return (max(vals) - min(vals)) / 2 / statistics.fmean(vals)

    print(f"\n{a.rounds} interleaved rounds of {a.n} requests at concurrency"
          f" {concurrency}, {a.engine} engine, {server.dtype}, max_tokens {max_tokens}\n")  # fmt: skip
    print(f"{'check':34} {'bench':>12} {'reference':>12} {'diff':>8} {'rounds +-':>22}")
    for r, row in enumerate(ours):
        ok = row["output_tokens"] == row["metrics_generation_tokens"]
        print(f"{f'round {r}: output tokens vs /metrics':34} {row['output_tokens']:>12} "
              f"{row['metrics_generation_tokens']:>12.0f} {'equal' if ok else 'DIFFER':>8}")  # fmt: skip
    labels = {
        "ttft_p50_ms": "TTFT p50 (ms) vs vllm bench serve",
        "tpot_p50_ms": "TPOT p50 (ms) vs vllm bench serve",
        "output_tok_per_s": "output tok/s vs vllm bench serve",
        "output_tokens": "output tokens vs vllm bench serve",
    }
    for key, label in labels.items():
        b, v = mean(ours, key), mean(theirs, key)
        print(f"{label:34} {b:>12.2f} {v:>12.2f} {100 * (b - v) / v:>+7.1f}%"
              f"   bench {spread(ours, key):5.1%}, vllm {spread(theirs, key):5.1%}")  # fmt: skip
    # vllm bench serve has no such figure: guidellm's and aiperf's TTFT, to the first visible text.
    print(f"{'TTFT p50 (ms), first visible text':34} {mean(ours, 'ttft_visible_p50_ms'):>12.2f}")


if __name__ == "__main__":
    main()
    # vLLM's import of triton prints pages of nanobind "leaked" warnings at interpreter exit; they
    # would bury the table above. Nothing is left to clean up here, so skip the interpreter's teardown.
    sys.stdout.flush()
    os._exit(0)
