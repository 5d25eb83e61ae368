"""What a report shows, handed to every output format: the folder's tables, its charts, the sweeps beside it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.analyze.sweep import Sweep


@dataclass
class Chart:
    """One chart as drawn for the report: its PNG, or why it failed (a failed chart is named, not dropped)."""

    name: str
    title: str
    png: bytes | None = None
    error: str | None = None


@dataclass
class Report:
    results_dir: Path
    sweep: Sweep
    baseline: str
    charts: list[Chart]
    # --compare: the folders stacked (this one and the other) with their charts, drawn side by side.
    compared: list[tuple[Sweep, list[Chart]]] = field(default_factory=list)
