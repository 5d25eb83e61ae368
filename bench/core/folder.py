"""A results folder's one owner: each run.json and requests.jsonl read and validated once, served to every reader."""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError, ConfigError
from bench.core.files import make_dir, no_link, read_requests, read_run, run_dirs
from bench.core.records import REQUESTS_FILE, RUN_FILE, RunResult


class ResultsFolder:
    """A sweep's folder (`<out_dir>/<variant>/run.json` ...) as analyze, compare, history and baseline read it.

    Every file is parsed the first time a reader asks for it and kept: `bench analyze` used to parse each run.json
    about eight times, each reader validating (or not) in its own way. A run.json that cannot be read is listed
    in `unreadable`, never silently dropped."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._requests: dict[str, list[dict[str, Any]]] = {}
        self._bad_lines: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        return f"ResultsFolder({str(self.path)!r})"

    @cached_property
    def run_dirs(self) -> list[Path]:
        """Every `<variant>/` holding a run.json, readable or not, in name order."""
        return list(run_dirs(self.path))

    @cached_property
    def _runs(self) -> dict[str, RunResult | None]:
        return {d.name: read_run(d) for d in self.run_dirs}

    def runs(self) -> Iterator[tuple[Path, RunResult]]:
        """(folder, run) of every readable run.json, in name order."""
        for d in self.run_dirs:
            run = self._runs[d.name]
            if run is not None:
                yield d, run

    def run(self, name: str) -> RunResult | None:
        return self._runs.get(name)

    @property
    def unreadable(self) -> list[Path]:
        """Run folders whose run.json is torn, corrupt or of the wrong shape (read_run warned once for each)."""
        return [d for d in self.run_dirs if self._runs[d.name] is None]

    def requests(self, name: str) -> list[dict[str, Any]]:
        """The variant's requests.jsonl as its records' dicts, up to a torn last line; [] when there is none."""
        if name not in self._requests:
            self._bad_lines[name] = []
            self._requests[name] = list(read_requests(self.path / name, self._bad_lines[name]))
        return self._requests[name]

    def line_problems(self) -> list[str]:
        """The requests.jsonl lines left out so far (torn, not UTF-8, not an object), by variant and line number."""
        return [
            f"{name}/{REQUESTS_FILE}: {len(bad)} unreadable line(s) left out ({'; '.join(bad[:3])})"
            for name, bad in self._bad_lines.items()
            if bad
        ]

    def problems(self) -> list[str]:
        return [f"{d.name}: {RUN_FILE} unreadable, variant left out" for d in self.unreadable]


def as_folder(folder: ResultsFolder | Path | str) -> ResultsFolder:
    """A reader given a path makes its own owner; one given the owner shares what is already read."""
    return folder if isinstance(folder, ResultsFolder) else ResultsFolder(folder)


def check_run_dir(out_dir: str, run_name: str) -> None:
    """A run's folder stays inside out_dir (resume deletes files in it), and both can be folders bench writes."""
    if any(len(part.encode()) > 255 for part in Path(run_name).parts):  # before any look at the disk: ENAMETOOLONG
        raise ConfigError(f"run_name={run_name[:40]!r}... is longer than a file name may be (255 bytes)")
    if (Path(out_dir) / run_name).is_symlink():
        raise ConfigError(f"{Path(out_dir) / run_name} is a symbolic link: bench writes only into folders it owns")
    out = Path(out_dir).resolve()
    run = (out / run_name).resolve()
    if not run_name.strip() or run == out or not run.is_relative_to(out):
        raise ConfigError(
            f"run_name={run_name!r} would put the run's folder outside out_dir ({out_dir}):"
            " use a plain name such as '${server.name}'"
        )
    for path in (Path(out_dir), Path(out_dir) / run_name):
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{path} is a file, not a folder: give out_dir=/a/folder")
    writable = next((p for p in (Path(out_dir), *Path(out_dir).resolve().parents) if p.exists()), Path("/"))
    if not os.access(writable, os.W_OK):
        raise ConfigError(f"out_dir={out_dir}: {writable} is not writable")


LOCK_FILE = ".bench.lock"


class LockedError(BenchError):
    """Another bench is writing this run folder."""


@contextmanager
def locked(run_dir: Path, wait_s: float = 0.0) -> Iterator[None]:
    """The run folder for this process alone while the block runs. A second writer refuses in one line naming
    the holder, or waits up to `wait_s`. An flock dies with its process, so a crashed run's lock is taken over
    by the next run without anyone removing a file."""
    make_dir(run_dir)
    path = no_link(run_dir / LOCK_FILE)  # a linked lock file was truncated and overwritten: the user's file
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            no_link(path)
        raise
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 400, 0).decode(errors="replace").strip() or "another process"
                    raise LockedError(
                        f"{run_dir} is being written by {holder}; wait for it to finish, or add lock_wait_s=SECONDS"
                    ) from None
                time.sleep(0.2)
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"bench pid {os.getpid()} on {socket.gethostname()} since {now}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
