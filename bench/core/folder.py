"""A results folder's one owner: each run.json and requests.jsonl read and validated once, served to every reader."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from bench.core.records import RUN_FILE, RunResult, read_requests, read_run, run_dirs


class ResultsFolder:
    """A sweep's folder (`<out_dir>/<variant>/run.json` ...) as analyze, compare, history and baseline read it.

    Every file is parsed the first time a reader asks for it and kept: `bench analyze` used to parse each run.json
    about eight times, each reader validating (or not) in its own way. A run.json that cannot be read is listed
    in `unreadable`, never silently dropped."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._requests: dict[str, list[dict[str, Any]]] = {}

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
            self._requests[name] = list(read_requests(self.path / name))
        return self._requests[name]

    def problems(self) -> list[str]:
        return [f"{d.name}: {RUN_FILE} unreadable, variant left out" for d in self.unreadable]


def as_folder(folder: ResultsFolder | Path | str) -> ResultsFolder:
    """A reader given a path makes its own owner; one given the owner shares what is already read."""
    return folder if isinstance(folder, ResultsFolder) else ResultsFolder(folder)
