"""The results folder's one owner: `bench analyze` reads each run.json and requests.jsonl once."""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from pathlib import Path

from bench.cli import verbs
from bench.core.folder import ResultsFolder

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"
_OPENED: Counter[str] | None = None  # set while a test counts; audit hooks cannot be removed once added


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, Path)):
        name = Path(args[0]).name
        if name in ("run.json", "requests.jsonl"):
            _OPENED[str(Path(args[0]).resolve())] += 1


sys.addaudithook(_audit)


def _count(fn) -> Counter[str]:  # type: ignore[no-untyped-def]
    global _OPENED
    _OPENED = Counter()
    try:
        fn()
        return _OPENED
    finally:
        _OPENED = None


def test_analyze_of_a_sweep_reads_each_run_and_requests_file_once(tmp_path: Path) -> None:
    sweep = tmp_path / "cpu"
    shutil.copytree(REFERENCE / "cpu", sweep)  # five variants, one of them failed with no requests file
    opened = _count(lambda: verbs.analyze([str(sweep)]))
    files = sorted(str(p.resolve()) for name in ("run.json", "requests.jsonl") for p in sweep.glob(f"*/{name}"))
    assert len(files) >= 9
    assert {f: opened[f] for f in files} == dict.fromkeys(files, 1)
    assert set(opened) == set(files)  # nothing else of those names, nothing twice


def test_analyze_of_a_multi_level_sweep_reads_each_file_once(tmp_path: Path) -> None:
    sweep = tmp_path / "crossover"
    shutil.copytree(REFERENCE / "cpu-tuning" / "crossover", sweep)
    opened = _count(lambda: verbs.analyze([str(sweep)]))
    assert opened and set(opened.values()) == {1}


def test_compare_reads_each_side_once(tmp_path: Path) -> None:
    base, cur = tmp_path / "base", tmp_path / "cur"
    shutil.copytree(REFERENCE / "cpu", base)
    shutil.copytree(REFERENCE / "cpu", cur)
    opened = _count(lambda: verbs.compare([str(base), str(cur)]))
    assert opened and set(opened.values()) == {1}


def test_a_torn_run_json_is_listed_not_dropped(tmp_path: Path) -> None:
    sweep = tmp_path / "cpu"
    shutil.copytree(REFERENCE / "cpu", sweep)
    (sweep / "tp2" / "run.json").write_text('{"variant": "tp2", "status"')
    folder = ResultsFolder(sweep)
    assert [d.name for d in folder.unreadable] == ["tp2"]
    assert "tp2" not in [d.name for d, _ in folder.runs()]
    assert folder.problems() == ["tp2: run.json unreadable, variant left out"]
