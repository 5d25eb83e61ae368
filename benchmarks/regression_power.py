"""How often does `compare` raise a false alarm, and which real slowdowns does it catch? On the real CPU engine.

    # 1. the pool: real server starts of the same config and of real slowdowns, interleaved (rotated order),
    #    a few passes each; resumable, so build it in short holds of the shared lock
    flock /tmp/bench-real.lock .venv/bin/python benchmarks/regression_power.py build --pool results/power --hold-s 780
    # 2. the rates: many same-size subsets of the pool, judged by bench.regress.compare's rule (no server)
    .venv/bin/python benchmarks/regression_power.py analyze --pool results/power
    # 3. the same wall-clock model for noise measured elsewhere (a GPU nightly's between/within-start CVs)
    .venv/bin/python benchmarks/regression_power.py model --between 0.08 --within 0.06 --budgets 2x3,4x5

Full nightlies for every comparison would take days here. Instead one pool of starts is built once and
comparisons are drawn from it: a same-config comparison takes disjoint sets of same-config starts for
its two sides; a detection takes same-config starts against a slowdown's starts. A budget (starts,
passes, questions) uses the first `passes` passes of each start and a random subset of the questions
(load is sequential, so a pass over a subset lasts the sum of its requests' latencies).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.config import DatasetConfig
from bench.core.files import atomic_write_text
from bench.core.records import OK, RequestRecord
from bench.regress.compare import REGRESSION, Thresholds, compare_results
from bench.regress.sides import Side
from bench.regress.stats import hierarchical_ratio_interval, noise_split
from bench.run import prometheus as metrics
from bench.run.client import Endpoint, RequestTemplate, replay
from bench.run.dataset import load_dataset
from bench.run.launch import make_server
from bench.run.load import Level
from bench.run.models import resolve_model
from bench.run.server import DEV_MODE_ENV, reset_prefix_cache

sys.path.insert(0, str(Path(__file__).parent))
from common import single_on  # noqa: E402

# The same config (the nightly's `spec_ngram`, n-gram speculation of 5 tokens) and real slowdowns of it:
# shorter speculation, so fewer tokens per engine step; nothing synthetic. Their sizes are measured on the
# pool itself (every start of each, interleaved), see `analyze`. (Chunked prefill, --max-num-batched-tokens
# 128 and 32, did not slow this workload down at all in a first probe: 45 s a pass either way.)
SPEC = {"method": "ngram", "prompt_lookup_max": 4, "prompt_lookup_min": 2}
CONFIGS: dict[str, dict[str, Any]] = {
    "same": {"speculative_config": SPEC | {"num_speculative_tokens": 5}},
    "spec3": {"speculative_config": SPEC | {"num_speculative_tokens": 3}},
    "spec2": {"speculative_config": SPEC | {"num_speculative_tokens": 2}},
    "spec1": {"speculative_config": SPEC | {"num_speculative_tokens": 1}},
    "chunk128": {"extra_args": ["--max-num-batched-tokens", "128"]},
    "chunk32": {"extra_args": ["--max-num-batched-tokens", "32"]},
    "no_prefix_cache": {"extra_args": ["--no-enable-prefix-caching"]},
}
WARMUP = 2  # requests before the first pass, from questions outside the measured set


def start_plan(configs: list[str], i: int) -> str:
    """The i-th start of the pool: round i // n, configs rotated by the round (A B C, B C A, ...)."""
    n = len(configs)
    r, pos = divmod(i, n)
    return configs[(pos + r) % n]


