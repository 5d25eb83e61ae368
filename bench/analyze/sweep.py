"""A results folder (or several, stacked) loaded into the tables that charts, reports and notebooks share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.analyze.tables import (
    load_params,
    load_provenance,
    load_requests,
    load_searches,
    load_telemetry,
    load_trials,
    stack_sweeps,
    summary_table,
    telemetry_timeline,
    write_summary,
)
from bench.core.errors import LinkError
from bench.core.folder import ResultsFolder, as_folder


@dataclass
class Sweep:
    """Every table the charts need from one results folder (or several, stacked with a `sweep` column)."""

    name: str
    path: Path
    summary: pd.DataFrame
    requests: pd.DataFrame
    timeline: pd.DataFrame
    provenance: pd.DataFrame
    errors: list[str] = field(default_factory=list)
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)
    params: pd.DataFrame = field(default_factory=pd.DataFrame)  # swept keys per run (multirun inside a variant)
    searches: pd.DataFrame = field(default_factory=pd.DataFrame)  # load=sweep / slo_search levels tried
    folder: ResultsFolder | None = None  # the owner the tables were read through (None for stacked sweeps)


def _try(errors: list[str], what: str, fn: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """A table that cannot be read becomes empty, and the report says why, instead of the sweep's end crashing."""
    try:
        return fn()
    except LinkError:  # not a table that failed: bad input, refused before anything is written through it
        raise
    except Exception as e:
        errors.append(f"{what}: {type(e).__name__}: {e}")
        return pd.DataFrame()


def load_sweep(
    path: Path | ResultsFolder, baseline: str = "single", name: str | None = None, write: bool = False
) -> Sweep:
    """Never raises: what fails to load is empty and listed in `errors`. `write` also writes summary.csv.
    Every table comes from one ResultsFolder, so each run.json and requests.jsonl is read once."""
    folder = as_folder(path)
    errors: list[str] = []
    summary_of = write_summary if write else summary_table
    requests = _try(errors, "requests.jsonl", lambda: load_requests(folder))
    summary = _try(errors, "summary table", lambda: summary_of(folder, baseline, requests))
    telemetry = _try(errors, "telemetry.csv", lambda: load_telemetry(folder))
    timeline = _try(errors, "telemetry timeline", lambda: telemetry_timeline(telemetry, requests))
    provenance = _try(errors, "provenance", lambda: load_provenance(folder))
    # load_runs skips a torn run.json (a killed writer); say so, or the variant would just be missing.
    errors += folder.problems() + folder.line_problems()
    trials = _try(errors, "trials", lambda: load_trials(folder))
    params = _try(errors, "swept parameters", lambda: load_params(folder))
    searches = _try(errors, "load searches", lambda: load_searches(folder))
    return Sweep(name or folder.path.name, folder.path, summary, requests, timeline, provenance, errors, trials, params,
                 searches, folder)  # fmt: skip


def stack(sweeps: list[Sweep]) -> Sweep:
    """Several sweeps as one, each row labelled by its sweep's name, for side-by-side charts."""

    def table(attr: str) -> pd.DataFrame:
        return stack_sweeps({s.name: getattr(s, attr) for s in sweeps})

    names = " vs ".join(s.name for s in sweeps)
    errors = [f"{s.name}: {e}" for s in sweeps for e in s.errors]
    return Sweep(
        names, sweeps[0].path, table("summary"), table("requests"), table("timeline"), table("provenance"), errors
    )
