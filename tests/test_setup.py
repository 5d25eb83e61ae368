"""scripts/setup.sh refuses a bad combination before it makes anything (a venv left half-made is worse than none)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args", [["cuda", "test"], ["test", "cuda"], ["gpu"]])
def test_setup_refuses_before_making_a_venv(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    proc = subprocess.run(["bash", "scripts/setup.sh", *args], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip()
    assert not (tmp_path / ".venv").exists()