def one_start(name: str, change: dict[str, Any], passes: int, questions: int, pool: Path, index: int) -> dict[str, Any]:
    cfg, server = single_on("cpu")
    extra = [*server.extra_args, *change.get("extra_args", [])]
    spec = change.get("speculative_config")
    server = dataclasses.replace(server, extra_args=extra, speculative_config=spec, env={**server.env, **DEV_MODE_ENV})
    everything = load_dataset(DatasetConfig(path="data/qa.json", sample_size=None, seed=0))
    items = load_dataset(DatasetConfig(path="data/qa.json", sample_size=questions, seed=0))
    ids = {it.id for it in items}
    warmup = [it for it in everything if it.id not in ids][:WARMUP]
    model = resolve_model(server.model)
    log = pool / "logs" / f"{index:03d}-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"config": name, "index": index, "change": change, "started_at": time.time(), "passes": []}
    with make_server(server, model, None, log) as srv:
        out["startup_s"] = srv.startup_s
        endpoint = Endpoint(srv.base_url, None, 120.0)
        template = RequestTemplate(server.served_model_name, cfg.request)
        replay(endpoint, template, warmup, Level(1), lambda r: None)
        for p in range(passes):
            reset = reset_prefix_cache(srv.base_url)
            before = metrics.scrape(srv.base_url)
            records: list[RequestRecord] = []
            t0 = time.perf_counter()
            replay(endpoint, template, items, Level(1), records.append, repeat=p)
            wall = time.perf_counter() - t0
            d = metrics.delta(before or {}, metrics.scrape(srv.base_url) or {})
            out["passes"].append(
                {
                    "pass": p,
                    "wall_clock_s": wall,
                    "reset": reset,
                    "prefix_cache_hit_rate": metrics.prefix_cache_hit_rate(d),
                    "requests": [
                        {k: getattr(r, k) for k in ("question_id", "latency_s", "ttft_s", "tpot_s", "output_tokens",
                                                    "f1", "error")}
                        for r in records
                    ],
                }
            )  # fmt: skip
    out["finished_at"] = time.time()
    return out


def build(a: argparse.Namespace) -> None:
    pool: Path = a.pool
    (pool / "starts").mkdir(parents=True, exist_ok=True)
    if time.time() > a.not_after:
        print("past --not-after: no new server starts")
        return
    configs = a.configs.split(",")
    meta = {"configs": configs, "passes": a.passes, "questions": a.questions}
    meta_file = pool / "pool.json"
    if meta_file.exists():
        old = json.loads(meta_file.read_text())
        if old != meta:
            sys.exit(f"{pool} was built with {old}; use the same --configs/--passes/--questions or another --pool")
    atomic_write_text(meta_file, json.dumps(meta) + "\n")
    t0 = time.monotonic()
    cost = 150.0  # seconds per start until one is measured
    while True:
        i = len(list((pool / "starts").glob("*.json")))
        if a.max_starts and i >= a.max_starts:
            break
        if time.monotonic() - t0 + cost > a.hold_s or time.time() > a.not_after:
            break
        name = start_plan(configs, i)
        s0 = time.monotonic()
        rec = one_start(name, CONFIGS[name], a.passes, a.questions, pool, i)
        cost = time.monotonic() - s0
        atomic_write_text(pool / "starts" / f"{i:03d}-{name}.json", json.dumps(rec) + "\n")
        walls = [p["wall_clock_s"] for p in rec["passes"]]
        hits = [p["prefix_cache_hit_rate"] for p in rec["passes"]]
        print(f"start {i} {name}: {cost:.0f} s, startup {rec['startup_s']:.0f} s, passes {walls}, hit {hits}",
              flush=True)  # fmt: skip
    print(f"pool {pool}: {len(list((pool / 'starts').glob('*.json')))} starts; this hold {time.monotonic() - t0:.0f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--pool", type=Path, default=Path("results/power"))
    b.add_argument("--configs", default="same,spec2,spec1")
    b.add_argument("--passes", type=int, default=2)
    b.add_argument("--questions", type=int, default=12)
    b.add_argument("--hold-s", type=float, default=780.0, help="start no server that would end after this")
    b.add_argument("--max-starts", type=int, default=0)
    b.add_argument("--not-after", type=float, default=float("inf"), help="epoch seconds: no server starts after this")
    an = sub.add_parser("analyze")
    an.add_argument("--pool", type=Path, default=Path("results/power"))
    an.add_argument("--budgets", default="1x2x12,2x1x12,2x2x6,2x2x12,3x1x12,3x2x6,3x2x12")
    an.add_argument("--draws", type=int, default=200)
    an.add_argument("--resamples", type=int, default=1000)
    an.add_argument("--noise-multiple", type=float, default=1.0)
    an.add_argument("--confidence", type=float, default=0.95, help="compare's interval (conf/compare/*.yaml)")
    an.add_argument("--since", default=None, help="UTC time (2026-11-29T10:50): only the starts begun after it")
    mo = sub.add_parser("model", help="the wall-clock model alone, for noise measured elsewhere (e.g. a GPU nightly)")
    mo.add_argument("--between", type=float, required=True, help="between-start CV, e.g. 0.08")
    mo.add_argument("--within", type=float, required=True, help="within-start (pass-to-pass) CV, e.g. 0.06")
    mo.add_argument("--budgets", default="2x3,3x3,3x5,4x5,4x10,6x5", help="starts x passes")
    mo.add_argument("--noise-multiple", type=float, default=1.0)
    mo.add_argument("--confidence", type=float, default=0.95)
    a = p.parse_args()
    if a.cmd == "build":
        build(a)
    elif a.cmd == "model":
        budgets = [(int(x), int(y)) for x, y in (b.split("x") for b in a.budgets.split(","))]
        print(f"model (wall-clock only; between-start CV {a.between:.1%}, within-start CV {a.within:.1%},"
              f" {a.confidence:.0%} intervals):")  # fmt: skip
        model_table(a.between, a.within, budgets, a.noise_multiple, a.confidence)
    else:
        analyze(a)


