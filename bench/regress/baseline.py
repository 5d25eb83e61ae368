"""`python -m bench baseline promote RESULTS --to results/baselines/<machine>/<sweep>`: a results folder becomes
the machine's baseline, with where it came from written beside it."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.core.folder import ResultsFolder
from bench.core.records import OK, REQUESTS_FILE, RUN_FILE, SUMMARY_FILE, atomic_write_text
from bench.run import provenance

PROVENANCE_FILE = "baseline.json"
# What compare and a later analysis read; server logs and telemetry stay with the nightly's artifact.
KEPT = (RUN_FILE, REQUESTS_FILE)
PROVENANCE_KEYS = ("vllm_version", "torch_version", "host", "cpu", "git_commit")


def promote(results: Path, to: Path, reason: str, allow_failed: bool = False) -> dict[str, Any]:
    """Copy a sweep's runs to `to` (replacing what was there, atomically per folder) with a baseline.json
    that says what was promoted, from where, when, by which bench commit, and why."""
    folder = ResultsFolder(results)
    dirs = folder.run_dirs if results.is_dir() else []
    if not dirs:
        raise BenchError(f"no <variant>/{RUN_FILE} in {results}: promote a sweep's results folder")
    runs = {d.name: folder.run(d.name) for d in dirs}
    bad = {name: (run.status if run else "unreadable") for name, run in runs.items() if run is None or run.status != OK}
    if bad and not allow_failed:
        listed = ", ".join(f"{k} ({v})" for k, v in sorted(bad.items()))
        raise BenchError(f"not every variant is ok: {listed}; a baseline must be complete (--allow-failed to force)")
    previous = to / PROVENANCE_FILE
    record: dict[str, Any] = {
        "promoted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": str(results.resolve()),
        "reason": reason,
        "bench_commit": provenance.collect().get("git_commit"),
        "replaces": json.loads(previous.read_text()).get("promoted_at") if previous.is_file() else None,
        "variants": {
            name: {
                "status": run.status,
                "config_hash": run.config_hash,
                "started_at": run.started_at,
                "starts": len(run.starts) or 1,
                "passes": len(run.trials),
                **{
                    k: getattr(run.provenance, k)
                    for k in ("vllm_version", "torch_version", "host", "cpu", "git_commit")
                },
            }
            for name, run in sorted(runs.items())
            if run is not None
        },
    }
    to.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=to.parent, prefix=f".{to.name}."))
    try:
        for d in dirs:
            (staging / d.name).mkdir()
            for name in KEPT:
                if (d / name).is_file():
                    shutil.copy2(d / name, staging / d.name / name)
        if (results / SUMMARY_FILE).is_file():
            shutil.copy2(results / SUMMARY_FILE, staging / SUMMARY_FILE)
        atomic_write_text(staging / PROVENANCE_FILE, json.dumps(record, indent=1) + "\n")
        old = to.with_name(f".{to.name}.old")
        if to.exists():
            shutil.rmtree(old, ignore_errors=True)
            to.rename(old)
        staging.rename(to)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return record
