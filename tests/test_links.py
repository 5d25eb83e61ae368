"""Nothing outside bench's folders: a symbolic link where bench would write (a run's lock, charts/, report.html,
summary.csv/.md, a baseline's previous/, a history store's runs/) is bad input, exit 2 in one line naming it, and
the file or folder it points at is left as it was."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.test_hostile import REFERENCE, bench, sweep, tree_hash


def _user(tmp: Path) -> Path:
    """The user's own folder, which a planted link points into: it must not change."""
    mine = tmp / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("months of work\n")
    return mine


def _lock(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "out" / "single").mkdir(parents=True)
    (tmp / "out" / "single" / ".bench.lock").symlink_to(_user(tmp) / "thesis.tex")
    return ["run", f"out_dir={tmp / 'out'}", "endpoint=http://127.0.0.1:9"], tmp / "out" / "single" / ".bench.lock"


def _in_sweep(name: str) -> Callable[[Path], tuple[list[str], Path]]:
    def setup(tmp: Path) -> tuple[list[str], Path]:
        d = sweep(tmp)
        (d / name).unlink(missing_ok=True)
        shutil.rmtree(d / name, ignore_errors=True)
        target = _user(tmp) if name == "charts" else _user(tmp) / "thesis.tex"
        (d / name).symlink_to(target)
        return ["analyze", str(d)], d / name

    return setup


def _previous(tmp: Path) -> tuple[list[str], Path]:
    d, to = sweep(tmp), tmp / "baselines" / "lab" / "nightly"
    assert bench("baseline", "promote", str(d), "--to", str(to), cwd=tmp).returncode == 0
    (to / "previous").rmdir() if (to / "previous").is_dir() else None
    (to / "previous").symlink_to(_user(tmp))
    return ["baseline", "promote", str(d), "--to", str(to)], to / "previous"


def _store_runs(tmp: Path) -> tuple[list[str], Path]:
    d, store = sweep(tmp), tmp / "store"
    store.mkdir()
    (store / "runs").symlink_to(_user(tmp))
    return ["history", "add", str(d), "--store", str(store)], store / "runs"


CASES = {
    "run lock": _lock,
    "charts folder": _in_sweep("charts"),
    "report.html": _in_sweep("report.html"),
    "summary.csv": _in_sweep("summary.csv"),
    "summary.md": _in_sweep("summary.md"),
    "baseline previous/": _previous,
    "history store runs/": _store_runs,
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_link_where_bench_writes_is_refused_and_its_target_untouched(name: str, tmp_path: Path) -> None:
    args, link = CASES[name](tmp_path)
    before = tree_hash(tmp_path / "mine")
    p = bench(*args, cwd=tmp_path)
    errors = [line for line in p.stderr.splitlines() if line.startswith("bench: error")]
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert len(errors) == 1 and str(link) in errors[0] and "symbolic link" in errors[0], p.stderr[-2000:]
    assert tree_hash(tmp_path / "mine") == before
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "months of work\n"
    assert REFERENCE.is_dir()
