"""Bounded, finite input: NaN and infinity refused in every float of the config, counts that size work bounded
(MAX_COUNT), verb flags checked, a --thresholds file of NaN refused; each a one-line refusal, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from bench.core.config import register_schemas, to_bench_config
from bench.core.errors import ConfigError
from bench.core.paths import CONF_DIR
from bench.core.repeats import MAX_COUNT
from tests.test_hostile import REFERENCE, bench, sweep, tree_hash

REFUSED = [
    "load.request_timeout_s=inf", "load.request_rate=inf", "load.burstiness=inf", "request.temperature=inf",
    "load.levels=[1,inf]", "lock_wait_s=inf", "telemetry_interval_s=inf", "load.max_duration_s=nan",
    "load.search_tolerance=nan", "load.search_max_s=inf", "slo.ttft_ms=nan", "slo.min_share=nan",
    "server.gpu_memory_utilization=nan", "server.startup_timeout_s=inf", "tracing.wait_s=inf",
    "load.max_requests=9223372036854775808", "load.sweep_points=9223372036854775808",
    f"load.search_max_levels={MAX_COUNT + 1}", f"load.concurrency={MAX_COUNT + 1}", f"dataset.sample_size={10**20}",
    f"repeats.starts={MAX_COUNT + 1}", "repeats.passes=99999999999999999999",
    "+server.on_engine.cpu.gpu_memory_utilization=nan",
]  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _hydra():
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield


@pytest.mark.parametrize("override", REFUSED)
def test_a_value_that_is_not_finite_or_beyond_the_bound_is_refused_by_name(override: str, tmp_path: Path) -> None:
    key = override.lstrip("+").split("=")[0].split(".")[-1]
    with pytest.raises(ConfigError, match=key):
        to_bench_config(compose(config_name="config", overrides=[override, f"out_dir={tmp_path}"]))


def test_the_bound_itself_is_allowed(tmp_path: Path) -> None:
    cfg = to_bench_config(compose(config_name="config", overrides=[f"load.max_requests={MAX_COUNT}",
                                                                   f"out_dir={tmp_path}"]))  # fmt: skip
    assert cfg.load.max_requests == MAX_COUNT


@pytest.mark.parametrize("override", ["load.request_timeout_s=inf", "load.max_requests=9223372036854775808"])
def test_the_run_verb_refuses_in_one_line(override: str, tmp_path: Path) -> None:
    p = bench("run", override, f"out_dir={tmp_path / 'o'}", "endpoint=http://127.0.0.1:1", cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert p.stderr.strip().splitlines()[-1].startswith("bench: error: load.")


@pytest.mark.parametrize("flags", [["--max-minutes", "nan"], ["--max-minutes", "inf"], ["--max-probes", "1e9"],
                                   ["--max-probes", str(10**20)], ["--starts", "0"], ["--passes", "-1"]])  # fmt: skip
def test_bisect_flags_are_finite_and_bounded(flags: list[str], tmp_path: Path) -> None:
    p = bench("bisect", str(tmp_path / "good"), str(tmp_path / "bad"), *flags, cwd=tmp_path)
    errors = [line for line in p.stderr.splitlines() if "error:" in line]  # bench's line, or argparse's for "1e9"
    assert p.returncode == 2 and "Traceback" not in p.stderr and flags[0] in p.stderr, p.stderr[-2000:]
    assert len(errors) == 1


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_a_thresholds_file_of_nan_is_refused_not_read_as_within_noise(value: str, tmp_path: Path) -> None:
    base = sweep(tmp_path, "base")
    th = tmp_path / "th.yaml"
    th.write_text(f"wall_clock_s: {value}\nnoise_multiple: {value}\n")
    before = tree_hash(tmp_path)
    p = bench("compare", str(base), str(base), "--thresholds", str(th), cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "finite" in p.stderr and "wall_clock_s" in p.stderr
    assert tree_hash(tmp_path) == before and REFERENCE.is_dir()
