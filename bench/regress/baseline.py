"""`python -m bench baseline promote RESULTS --to results/baselines/<machine>/<sweep>`: a results folder becomes
the machine's baseline, with where it came from written beside it."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.core.files import atomic_write_text, no_link, read_json_object
from bench.core.folder import ResultsFolder
from bench.core.records import OK, REQUESTS_FILE, RUN_FILE, SUMMARY_FILE, RunResult
from bench.run import provenance

PROVENANCE_FILE = "baseline.json"
# What compare and a later analysis read; server logs and telemetry stay with the nightly's artifact.
KEPT = (RUN_FILE, REQUESTS_FILE)
PROVENANCE_KEYS = ("vllm_version", "torch_version", "host", "cpu", "git_commit")


PREVIOUS_DIR = "previous"  # every replaced baseline, by the time it was promoted: nothing is ever deleted


def promote(results: Path, to: Path, reason: str, allow_failed: bool = False) -> dict[str, Any]:
    """Copy a sweep's runs to `to` with a baseline.json that says what was promoted, from where, when, by which
    bench commit, and why. The baseline it replaces moves to `to/previous/<its time>/`; a `to` that holds
    anything but a promoted baseline, or overlaps the source, is refused before anything is written."""
    folder = ResultsFolder(results)
    runs = _promotable(folder, allow_failed)
    _check_target(results, to)
    no_link(to)
    no_link(to / PREVIOUS_DIR)  # a linked previous/ would have its user's files moved in
    record = _record(results, to, reason, runs)
    to.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=to.parent, prefix=f".{to.name}."))
    try:
        for d in folder.run_dirs:
            (staging / d.name).mkdir()
            for name in KEPT:
                if (d / name).is_file():
                    shutil.copy2(d / name, staging / d.name / name)
        if (results / SUMMARY_FILE).is_file():
            shutil.copy2(results / SUMMARY_FILE, staging / SUMMARY_FILE)
        atomic_write_text(staging / PROVENANCE_FILE, json.dumps(record, indent=1) + "\n")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # only what this call made
        raise
    _swap(staging, to)
    return record


def _promotable(folder: ResultsFolder, allow_failed: bool) -> dict[str, RunResult]:
    """The sweep's runs, if they can be a baseline: readable, ok (unless allowed), and with figures to compare."""
    if not folder.path.is_dir() or not folder.run_dirs:
        raise BenchError(f"no <variant>/{RUN_FILE} in {folder.path}: promote a sweep's results folder")
    if folder.unreadable:
        names = ", ".join(d.name for d in folder.unreadable)
        raise BenchError(f"{RUN_FILE} unreadable in {folder.path}: {names}; a baseline must be readable")
    runs = {d.name: run for d, run in folder.runs()}
    bad = {name: run.status for name, run in runs.items() if run.status != OK}
    if bad and not allow_failed:
        listed = ", ".join(f"{k} ({v})" for k, v in sorted(bad.items()))
        raise BenchError(f"not every variant is ok: {listed}; a baseline must be complete (--allow-failed to force)")
    empty = sorted(name for name, run in runs.items() if run.status == OK and not _has_figures(run))
    if empty:
        raise BenchError(f"{', '.join(empty)}: no measured figures in {RUN_FILE}, nothing to compare against")
    return runs


def _has_figures(run: RunResult) -> bool:
    return run.wall_clock_s is not None or any(t.wall_clock_s is not None for t in run.trials)


def _check_target(results: Path, to: Path) -> None:
    """`to` neither inside nor around the source, and either absent, empty or a baseline bench promoted."""
    src, dst = results.resolve(), to.resolve()
    if dst == src or dst.is_relative_to(src) or src.is_relative_to(dst):
        raise BenchError(f"--to {to} overlaps the results folder {results}: give a folder outside it")
    if to.is_symlink() or (to.exists() and not to.is_dir()):
        raise BenchError(f"--to {to} is not a folder bench promoted a baseline into")
    if to.is_dir() and any(to.iterdir()):
        foreign = _foreign(to)
        if not (to / PROVENANCE_FILE).is_file() or foreign:
            what = f" (it holds {', '.join(foreign[:3])})" if foreign else f" (no {PROVENANCE_FILE})"
            raise BenchError(f"--to {to} is not a baseline bench promoted{what}: refusing to replace it")


def _foreign(to: Path) -> list[str]:
    """What in a baseline folder bench did not put there."""
    out = []
    for entry in to.iterdir():
        if entry.name in (PROVENANCE_FILE, SUMMARY_FILE, PREVIOUS_DIR) or entry.name.startswith("."):
            continue
        if not entry.is_dir() or entry.is_symlink() or any(f.name not in KEPT for f in entry.iterdir()):
            out.append(entry.name)
    return sorted(out)


def _swap(staging: Path, to: Path) -> None:
    """The new baseline in place; the one it replaces (and its own previous ones) kept under previous/."""
    if not to.exists():
        staging.rename(to)
        return
    old = to.with_name(f".{to.name}.replaced")
    to.rename(old)
    staging.rename(to)
    (to / PREVIOUS_DIR).mkdir(exist_ok=True)
    if (old / PREVIOUS_DIR).is_dir():
        for generation in (old / PREVIOUS_DIR).iterdir():
            generation.rename(to / PREVIOUS_DIR / generation.name)
        (old / PREVIOUS_DIR).rmdir()
    if any(old.iterdir()):
        name, taken = _generation_name(old), {p.name for p in (to / PREVIOUS_DIR).iterdir()}
        unique = next(n for i in range(len(taken) + 1) if (n := f"{name}-{i}" if i else name) not in taken)
        old.rename(to / PREVIOUS_DIR / unique)  # two promotions in one second keep both
    else:
        old.rmdir()


def _generation_name(baseline: Path) -> str:
    try:
        when = read_json_object(baseline / PROVENANCE_FILE, "baseline record").get("promoted_at") or ""
    except (OSError, BenchError):
        when = ""
    return re.sub(r"[^0-9A-Za-z]", "", str(when))[:15] or dt.datetime.now().strftime("%Y%m%dT%H%M%S")


def _record(results: Path, to: Path, reason: str, runs: dict[str, RunResult]) -> dict[str, Any]:
    previous = to / PROVENANCE_FILE
    return {
        "promoted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": str(results.resolve()),
        "reason": reason,
        "bench_commit": provenance.collect().get("git_commit"),
        "replaces": read_json_object(previous, "baseline record").get("promoted_at") if previous.is_file() else None,
        "variants": {
            name: {
                "status": run.status,
                "config_hash": run.config_hash,
                "started_at": run.started_at,
                "starts": len(run.starts) or 1,
                "passes": len(run.trials),
                **{k: getattr(run.provenance, k) for k in PROVENANCE_KEYS},
            }
            for name, run in sorted(runs.items())
        },
    }
