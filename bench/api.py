"""The Python API for results: `bench.load(path)`, `bench.compare(a, b)`, `bench.history(store)`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.core.folder import ResultsFolder
from bench.core.records import RunResult

if TYPE_CHECKING:  # pandas and matplotlib load on first use: `import bench` stays light
    import pandas as pd
    from matplotlib.figure import Figure

    from bench.analyze.sweep import Sweep
    from bench.regress.history import ChangePoint


@dataclass
class Results:
    """One results folder read once, through the same reader as `bench analyze` (bench/core/folder.py)."""

    path: Path
    folder: ResultsFolder
    baseline: str = "single"

    @property
    def runs(self) -> dict[str, RunResult]:
        """Every readable run.json as its typed record, by variant (run folder) name."""
        return {d.name: run for d, run in self.folder.runs()}

    @property
    def unreadable(self) -> list[Path]:
        """Run folders whose run.json could not be read (torn, corrupt): left out of every table."""
        return self.folder.unreadable

    @cached_property
    def sweep(self) -> Sweep:
        """Every table of the report, as `bench analyze` builds them (never raises: see `errors`)."""
        from bench.analyze.sweep import load_sweep

        return load_sweep(self.folder, self.baseline)

    @property
    def errors(self) -> list[str]:
        return self.sweep.errors

    def requests(self) -> pd.DataFrame:
        """One row per request (requests.jsonl of every run), with a `variant` column."""
        return self.sweep.requests

    def trials(self) -> pd.DataFrame:
        """One row per trial: (variant, start, pass, load level) and its figures."""
        return self.sweep.trials

    def summary(self) -> pd.DataFrame:
        """One row per variant: summary.csv's columns (speed-up against `baseline`)."""
        return self.sweep.summary

    def summary_view(self) -> pd.DataFrame:
        """The summary as the report shows it: formatted, the columns a reader needs."""
        from bench.analyze.tables import summary_view

        return summary_view(self.summary())

    def provenance(self) -> pd.DataFrame:
        return self.sweep.provenance

    def charts(self) -> Iterator[tuple[str, Figure]]:
        """(title, figure) of every chart the report draws for this folder, in the report's order."""
        from bench.report.charts.registry import drawn

        for chart in drawn(self.sweep, self.baseline):
            yield chart.title, chart.draw(self.sweep, self.baseline)


def load(path: Path | str, baseline: str = "single") -> Results:
    """A results folder (`results/<sweep>/`, one folder per variant). FileNotFoundError if it is not a folder."""
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"no results folder at {p}")
    return Results(p, ResultsFolder(p), baseline)


def compare(
    baseline: Path | str,
    current: Path | str,
    thresholds: Path | str | None = None,
    metrics: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """`bench compare`'s verdict table as records (one dict per variant x metric), regressions first."""
    from bench.regress.compare import compare_dirs, load_thresholds

    th = load_thresholds(Path(thresholds) if thresholds is not None else None)
    return [dataclasses.asdict(v) for v in compare_dirs(Path(baseline), Path(current), th, metrics)]


@dataclass
class History:
    """A history store (`bench history add` writes it): one row per run x metric, and its change points."""

    store: Path
    table: pd.DataFrame
    changes: list[ChangePoint]

    def changes_table(self) -> pd.DataFrame:
        from bench.regress.history import changes_table

        return changes_table(self.changes)

    @property
    def exit_status(self) -> int:
        """What `bench history report` exits with: 1 on a standing regression."""
        from bench.regress.history import exit_status

        return exit_status(self.changes)

    def trends(self, metrics: Sequence[str] | None = None) -> list[tuple[str, Figure]]:
        """(title, figure) of the trend charts, for these metrics (default: every one in the store)."""
        from bench.report.history_page import trend_figures

        df = self.table if metrics is None else self.table[self.table["metric"].isin(list(metrics))]
        return trend_figures(df, self.changes)


def history(store: Path | str) -> History:
    from bench.regress.history import find_changes
    from bench.regress.history import load as load_store

    table = load_store(Path(store))
    return History(Path(store), table, find_changes(table))
