"""Console output: the one-screen summary and where a sweep's server time went, as text for the terminal."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.analyze.tables import formatted, metrics_shown
from bench.core.folder import ResultsFolder, as_folder
from bench.core.metric_registry import CONSOLE


def format_summary(table: pd.DataFrame) -> str:
    """The one-screen end-of-sweep table."""
    if table.empty:
        return "no runs"
    view = {"variant": table["variant"], "status": table.apply(_status_shown, axis=1)}
    view |= {m.label: formatted(table, m.name, m.format) for m in metrics_shown(table, CONSOLE)}
    view["reason"] = table["reason"].fillna("").map(lambda s: s if len(s) <= 70 else s[:67] + "...")
    return pd.DataFrame(view).to_string(index=False)


def _status_shown(row: pd.Series) -> str:
    """A run with failed requests never reads as a plain `ok`, whichever bench wrote it."""
    failed = pd.to_numeric(row.get("n_failed"), errors="coerce")
    return f"{row['status']}, {failed:.0f} failed" if pd.notna(failed) and failed > 0 else str(row["status"])


def time_split(table: pd.DataFrame) -> str:
    """Where the sweep's server time went: starting and stopping servers vs replaying requests."""
    total = {
        c: pd.to_numeric(table[c], errors="coerce").sum() for c in ("startup_s", "shutdown_s", "replay_s") if c in table
    }
    spent = sum(total.values())
    if not spent:
        return ""
    overhead = (total.get("startup_s", 0.0) + total.get("shutdown_s", 0.0)) / spent
    return (
        f"server time: start-up {total.get('startup_s', 0.0):.0f} s, replay {total.get('replay_s', 0.0):.0f} s,"
        f" shutdown {total.get('shutdown_s', 0.0):.0f} s ({overhead:.0%} starting and stopping)"
    )


def startup_phases(folder: ResultsFolder | Path) -> str:
    """Where start-up went, summed over every server start of the sweep, by phase (runs that recorded it)."""
    total: dict[str, float] = {}
    n = 0
    for _, run in as_folder(folder).runs():
        for start in run.starts:
            phases = start.startup_phases_s
            n += bool(phases)
            for phase, s in phases.items():
                total[phase] = total.get(phase, 0.0) + s
    if not total:
        return ""
    spent = sum(total.values())
    parts = ", ".join(f"{phase} {s:.0f} s ({s / spent:.0%})" for phase, s in total.items())
    return f"start-up by phase over {n} start{'s' * (n != 1)}: {parts}"


def random_weights(folder: ResultsFolder | Path) -> list[str]:
    """Variants served with random weights (`--load-format dummy`, a shape model): their speed is real, their
    answers noise, so F1 and EM of 0.00 say nothing about quality."""
    out = []
    for _, run in as_folder(folder).runs():
        cmd = [str(a) for a in run.server.command]
        pairs = zip(cmd[:-1], cmd[1:], strict=True)
        if "--load-format=dummy" in cmd or any(a == "--load-format" and b == "dummy" for a, b in pairs):
            out.append(run.variant)
    return out


def quality_note(folder: ResultsFolder | Path) -> str:
    names = random_weights(folder)
    if not names:
        return ""
    return (
        f"F1 and EM mean nothing for {', '.join(names)}: served with random weights (--load-format dummy,"
        " a shape model), so the speed is real and the answers are noise; model=YOUR_MODEL for real answers"
    )
