"""The docs site builds with --strict (a broken link or a page missing from the nav fails), and the generated
reference pages match the code (a config field, metric, exit code or verb option added without regenerating fails)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from bench import docs_gen

ROOT = Path(__file__).resolve().parents[1]


def test_generated_reference_pages_are_current() -> None:
    stale = docs_gen.stale(ROOT)
    assert not stale, f"stale: {', '.join(stale)} under docs/reference/: run `python -m bench.docs_gen`"


def test_a_new_config_field_makes_the_config_page_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.core import checks as config

    page = docs_gen.config_page()
    monkeypatch.setitem(config.RANGES, "load.concurrency", "must be an integer >= 2")
    assert docs_gen.config_page() != page  # the range a check refuses with is the one the page shows


def test_every_checked_range_names_a_field() -> None:
    from bench.core import checks as config

    page = docs_gen.config_page()
    for key, text in config.RANGES.items():
        assert f"<code>{key}</code>" in page, key
        assert text.replace("|", "\\|") in page, key


def test_help_lists_every_config_group_option() -> None:
    from bench.cli.main import HELP

    for group, options in docs_gen.group_options().items():
        for name, _ in options:
            assert f" {name}" in HELP, (group, name)


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs or mkdocs-material is not installed: bash scripts/setup.sh test (or docs) installs them",
)
def test_docs_site_builds_strict(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "config" / "index.html").is_file()
