"""Shared by the benchmark scripts: the project's Hydra config, composed without running anything."""

from __future__ import annotations

from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from bench.cli.main import CONF_DIR
from bench.core.config import (
    BenchConfig,
    DatasetConfig,
    ServerConfig,
    register_schemas,
    resolve_server,
    to_bench_config,
)
from bench.run.dataset import QAItem, load_dataset


def compose(overrides: list[str]) -> BenchConfig:
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_bench_config(hydra_compose(config_name="config", overrides=overrides))


def cpu_single(n: int, seed: int) -> tuple[BenchConfig, ServerConfig, list[QAItem]]:
    """The `single` variant as the CPU engine runs it, and n built-in questions."""
    cfg, server = single_on("cpu")
    return cfg, server, load_dataset(DatasetConfig(path="data/qa.json", sample_size=n, seed=seed))


def variant_and_questions(engine: str, seed: int) -> tuple[BenchConfig, ServerConfig, list[QAItem]]:
    """The `single` variant as `engine` runs it, and every built-in question in a seeded order."""
    cfg, server = single_on(engine)
    return cfg, server, load_dataset(DatasetConfig(path="data/qa.json", sample_size=None, seed=seed))


def single_on(engine: str) -> tuple[BenchConfig, ServerConfig]:
    """The composed config and the `single` variant's server as `engine`'s profile fills it in."""
    cfg = compose(["server=single", f"engine={engine}"])
    return cfg, resolve_server(cfg.server, engine, cfg.engines[engine])
