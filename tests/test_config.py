"""Every config composes; typos and bad values are rejected before any server starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from bench.core.config import EngineConfig, ServerConfig, register_schemas, resolve_server, to_bench_config
from bench.core.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "bench" / "conf"
VARIANTS = sorted(p.stem for p in (CONF / "server").glob("*.yaml"))
SWEEPS = sorted(p.stem for p in (CONF / "sweep").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (CONF / "dataset").glob("*.yaml"))


@pytest.fixture(autouse=True, scope="module")
def _hydra():
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield


def _compose(*overrides: str):
    return to_bench_config(compose(config_name="config", overrides=list(overrides)))


def test_the_six_variants_exist():
    assert {"single", "tp2", "pp2", "spec_draft", "spec_ngram", "awq"} <= set(VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_composes_and_resolves_on_both_engines(variant, monkeypatch):
    monkeypatch.setenv("BENCH_NEXT_PYTHON", sys.executable)  # single_next's other environment
    cfg = _compose(f"server={variant}")
    assert cfg.server.name == variant
    for engine in ("cpu", "cuda"):
        server = resolve_server(cfg.server, engine, cfg.engines[engine])
        assert server.dtype and server.enforce_eager is not None and server.max_tokens is None
        assert 0 < cfg.request.max_tokens < server.max_model_len


def test_the_ab_variant_without_its_environment_is_one_clear_error(monkeypatch):
    monkeypatch.delenv("BENCH_NEXT_PYTHON", raising=False)
    with pytest.raises(ConfigError, match="server.python: .*BENCH_NEXT_PYTHON"):
        _compose("server=single_next")


@pytest.mark.parametrize("sweep", SWEEPS)
def test_every_sweep_lists_existing_variants(sweep):
    cfg = compose(config_name="config", overrides=[f"+sweep={sweep}"], return_hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    listed = str(cfg.hydra.sweeper.params.server).split(",")
    assert set(listed) <= set(VARIANTS), listed
    assert cfg.sweep_name == sweep


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_dataset_config_composes(dataset):
    overrides = [f"dataset={dataset}"] + (["dataset.path=x.json"] if dataset == "squad_file" else [])
    assert _compose(*overrides).dataset.name == dataset


def test_spec_variants_use_current_speculative_config_spelling():
    ngram = _compose("server=spec_ngram").server.speculative_config
    draft = _compose("server=spec_draft", "model=/m").server.speculative_config
    assert ngram == {"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_max": 4, "prompt_lookup_min": 2}
    assert draft["method"] == "draft_model" and draft["model"] == "/m"


def test_misspelled_key_is_rejected():
    with pytest.raises(ConfigCompositionException, match="max_num_seq"):
        _compose("server.max_num_seq=3")


def test_bad_type_is_rejected():
    with pytest.raises(ConfigCompositionException):
        _compose("server.tensor_parallel_size=two")


def test_unknown_variant_is_rejected_with_the_choices():
    with pytest.raises(ConfigCompositionException, match="server/nope"):
        _compose("server=nope")


def test_bad_engine_is_rejected():
    with pytest.raises(ConfigError, match="engine='tpu'"):
        _compose("engine=tpu")


def test_engine_profile_fills_only_what_the_variant_left_unset():
    profile = EngineConfig(dtype="float32", enforce_eager=True, env={"A": "1", "B": "1"})
    server = ServerConfig(model="/m", dtype="bfloat16", env={"B": "2"})
    out = resolve_server(server, "cpu", profile)
    assert (out.dtype, out.enforce_eager, out.env) == ("bfloat16", True, {"A": "1", "B": "2"})


def test_on_engine_overrides_apply_to_that_engine_only():
    server = ServerConfig(model="/m", on_engine={"cpu": {"enforce_eager": False, "env": {"X": "1"}}})
    profile = EngineConfig(enforce_eager=True, env={"A": "1"})
    on_cpu = resolve_server(server, "cpu", profile)
    on_cuda = resolve_server(server, "cuda", profile)
    assert on_cpu.enforce_eager is False and on_cpu.env == {"A": "1", "X": "1"}
    assert on_cuda.enforce_eager is True and on_cuda.env == {"A": "1"}


def test_on_engine_typo_is_rejected():
    with pytest.raises(ConfigError, match="enforce_eagre"):
        resolve_server(ServerConfig(model="/m", on_engine={"cpu": {"enforce_eagre": False}}), "cpu", EngineConfig())
    with pytest.raises(ConfigError, match="valid engines"):
        resolve_server(ServerConfig(model="/m", on_engine={"tpu": {}}), "cpu", EngineConfig())


def test_pp2_on_cpu_is_compiled_not_eager():
    cfg = _compose("server=pp2")
    assert resolve_server(cfg.server, "cpu", cfg.engines["cpu"]).enforce_eager is False


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("load.concurrency=-1", "load.concurrency=-1 is out of range: must be a whole number in 1..1,000,000"),
        ("load.concurrency=0", "load.concurrency=0 is out of range"),
        ("load.request_rate=0", "load.request_rate=0.0 is out of range: must be > 0"),
        ("load.levels=[1,-2]", "every level must be > 0"),
        ("load.levels=[1.5]", "concurrency levels must be whole numbers"),
        ("load.max_requests=0", "load.max_requests=0 is out of range"),
        ("load.burstiness=0", "load.burstiness=0.0 is out of range"),
        ("server.gpu_memory_utilization=0", "must be in (0, 1]"),
        ("server.gpu_memory_utilization=1.5", "server.gpu_memory_utilization=1.5 is out of range: must be in (0, 1]"),
        ("request.max_tokens=0", "request.max_tokens=0 is out of range: must be >= 1 and below server.max_model_len"),
        ("request.max_tokens=2048", "below server.max_model_len (2048)"),
        ("server.max_tokens=0", "request.max_tokens=0 is out of range"),  # the old spelling, checked as the new
        ("request.temperature=-1", "request.temperature=-1.0 is out of range: must be >= 0"),
        ("server.tensor_parallel_size=0", "server.tensor_parallel_size=0 is out of range"),
        ("server.distributed_executor_backend=rey", "'rey' is out of range: one of mp, ray, uni, external_launcher"),
        ("server.ray_address=auto", "server.ray_address='auto' is out of range: needs the ray backend"),
        ("dataset.sample_size=0", "dataset.sample_size=0 is out of range"),
        ("dataset.too_long=drop", "dataset.too_long='drop' is out of range: one of skip, fail, keep"),
        ("repeats=0", "repeats=0 is out of range"),
        ("run_name=../../escape", "run_name='../../escape' would put the run's folder outside out_dir"),
        ("run_name=/tmp/elsewhere", "outside out_dir"),
        ("run_name=.", "outside out_dir"),
    ],
)
def test_values_out_of_range_are_refused_with_the_valid_range(override, message):
    with pytest.raises(ConfigError) as e:
        _compose(override)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_in_range_values_pass():
    cfg = _compose("load=concurrency_sweep", "server.gpu_memory_utilization=1", "run_name=a/b", "dataset.too_long=keep")
    assert cfg.load.levels and cfg.dataset.too_long == "keep"
    assert _compose("load=rate_sweep", "load.levels=[0.5,1.5]").load.levels == [0.5, 1.5]


def test_the_request_group_has_one_default_each_and_reads_the_old_spellings(capsys):
    cfg = _compose()
    assert (cfg.request.max_tokens, cfg.request.temperature) == (32, 0.0) and cfg.request.system_prompt
    assert cfg.server.max_tokens is None and cfg.dataset.system_prompt is None  # only old spellings set them
    old = _compose("server.max_tokens=64", "dataset.system_prompt=Be brief.")
    assert (old.request.max_tokens, old.request.system_prompt) == (64, "Be brief.")
    assert old.server.max_tokens is None and old.dataset.system_prompt is None
    assert _compose("request.max_tokens=64", "server.max_tokens=64").request.max_tokens == 64  # both agree
    with pytest.raises(ConfigError, match="set request.max_tokens only"):
        _compose("request.max_tokens=16", "server.max_tokens=64")
    with pytest.raises(ConfigError, match="on_engine.cpu.max_tokens: set request.max_tokens instead"):
        resolve_server(ServerConfig(model="/m", on_engine={"cpu": {"max_tokens": 8}}), "cpu", EngineConfig())


def test_an_old_spelling_is_named_once_on_stderr():
    import subprocess

    code = (
        "from bench.core.config import BenchConfig, ServerConfig\n"
        "from bench.core.migrate import move_old_spellings\n"
        "told = set()\n"
        "for _ in range(3): move_old_spellings(BenchConfig(server=ServerConfig(max_tokens=8)), told)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stderr == "bench: server.max_tokens is now request.max_tokens; read as request.max_tokens=8\n"


def test_dtype_auto_on_the_cpu_engine_is_what_this_cpu_computes_natively():
    from bench.core import cpu

    server = resolve_server(ServerConfig(model="/m"), "cpu", EngineConfig(dtype="auto"))
    assert server.dtype == ("bfloat16" if cpu.detect().native_bf16 else "float32")
    assert resolve_server(ServerConfig(model="/m"), "cuda", EngineConfig(dtype="auto")).dtype == "auto"
