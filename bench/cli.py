"""`python -m bench VERB ...`: the verb is taken off first, since Hydra would read it as an override."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.overrides import CONF_DIR

_SWEEP_DIRS: list[Path] = []  # where the summary callback looked: jobs a launcher ran elsewhere report there
_UNKNOWN: list[str] = []  # variants a sweep named that have no conf/server/NAME.yaml
_LAST_START = [True]  # the summary is printed after the sweep's last server start only

HELP = """\
usage: python -m bench VERB [ARGS]

exit status of run: 0 every variant completed, 1 some variant failed (see the summary),
2 bad input, 130 interrupted (re-run the same command to resume).

verbs:
  run [OVERRIDES]            start a vLLM server per variant, replay the QA set, record everything
  analyze RESULTS_DIR        summary table (and charts) of a results folder
  compare BASELINE CURRENT   regression verdicts between two results folders
  history add RESULTS_DIR    keep a run's figures in the history store (results/history/)
  history report             trend charts and change points of the store; exit 1 on a standing regression
  baseline promote RESULTS --to results/baselines/MACHINE/SWEEP
                             make a results folder the machine's baseline, with its provenance

run examples:
  python -m bench run                              server=single on the default engine
  python -m bench run +sweep=parallel              single, tp2, pp2 -> results/parallel/
  python -m bench run +sweep=decoding dataset.sample_size=20
  python -m bench run server=spec_ngram engine=cpu model=/models/my-hf-folder

config groups (conf/):
  server=   single tp2 pp2 spec_draft spec_ngram awq single_next   (add a YAML file to add a variant)
  dataset=  builtin long_zh squad_file hf              (dataset.sample_size=N dataset.seed=S)
  load=     sequential concurrency rate concurrency_sweep rate_sweep sweep slo_search
  +sweep=   parallel decoding quantization all nightly nightly_gpu spec_k upgrade
  slo.      ttft_ms tpot_ms latency_ms min_f1 identical_to_baseline   (goodput: req/s meeting all)
  engine=   auto cpu cuda