TIMINGS = ("wall_clock_s", "output_tok_per_s", "ttft_s_p50", "ttft_s_p99", "tpot_s_p50")
TABLE = (*TIMINGS, "f1")  # the rows of one variant's compare table that a pool can give


def load_pool(pool: Path) -> list[dict[str, Any]]:
    return [json.loads(f.read_text()) for f in sorted((pool / "starts").glob("*.json"))]


def pass_figures(requests: list[dict[str, Any]], scale: float = 1.0) -> dict[str, float]:
    """One pass's compare figures from its requests (sequential load: the pass lasts the sum of its
    latencies). `scale` multiplies every duration: a slowdown of known size on real noise."""
    ok = [r for r in requests if r["error"] is None]
    lat = [r["latency_s"] * scale for r in ok]
    ttft = sorted(r["ttft_s"] * scale for r in ok if r["ttft_s"] is not None)
    tpot = [r["tpot_s"] * scale for r in ok if r["tpot_s"] is not None]
    wall = sum(lat)
    return {
        "wall_clock_s": wall,
        "output_tok_per_s": sum(r["output_tokens"] or 0 for r in ok) / wall,
        "ttft_s_p50": float(np.percentile(ttft, 50)),
        "ttft_s_p99": float(np.percentile(ttft, 99)),
        "tpot_s_p50": float(np.percentile(tpot, 50)) if tpot else float("nan"),
    }


def side(starts: list[dict[str, Any]], passes: int, questions: set[str], scale: float = 1.0) -> Side:
    """A compare side made of pool starts: their first `passes` passes over `questions`."""
    trials: dict[str, list[list[float]]] = {m: [] for m in TIMINGS}
    scores: dict[str, list[float]] = {}
    for st in starts:
        figs = []
        for p in st["passes"][:passes]:
            reqs = [r for r in p["requests"] if r["question_id"] in questions]
            figs.append(pass_figures(reqs, scale))
            for r in reqs:
                if r["error"] is None:
                    scores.setdefault(r["question_id"], []).append(r["f1"])
        for m in TIMINGS:
            trials[m].append([f[m] for f in figs])
    return Side(OK, trials=trials, scores=scores)


def alarm(base: Side, cur: Side, th: Thresholds) -> bool:
    """Whether one variant's compare table (timings and F1) holds a regression."""
    verdicts = compare_results({"v": base}, {"v": cur}, th, TABLE)
    return any(v.verdict == REGRESSION for v in verdicts)


def rates(
    pool: list[dict[str, Any]], budget: tuple[int, int, int], draws: int, th: Thresholds, rng: random.Random,
    slow: list[dict[str, Any]] | None, scale: float = 1.0,
) -> float:  # fmt: skip
    """Share of drawn comparisons that alarm. slow=None: same-config starts on both sides (disjoint) with
    the current side's durations times `scale`; else same-config against `slow` starts."""
    starts, passes, n_q = budget
    same = [s for s in pool if s["config"] == "same"]
    qids = sorted({r["question_id"] for s in pool for r in s["passes"][0]["requests"]})
    hits = 0
    for _ in range(draws):
        qs = set(rng.sample(qids, n_q))
        if slow is None:
            picked = rng.sample(same, 2 * starts)
            b, c = side(picked[:starts], passes, qs), side(picked[starts:], passes, qs, scale)
        else:
            b, c = side(rng.sample(same, starts), passes, qs), side(rng.sample(slow, starts), passes, qs)
        hits += alarm(b, c, th)
    return hits / draws


