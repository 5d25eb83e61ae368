"""A results folder's files: run.json and requests.jsonl read tolerantly and written atomically, secrets kept out."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from bench.core import migrate
from bench.core.errors import BenchError, LinkError
from bench.core.records import REQUESTS_FILE, RUN_FILE, RecordError, RequestRecord, RunResult
from bench.core.secrets import redact_tree, redact_url

log = logging.getLogger(__name__)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # POSIX; elsewhere the is_symlink checks below are all there is


def no_link(path: Path) -> Path:
    """`path` is no symbolic link: a lock, chart, report or baseline written through one would land in a user's file
    or folder (a linked .bench.lock truncated it). A link there is bad input, in one line naming it."""
    if Path(path).is_symlink():
        raise LinkError(
            f"{path} is a symbolic link: bench writes only into files and folders it made (remove the link)"
        )
    return Path(path)


def make_dir(path: Path) -> Path:
    """A folder bench writes into (charts/, a run's folder, a store's runs/): made if missing, never a link."""
    no_link(path).mkdir(parents=True, exist_ok=True)
    return no_link(path)


def open_nofollow(path: Path, mode: str = "w", **kwargs: Any) -> IO[Any]:
    """open() for writing ("w", "a", "wb", "ab") that refuses to follow a symbolic link at `path`."""
    flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    try:
        fd = os.open(no_link(path), flags, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:  # made a link between the check and the open
            raise LinkError(f"{path} is a symbolic link: bench writes only into files and folders it made") from None
        raise
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    return os.fdopen(fd, mode, **kwargs)


def write_bytes(path: Path, data: bytes) -> None:
    """A whole file written in place (a chart): never through a link."""
    with open_nofollow(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file and rename, so a crash never leaves a half-written file behind. A link at `path`
    is refused: the rename would replace the user's link with bench's file."""
    no_link(path)
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


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A small JSON record bench wrote (baseline.json, a cache): a dict, or bad input naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # torn, not UTF-8, nested too deep
        raise BenchError(f"{path}: unreadable {what} ({str(e)[:80]}); move it aside or restore it") from None
    if not isinstance(data, dict):
        raise BenchError(f"{path}: unreadable {what} (a JSON {type(data).__name__}, not an object)")
    return data


def write_run(run_dir: Path, result: RunResult) -> None:
    # Credentials inside an endpoint URL (or an error message quoting one), a secret flag's value in the server's
    # extra_args (`--api-key KEY`, two list items) or under a secret-named key never reach the file.
    text = redact_url(json.dumps(redact_tree(result.to_dict()), indent=1, ensure_ascii=False, default=str))
    atomic_write_text(run_dir / RUN_FILE, text + "\n")


_warned: set[tuple[str, int, str]] = set()  # (file, mtime, message): readers call read_run several times per file


def _warn_once(path: Path, message: str) -> None:
    key = (str(path.resolve()), path.stat().st_mtime_ns, message)
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
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:  # RecursionError: nested too deep
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
        self._f = open_nofollow(path, "a" if append else "w")

    def write(self, record: RequestRecord) -> None:
        self._f.write(redact_url(json.dumps(dataclasses.asdict(record), ensure_ascii=False)) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> RequestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_requests(run_dir: Path, bad: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """requests.jsonl's lines that are JSON objects. Any other line (torn by a killed writer, not UTF-8, an array,
    nested too deep) is left out, never silently: named by its number in `bad` and in one warning per file."""
    path = run_dir / REQUESTS_FILE
    if not path.exists():
        return
    skipped: list[str] = []
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                why = "not UTF-8"
            except json.JSONDecodeError as e:
                if not raw.strip():
                    continue  # a blank line holds no request
                why = f"not JSON ({e.msg})"
            except RecursionError:
                why = "nested too deep"
            else:
                if isinstance(obj, dict):
                    yield obj
                    continue
                why = f"a JSON {type(obj).__name__}, not an object"
            skipped.append(f"line {n}: {why}")
    _skipped[_stamp(path)] = skipped
    if skipped:
        if bad is not None:
            bad += skipped
        _warn_once(path, f"{len(skipped)} unreadable line(s) left out: {'; '.join(skipped[:5])}")


# (file, mtime, size) -> the lines read_requests left out of it, so saying so later (compare) reads no file twice.
_skipped: dict[tuple[str, int, int], list[str]] = {}


def _stamp(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def unreadable_lines(run_dir: Path) -> list[str]:
    """`line N: why` for every line of the run's requests.jsonl that is not a request's JSON object."""
    path = run_dir / REQUESTS_FILE
    if not path.is_file():
        return []
    if (known := _skipped.get(_stamp(path))) is not None:
        return list(known)
    bad: list[str] = []
    for _ in read_requests(run_dir, bad):
        pass
    return bad


def read_records(run_dir: Path, bad: list[str] | None = None) -> list[RequestRecord]:
    """requests.jsonl as records; a line that is not a request is left out, named in `bad` and one warning."""
    out = []
    for line in read_requests(run_dir, bad):
        try:
            out.append(RequestRecord.from_dict(line))
        except (RecordError, TypeError, ValueError) as e:
            if bad is not None:
                bad.append(f"a request left out: {e}")
            _warn_once(run_dir / REQUESTS_FILE, f"a line left out: {e}")
    return out


def run_dirs(sweep_dir: Path) -> Iterable[Path]:
    return sorted(p.parent for p in sweep_dir.glob(f"*/{RUN_FILE}"))
