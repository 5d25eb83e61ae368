"""What a reader needs at a glance, as sentences: figures that mean nothing here, and timings a machine distorts."""

from __future__ import annotations

from pathlib import Path

from bench.core.folder import ResultsFolder, as_folder
from bench.core.records import OK, RunResult
from bench.report.console import random_weights

# The time outside the server (client latency minus the server's e2e) is a few ms a request when the client and
# vLLM's front end have a core to themselves, and grows where the engine's workers take the cores: issue 32 saw
# 164 ms a request for tp2 against 3 ms for single on the 2-core CPU engine (37-46 ms at 64 in flight on an H100).
# Flagged where a variant's is this many times the baseline's and at least STARVED_MIN_S longer.
STARVED_RATIO = 5.0
STARVED_MIN_S = 0.02


def quality_chart_skipped(folder: ResultsFolder | Path) -> str | None:
    """Why the quality chart is left out: every variant served random weights, so every F1 is noise."""
    f = as_folder(folder)
    names = [run.variant for _, run in f.runs()]
    dummy = random_weights(f)
    if not names or set(names) - set(dummy):
        return None
    return (
        "Quality vs speed is not drawn: every variant was served with random weights (--load-format dummy, a"
        " shape model), so the speed is real and F1 / EM are noise. Serve a real model (model=YOUR_MODEL) to"
        " compare answer quality."
    )


def _outside_s(run: RunResult) -> float | None:
    value = run.server_metrics.get("outside_engine_e2e_s")
    return float(value) if isinstance(value, (int, float)) else None


def _workers(run: RunResult) -> int:
    server = run.spec.server if run.spec is not None else None
    return server.tensor_parallel_size * server.pipeline_parallel_size if server is not None else 1


def starved(folder: ResultsFolder | Path, baseline: str = "single") -> list[str]:
    """Variants whose requests spent far longer outside the server than the baseline's: the client and vLLM's
    API front end short of cores (the engine's workers hold them), so the variant's timings measure that too."""
    f = as_folder(folder)
    base = f.run(baseline)
    base_s = _outside_s(base) if base is not None and base.status == OK else None
    if base_s is None:
        return []
    out = []
    for _, run in f.runs():
        mine = _outside_s(run)
        if run.variant == baseline or mine is None or mine < max(STARVED_RATIO * base_s, base_s + STARVED_MIN_S):
            continue
        cores = run.provenance.cpu_count
        where = (
            f" on this {cores}-core CPU, where the engine's {_workers(run)} worker(s) compete with them for cores"
            if run.server.engine == "cpu" and cores
            else ""
        )
        out.append(
            f"{run.variant}: {mine * 1000:.0f} ms a request outside the server against {base_s * 1000:.0f} ms for"
            f" {baseline}: the client and vLLM's API front end are starved of cores{where}, so {run.variant}'s"
            " timings include that contention, not only the variant's own cost. Give the server more cores than"
            " its workers (or the client its own machine) to measure the variant alone."
        )
    return out


def notes(folder: ResultsFolder | Path, baseline: str = "single") -> list[str]:
    """Every note the report's reader should see before the tables."""
    skipped = quality_chart_skipped(folder)
    return ([skipped] if skipped else []) + starved(folder, baseline)
