"""Shared by the benchmark scripts: the project's Hydra config, composed without running anything."""

from __future__ import annotations

from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from bench.cli import CONF_DIR
from bench.config import BenchConfig, register_schemas, to_bench_config


def compose(overrides: list[str]) -> BenchConfig:
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_bench_config(hydra_compose(config_name="config", overrides=overrides))