`python -m bench run --help` shows the composed config; `--cfg job` prints it without running.
Set BENCH_DEBUG=1 for tracebacks.
"""


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(HELP)
        return 0
    verb, rest = argv[0], argv[1:]
    debug = os.environ.get("BENCH_DEBUG") == "1"
    from bench.errors import BenchError

    try:
        if verb == "run":
            return _run(rest)
        if verb == "analyze":
            return _analyze(rest)
        if verb == "compare":
            return _compare(rest)
        if verb == "history":
            from bench.history import main as history_main

            return history_main(rest)
        if verb == "baseline":
            from bench.baseline import main as baseline_main

            return baseline_main(rest)
    except BenchError as e:
        if debug:
            traceback.print_exc()
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "bench: interrupted; servers stopped, finished results kept. Re-run the same command to resume.",
            file=sys.stderr,
        )
        return 130
    verbs = "run, analyze, compare, history, baseline"
    print(f"bench: unknown verb {verb!r}; verbs: {verbs} (python -m bench --help)", file=sys.stderr)
    return 2


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _record_unknown(out_dir: Path) -> None:
    """Unknown variants of a sweep get a failed run.json, so the summary, report and exit status show them."""
    import datetime as dt

    from bench.overrides import known_variants
    from bench.results import FAILED, RunResult, write_run

    known = known_variants()
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    for name in _UNKNOWN:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        reason = f"unknown server variant {name!r}; available: {', '.join(known)} (add conf/server/{name}.yaml)"
        write_run(out_dir / name, RunResult(variant=name, status=FAILED, reason=reason, finished_at=now))


def _run(overrides: list[str]) -> int:
    import hydra
    from omegaconf import DictConfig

    from bench.config import register_schemas
    from bench.errors import ConfigError
    from bench.overrides import drop_unknown_variants, name_sweep_runs, plan_starts, rotated, slurm_gpus

    overrides, unknown = drop_unknown_variants(overrides)
    overrides = slurm_gpus(overrides)
    overrides = name_sweep_runs(overrides)
    _UNKNOWN[:] = unknown
    register_schemas()
    # SIGTERM (a CI job cancelled, `kill`) takes the same clean path as Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    status = 0
    # Per variant run in this process, its status after its latest server start: for the exit status.
    statuses: dict[str, str] = {}
    _SWEEP_DIRS.clear()
    started = time.time()

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def task(cfg: DictConfig) -> None:
        nonlocal status
        from bench.errors import BenchError

        try:
            run, run_status = _task(cfg)
            statuses[run] = run_status
        except BenchError as e:
            # Inside Hydra's runner: report here, one line, and stop the sweep.
            if os.environ.get("BENCH_DEBUG") == "1":
                traceback.print_exc()
            print(f"bench: error: {e}", file=sys.stderr)
            status = 2
            raise SystemExit(2) from None

    argv0 = sys.argv[0]
    try:
        starts, variants, rest = plan_starts(overrides)
    except ConfigError:
        raise
    except Exception:  # a malformed override or config: Hydra's own run below says what, in its words
        starts, variants, rest = 1, None, overrides
    # One Hydra run per server start, every variant in it, the order rotated from start to start
    # (overrides.job_order): a multirun runs its jobs in sweeper order, so the interleaving is made here.
    for k in range(starts):
        args = overrides
        if starts > 1:
            args = [*rest, f"start={k}"] + ([f"server={','.join(rotated(variants, k))}"] if variants else [])
        _LAST_START[0] = k == starts - 1
        sys.argv = [argv0, *args]
        try:
            task()
        except SystemExit as e:
            # Hydra exits 1 after printing a config error of its own (typo, unknown group option).
            return 2 if e.code == 1 else int(e.code or 0)
        except ValueError as e:
            # Hydra's refusal of its own flags before any job runs ("Only one of --run, --multirun, --cfg ...").
            raise ConfigError(str(e).splitlines()[0]) from None
        if status:
            return status
    # Every variant ran to its end: 0 only if all of them completed, so scripts notice a failed one.
    # Jobs a launcher (submitit...) ran in other processes left their statuses on disk.
    done = list(statuses.values()) or _statuses_on_disk(_SWEEP_DIRS, since=started)
    return 0 if all(s == "ok" for s in done) and not unknown else 1


def _statuses_on_disk(sweep_dirs: list[Path], since: float) -> list[str]:
    """Statuses of the runs that finished after `since`: a launcher (submitit...) ran them in other processes."""
    import datetime as dt

    from bench.results import read_run, run_dirs

    out = []
    for d in (run for sweep in sweep_dirs for run in run_dirs(sweep)):
        run = read_run(d)
        if run and run.finished_at and dt.datetime.fromisoformat(run.finished_at).timestamp() >= int(since):
            out.append(run.status)
    return out


def _task(cfg: Any) -> tuple[str, str]:
    """One variant's server start inside Hydra; returns the variant's folder and its status."""
    import logging

    # One INFO line per request from the HTTP client would bury the progress bar.
    for name in ("httpx", "httpx2", "openai"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from bench.analysis import write_summary
    from bench.config import to_bench_config
    from bench.loadsearch import search_outcome
    from bench.runner import run_variant

    bc = to_bench_config(cfg)
    try:
        result = run_variant(bc)
    finally:
        write_summary(Path(bc.out_dir), bc.baseline_variant)
    line = f"bench: {result.variant}: {result.status}"
    if result.reason:
        line += f" ({result.reason})"
    print(line, file=sys.stderr)
    if result.search:
        print(f"bench: {result.variant}: {search_outcome(result.search)}", file=sys.stderr)
    return str(Path(bc.out_dir) / bc.run_name), result.status


def _analyze(args: list[str]) -> int:
    from bench.analysis import format_summary, summary_table
    from bench.errors import BenchError
    from bench.report import analyze
    from bench.results import run_dirs

    p = argparse.ArgumentParser(
        prog="python -m bench analyze",
        description="Summarize a results folder: summary.csv/.md, charts/ (PNG, SVG) and report.html.",
    )
    p.add_argument("results_dir", type=Path)
    p.add_argument("--baseline", default="single", help="variant the speed-up is measured against")
    p.add_argument("--compare", type=Path, metavar="OTHER_DIR", help="another results folder to chart side by side")
    a = p.parse_args(args)
    for d in (a.results_dir, a.compare):
        if d is not None and not d.is_dir():
            raise BenchError(f"no results folder at {d}")
        if d is not None and not list(run_dirs(d)):
            raise BenchError(f"no runs in {d} (a run is a folder with run.json): nothing to analyze")
    report = analyze(a.results_dir, a.baseline, a.compare)
    print(format_summary(summary_table(a.results_dir, a.baseline)))
    print(f"\nreport: {report}\ncharts: {report.parent / 'charts'}")
    return 0


def _compare(args: list[str]) -> int:
    from bench.compare import METRICS, load_thresholds, report

    p = argparse.ArgumentParser(
        prog="python -m bench compare",
        description="Regression verdicts between two sweep folders (see docs/regression.md). "
        "Exit 1 on a regression, 2 on bad input.",
    )
    p.add_argument("baseline", type=Path, help="the promoted baseline, e.g. results/baselines/MACHINE/nightly "
                   "(or one variant's folder, to compare two variants of one sweep: an A/B)")  # fmt: skip
    p.add_argument("current", type=Path, help="the run to judge, e.g. results/nightly (or the other variant's folder)")
    p.add_argument("--thresholds", type=Path, metavar="FILE", help="YAML over the defaults: conf/compare/default.yaml")
    p.add_argument("--markdown", type=Path, metavar="OUT.md", help="also write the table as Markdown")
    p.add_argument("--metric", action="extend", nargs="+", choices=list(METRICS), metavar="NAME",
                   help=f"compare only these metrics (default: all of {', '.join(METRICS)})")  # fmt: skip
    p.add_argument("--fail-on-missing", action="store_true", help="exit 1 when a variant or metric is missing")
    a = p.parse_args(args)
    return report(a.baseline, a.current, load_thresholds(a.thresholds), a.metric, a.markdown, a.fail_on_missing)


class SummaryCallback:
    """Hydra callback: the one-screen summary once a run or sweep ends."""

    def _print(self, config: Any) -> None:
        from bench.analysis import format_summary, startup_phases, summary_table, time_split
        from bench.report import analyze

        out_dir = Path(config.out_dir)
        if not out_dir.is_dir() or not _LAST_START[0]:
            return
        _SWEEP_DIRS.append(out_dir)
        table = summary_table(out_dir, config.baseline_variant)
        print("", format_summary(table), time_split(table), startup_phases(out_dir), sep="\n")
        report = analyze(out_dir, config.baseline_variant)
        print(f"results: {out_dir}\nreport:  {report}")

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        _record_unknown(Path(config.out_dir))

    def on_run_end(self, config: Any, **kwargs: Any) -> None:
        self._print(config)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self._print(config)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):  # the other hooks Hydra calls do nothing here
            return lambda *a, **k: None
        raise AttributeError(name)
