"""What a report shows, handed to every output format: a chart as drawn, or why it failed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Chart:
    """One chart as drawn for the report: its PNG, or why it failed (a failed chart is named, not dropped)."""

    name: str
    title: str
    png: bytes | None = None
    error: str | None = None
