"""A results folder's files: run.json and requests.jsonl read tolerantly and written atomically, secrets kept out."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench.core import migrate
from bench.core.records import REQUESTS_FILE, RUN_FILE, RecordError, RequestRecord, RunResult
from bench.core.secrets import redact_url

log = logging.getLogger(__name__)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file and rename, so a crash never leaves a half-written file behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from the other users of a shared box
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_run(run_dir: Path, result: RunResult) -> None:
    # Credentials inside an endpoint URL (or an error message quoting one) never reach the file.
    text = redact_url(json.dumps(result.to_dict(), indent=1, ensure_ascii=False, default=str))
    atomic_write_text(run_dir / RUN_FILE, text + "\n")


_warned: set[tuple[str, int]] = set()  # (file, mtime): readers call read_run several times per file


def _warn_once(path: Path, message: str) -> None:
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key not in _warned:
        _warned.add(key)
        log.warning("%s: %s", path, message)


def read_run(run_dir: Path) -> RunResult | None:
    """run.json of any schema version as today's records (bench/core/migrate.py), with one warning per file for
    what it could not use. None when there is no file, or it is not a JSON object of a run."""
    path = run_dir / RUN_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        _warn_once(path, f"not readable as JSON ({e})")
        return None
    if not isinstance(data, dict):
        _warn_once(path, "not a JSON object")
        return None
    try:
        result, notes = migrate.run_from_json(data, run_dir)
    except RecordError as e:
        _warn_once(path, f"unreadable: {e}")
        return None
    for note in notes:
        _warn_once(path, note)
    return result


class RequestWriter:
    """Appends one JSON line per request and flushes it, so a crash keeps every finished request."""

    def __init__(self, path: Path, append: bool = False) -> None:
        self._f = path.open("a" if append else "w", encoding="utf-8")

    def write(self, record: RequestRecord) -> None:
        self._f.write(redact_url(json.dumps(dataclasses.asdict(record), ensure_ascii=False)) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> RequestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_requests(run_dir: Path) -> Iterator[dict[str, Any]]:
    path = run_dir / REQUESTS_FILE
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            # A killed process can leave a torn last line; everything before it is intact.
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                return


def read_records(run_dir: Path) -> list[RequestRecord]:
    """requests.jsonl as records; a line that is not a request is left out with one warning."""
    out = []
    for line in read_requests(run_dir):
        try:
            out.append(RequestRecord.from_dict(line))
        except RecordError as e:
            _warn_once(run_dir / REQUESTS_FILE, f"a line left out: {e}")
    return out


def run_dirs(sweep_dir: Path) -> Iterable[Path]:
    return sorted(p.parent for p in sweep_dir.glob(f"*/{RUN_FILE}"))
