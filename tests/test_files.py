"""Typed reading of the files bench keeps: a bad requests.jsonl line is named with its number and counted (never
dropped silently, never the end of the file); a torn or wrong-shaped baseline.json, probe cache or history file is
a named error, exit 2, never a crash."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.core.errors import BenchError
from bench.core.files import read_records, read_requests, unreadable_lines
from bench.regress.probes import load_cache
from tests.test_hostile import REFERENCE, bench, sweep, tree_hash

BAD_LINES = {
    "torn": b'{"index": 3, "question_id": "q',
    "invalid UTF-8": b'{"index": 3, "answer": "\xff\xfe"}',
    "an array": b"[1, 2, 3]",
    "nested 100k deep": b"[" * 100_000 + b"]" * 100_000,
}


def _plant(run_dir: Path, bad: bytes, at: int = 2) -> int:
    """`bad` as line `at` (1-based) of the run's requests.jsonl, in the middle; returns how many lines are good."""
    path = run_dir / "requests.jsonl"
    lines = path.read_bytes().splitlines()
    assert len(lines) > at
    path.write_bytes(b"\n".join([*lines[: at - 1], bad, *lines[at - 1 :]]) + b"\n")
    return len(lines)


@pytest.mark.parametrize("bad", list(BAD_LINES.values()), ids=list(BAD_LINES))
def test_a_bad_line_in_the_middle_is_named_counted_and_the_rest_read(bad: bytes, tmp_path: Path) -> None:
    d = sweep(tmp_path) / "spec_ngram"
    good = _plant(d, bad)
    found: list[str] = []
    assert len(list(read_requests(d, found))) == good  # the lines after it too: a torn line used to end the file
    assert len(found) == 1 and found[0].startswith("line 2: ")
    assert unreadable_lines(d) == found and len(read_records(d)) == good


def test_compare_says_how_many_lines_it_could_not_pair(tmp_path: Path) -> None:
    base, cur = sweep(tmp_path, "base"), sweep(tmp_path, "cur")
    _plant(cur / "spec_ngram", BAD_LINES["torn"], at=3)
    _plant(cur / "spec_ngram", BAD_LINES["an array"], at=5)
    p = bench("compare", str(base), str(cur), cwd=tmp_path)
    assert p.returncode in (0, 1) and "Traceback" not in p.stderr, p.stderr[-2000:]
    said = [line for line in p.stderr.splitlines() if "unreadable line" in line and line.startswith("bench: compare")]
    assert len(said) == 1 and "current spec_ngram/requests.jsonl: 2 unreadable" in said[0], p.stderr[-2000:]
    assert "line 3" in said[0] and "line 5" in said[0]


@pytest.mark.parametrize("text", ['{"promoted_at": "2026-', "[1, 2]", "\xff"], ids=["torn", "a list", "not UTF-8"])
def test_a_torn_or_list_baseline_json_is_a_named_error(text: str, tmp_path: Path) -> None:
    d, to = sweep(tmp_path), tmp_path / "baselines" / "lab" / "nightly"
    assert bench("baseline", "promote", str(d), "--to", str(to), cwd=tmp_path).returncode == 0
    (to / "baseline.json").write_bytes(text.encode("latin-1"))
    before = tree_hash(tmp_path)
    p = bench("baseline", "promote", str(d), "--to", str(to), cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "baseline.json: unreadable baseline record" in p.stderr
    assert tree_hash(tmp_path) == before


@pytest.mark.parametrize("text", ['{"subject": {', "[]", '"a string"', '{"subject": {}, "probes": 5}'])
def test_a_corrupt_probe_cache_is_bad_input(text: str, tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    path.write_text(text)
    with pytest.raises(BenchError, match="cache.json"):
        load_cache(path, {})


def test_a_history_file_with_a_wrong_typed_column_is_named(tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(REFERENCE / "history" / "store", store)
    first = sorted((store / "runs").glob("*.parquet"))[0]
    df = pd.read_parquet(first)
    df["run_time"] = "yesterday"
    df.to_parquet(first, index=False)
    p = bench("history", "report", "--store", str(store), "--out", str(tmp_path / "page"), cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr and first.name in p.stderr, p.stderr[-2000:]