def calibrate(pool: list[dict[str, Any]]) -> dict[str, tuple[float, float, float, int]]:
    """Each config's wall-clock over every start in the pool against the same config's: ratio and interval."""
    walls: dict[str, list[list[float]]] = {}
    for st in pool:
        walls.setdefault(st["config"], []).append([p["wall_clock_s"] for p in st["passes"]])
    out = {}
    for name, groups in walls.items():
        iv = hierarchical_ratio_interval(walls["same"], groups, resamples=4000)
        out[name] = (iv.point, iv.lo, iv.hi, len(groups))
    return out


def analyze(a: argparse.Namespace) -> None:
    pool = load_pool(a.pool)
    if a.since:
        # Starts of one machine state only: a pool resumed on another day, or on a machine loaded then and
        # idle now, mixes regimes that no nightly's two sides would (its own drift is another question).
        t0 = dt.datetime.fromisoformat(a.since).replace(tzinfo=dt.timezone.utc).timestamp()
        pool = [s for s in pool if s["started_at"] >= t0]
    meta = json.loads((a.pool / "pool.json").read_text())
    th = Thresholds(resamples=a.resamples, noise_multiple=a.noise_multiple, confidence=a.confidence)
    rng = random.Random(0)
    t_first = min(s["started_at"] for s in pool)
    t_last = max(s["finished_at"] for s in pool)
    counts = {c: sum(s["config"] == c for s in pool) for c in meta["configs"]}
    print(f"pool {a.pool}: {len(pool)} starts {counts}, {meta['passes']} passes x {meta['questions']} questions each;")
    hhmm = [time.strftime("%H:%M", time.gmtime(t)) for t in (t_first, t_last)]
    busy = sum(s["finished_at"] - s["started_at"] for s in pool) / 60
    print(f"  built between {hhmm[0]} and {hhmm[1]} UTC, {busy:.0f} min of server time")
    startup = float(np.mean([s["startup_s"] for s in pool]))
    per_request = float(np.mean([r["latency_s"] for s in pool for p in s["passes"] for r in p["requests"]]))
    print(f"  mean start-up {startup:.0f} s, mean request {per_request:.2f} s")
    same = [s for s in pool if s["config"] == "same"]
    split = noise_split([[p["wall_clock_s"] for p in s["passes"]] for s in same])
    print(
        f"  same config's wall-clock noise: between starts {split.between_cv:.1%}, within a start {split.within_cv:.1%}"
    )
    print("\ncalibrated slowdowns (wall-clock, every start of each config, interleaved):")
    cal = calibrate(pool)
    for name, (r, lo, hi, n) in cal.items():
        print(f"  {name:>8}: {r - 1:+.1%} [{lo - 1:+.1%}, {hi - 1:+.1%}] over {n} starts")
    slowdowns = [c for c in meta["configs"] if c != "same"]
    budgets = [tuple(int(x) for x in b.split("x")) for b in a.budgets.split(",")]
    grid = [0.05, 0.075, 0.10, 0.125, 0.15, 0.20, 0.25, 0.30, 0.40]
    print(f"\n{a.draws} drawn comparisons per cell; one variant's table ({', '.join(TABLE)});")
    print(
        f"thresholds derived from noise x {a.noise_multiple}, {a.confidence:.0%} intervals; a nightly of 2 variants"
        " has about twice the false alarms"
    )
    # The goal is per whole nightly table: two variants, each a table like the one drawn here; their false
    # alarms are taken as independent (separate servers), so the nightly's rate is 1 - (1 - p)^2.
    head = ["starts x passes x questions", "nightly min", "false alarms", "nightly (2 variants)",
            *[f"detects {c}" for c in slowdowns], "detects +15 %", "min detectable (90 %)"]  # fmt: skip
    print(" | ".join(head))
    for budget in budgets:
        s_, p_, q_ = budget
        if p_ > meta["passes"] or q_ > meta["questions"]:
            print(f"{s_}x{p_}x{q_}: the pool has {meta['passes']} passes of {meta['questions']} questions")
            continue
        nightly_min = 2 * s_ * (startup + 5 + p_ * q_ * per_request) / 60  # two variants; 5 s to stop a server
        # Same-config comparisons need 2 x starts disjoint same-config starts; detection needs starts of both.
        fa = rates(pool, budget, a.draws, th, rng, None) if 2 * s_ <= len(same) else None
        det = [
            rates(pool, budget, a.draws, th, rng, slow) if s_ <= min(len(same), len(slow)) else None
            for slow in ([s for s in pool if s["config"] == c] for c in slowdowns)
        ]
        mds = d15 = None
        if 2 * s_ <= len(same):
            # Real noise, a known shift: disjoint same-config starts, the current side's durations x 1.15.
            d15 = rates(pool, budget, a.draws, th, rng, None, 1.15)
            mds = next((g for g in grid if rates(pool, budget, a.draws // 2, th, rng, None, 1 + g) >= 0.9), None)
        cells = [f"{s_}x{p_}x{q_}", f"{nightly_min:.0f}", "n/a" if fa is None else f"{fa:.1%}",
                 "n/a" if fa is None else f"{1 - (1 - fa) ** 2:.1%}",
                 *["n/a" if d is None else f"{d:.0%}" for d in det], "n/a" if d15 is None else f"{d15:.0%}",
                 "n/a" if 2 * s_ > len(same) else f"{mds:.1%}" if mds is not None else "> 40 %"]  # fmt: skip
        print(" | ".join(cells), flush=True)
    model_mds(pool, budgets, a.noise_multiple)


def model_mds(pool: list[dict[str, Any]], budgets: list[tuple[int, ...]], noise_multiple: float) -> None:
    """Where the pool is too small to draw from: wall-clock alone, simulated from the pool's measured noise
    (between- and within-start parts, every config's starts each divided by its config's mean), judged by
    the same interval and threshold rule. A model, not a measurement: one metric, lognormal noise."""
    groups: list[list[float]] = []
    for c in sorted({s["config"] for s in pool}):
        walls = [[p["wall_clock_s"] for p in s["passes"]] for s in pool if s["config"] == c]
        m = float(np.mean([np.mean(w) for w in walls]))
        groups += [[w / m for w in ws] for ws in walls]
    split = noise_split(groups)
    b, w = split.between_cv or 0.0, split.within_cv or 0.0
    print(f"\nmodel (wall-clock only; pooled noise of all {len(groups)} starts: between {b:.1%}, within {w:.1%}):")
    model_table(b, w, sorted({(bud[0], bud[1]) for bud in budgets} | {(4, 2), (5, 2), (6, 2)}), noise_multiple)


def model_table(
    b: float, w: float, budgets: list[tuple[int, int]], noise_multiple: float, confidence: float = 0.95
) -> None:
    """False alarms, detection of 10 % and 15 % and the minimum detectable slowdown per (starts, passes),
    for noise of between-start CV `b` and within-start CV `w` (e.g. measured on another machine)."""
    print("starts x passes | false alarms | detects 10 % | detects 15 % | min detectable (90 %)")
    rng = np.random.default_rng(0)

    def side(n_starts: int, passes: int, ratio: float) -> list[list[float]]:
        return [list(ratio * np.exp(rng.normal(0, b) + rng.normal(0, w, passes))) for _ in range(n_starts)]

    def rate(n_starts: int, passes: int, ratio: float, n: int = 300) -> float:
        hits = 0
        for i in range(n):
            base, cur = side(n_starts, passes, 1.0), side(n_starts, passes, ratio)
            iv = hierarchical_ratio_interval(base, cur, resamples=500, confidence=confidence, seed=i)
            cv = noise_split(base).start_cv(passes)
            threshold = max(0.02, noise_multiple * cv) if cv is not None and n_starts >= 2 else 0.10
            hits += iv.lo > 1 and iv.point - 1 > threshold
        return hits / n

    for s_, p_ in budgets:
        fa, d10, d15 = rate(s_, p_, 1.0), rate(s_, p_, 1.10), rate(s_, p_, 1.15)
        mds = next(
            (g for g in (0.05, 0.075, 0.10, 0.125, 0.15, 0.20, 0.25, 0.30) if rate(s_, p_, 1 + g, 150) >= 0.9), None
        )
        print(f"{s_}x{p_} | {fa:.1%} | {d10:.0%} | {d15:.0%} | {'> 30 %' if mds is None else f'{mds:.1%}'}", flush=True)


if __name__ == "__main__":
    random.seed(0)
    main()
