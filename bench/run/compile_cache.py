"""One vLLM compile cache per configuration, shared by its starts: the first start compiles (cold), later ones reuse it.

vLLM 0.32 keeps torch.compile's artifacts under VLLM_CACHE_ROOT/torch_compile_cache/<hash>/ (inductor's own cache
beside them: vllm/compilation/backends.py, compiler_interface.py; the root defaults to ~/.cache/vllm, envs.py). With
that default every configuration of every run shares one cache, so whether a start compiled depends on what ran
before on the machine, and a start-up time means nothing without it. bench gives each run folder its own root, so
start 0 of a variant is cold and starts 1.. are warm, and records which each was and how big the cache is.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "VLLM_CACHE_ROOT"
DIR = "compile_cache"  # inside the variant's folder; bench wrote it, so deleting it loses only warm starts
COMPILED = "torch_compile_cache"
# Written by bench into a root it owns once a start became healthy: the next start finds a filled cache. vLLM with
# VLLM_DISABLE_COMPILE_CACHE=1 writes no artifacts, so the artifacts alone would call every start cold and hide
# exactly the slowdown a broken cache causes: warm means "an earlier start of this configuration ran", as in
# `vllm bench startup`.
MARKER = ".bench-started"
COLD, WARM = "cold", "warm"


def root_env(env: dict[str, str], run_dir: Path) -> dict[str, str]:
    """The server's env with bench's cache root for this run folder, unless the user chose a root."""
    if ROOT_ENV in env:
        return env
    return {**env, ROOT_ENV: str((run_dir / DIR).resolve())}


def _owned(root: Path, run_dir: Path) -> bool:
    return root == (run_dir / DIR).resolve()


def state(env: dict[str, str], run_dir: Path) -> str:
    """cold or warm, before a start: bench's root by its marker; a root the user set by its compiled artifacts."""
    root = Path(env.get(ROOT_ENV) or os.path.expanduser("~/.cache/vllm")).resolve()
    if _owned(root, run_dir):
        return WARM if (root / MARKER).exists() else COLD
    compiled = root / COMPILED
    return WARM if compiled.is_dir() and any(p.is_file() for p in compiled.rglob("*")) else COLD


def size_bytes(env: dict[str, str]) -> int | None:
    """The compiled artifacts' size under the root (None when the root is unknown)."""
    root = env.get(ROOT_ENV)
    if not root:
        return None
    compiled = Path(root) / COMPILED
    return sum(p.stat().st_size for p in compiled.rglob("*") if p.is_file()) if compiled.is_dir() else 0


def mark_started(env: dict[str, str], run_dir: Path) -> None:
    """After a healthy start: later starts of this run folder are warm."""
    root = Path(env.get(ROOT_ENV, "")).resolve()
    if env.get(ROOT_ENV) and _owned(root, run_dir):
        root.mkdir(parents=True, exist_ok=True)
        (root / MARKER).touch()
