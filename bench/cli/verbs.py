"""Every verb's arguments and what it calls, in one place: `python -m bench VERB ...` (the run verb is Hydra's)."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from bench.core.errors import BenchError
from bench.core.files import run_dirs
from bench.core.records import RUN_FILE
from bench.core.repeats import MAX_COUNT


def _results_dir(path: Path | None, what: str = "results folder") -> None:
    if path is None:
        return
    if not path.is_dir():
        raise BenchError(f"no {what} at {path}")
    if not list(run_dirs(path)):
        raise BenchError(f"no runs in {path} (a run is a folder with run.json): nothing to analyze")


def analyze(args: list[str]) -> int:
    from bench.report.build import write_report
    from bench.report.console import format_summary, quality_note
    from bench.report.notes import starved

    p = argparse.ArgumentParser(
        prog="python -m bench analyze",
        description="Summarize a results folder: summary.csv/.md, charts/ (PNG, SVG) and report.html.",
    )
    p.add_argument("results_dir", type=Path)
    p.add_argument("--baseline", default="single", help="variant the speed-up is measured against")
    p.add_argument("--compare", type=Path, metavar="OTHER_DIR", help="another results folder to chart side by side")
    a = p.parse_args(args)
    _results_dir(a.results_dir)
    _results_dir(a.compare)
    report, sweep = write_report(a.results_dir, a.baseline, a.compare)
    print(format_summary(sweep.summary))
    if sweep.folder is not None:
        for note in [quality_note(sweep.folder), *starved(sweep.folder, a.baseline)]:
            if note:
                print(note)
    print(f"\nreport: {report}\ncharts: {report.parent / 'charts'}")
    if sweep.folder is not None and sweep.folder.unreadable:  # the report says so too; a script must notice
        names = ", ".join(str(d / RUN_FILE) for d in sweep.folder.unreadable)
        raise BenchError(f"unreadable, left out of the summary: {names}")
    return 0


def compare(args: list[str]) -> int:
    from bench.regress.compare import METRICS, load_thresholds
    from bench.report.verdicts import report

    p = argparse.ArgumentParser(
        prog="python -m bench compare",
        description="Regression verdicts between two sweep folders (see docs/regression.md). "
        "Exit 1 on a regression, 2 on bad input.",
    )
    p.add_argument("baseline", type=Path, help="the promoted baseline, e.g. results/baselines/MACHINE/nightly "
                   "(or one variant's folder, to compare two variants of one sweep: an A/B)")  # fmt: skip
    p.add_argument("current", type=Path, help="the run to judge, e.g. results/nightly (or the other variant's folder)")
    p.add_argument(
        "--thresholds",
        type=Path,
        metavar="FILE",
        help="YAML over the defaults, or a preset name: default, nightly, shared_cpu",
    )
    p.add_argument("--markdown", type=Path, metavar="OUT.md", help="also write the table as Markdown")
    p.add_argument("--metric", action="extend", nargs="+", choices=list(METRICS), metavar="NAME",
                   help=f"compare only these metrics (default: all of {', '.join(METRICS)})")  # fmt: skip
    p.add_argument("--fail-on-missing", action="store_true", help="exit 1 when a variant or metric is missing")
    a = p.parse_args(args)
    return report(a.baseline, a.current, load_thresholds(a.thresholds), a.metric, a.markdown, a.fail_on_missing)


def history(args: list[str]) -> int:
    from bench.core.metric_registry import TRIAL_METRICS
    from bench.regress.history import DEFAULT_STORE, REPORT_DIR, add, bisect_commands, changes_table, exit_status
    from bench.report.history_page import report

    p = argparse.ArgumentParser(prog="python -m bench history", description="Nightly history: add runs, report trends.")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("add", help="add a results folder's figures to the store (a run already there is skipped)")
    a.add_argument("results_dir", type=Path)
    a.add_argument("--store", type=Path, default=DEFAULT_STORE)
    a.add_argument("--machine", default=os.environ.get("BENCH_MACHINE"), help="series name (default: the host)")
    r = sub.add_parser("report", help="trend charts, change points and an HTML page; exit 1 on a standing regression")
    r.add_argument("--store", type=Path, default=DEFAULT_STORE)
    r.add_argument("--out", type=Path, help=f"where the page and PNGs go (default: STORE/{REPORT_DIR})")
    r.add_argument("--metric", action="append", choices=TRIAL_METRICS, help="only these metrics (repeatable)")
    parsed = p.parse_args(args)
    if parsed.cmd == "add":
        if not parsed.results_dir.is_dir():
            raise BenchError(f"no results folder at {parsed.results_dir}")
        path = add(parsed.results_dir, parsed.store, parsed.machine)
        print(f"added: {path}" if path else f"already in {parsed.store}: {parsed.results_dir}")
        return 0
    page, changes = report(parsed.store, parsed.out, parsed.metric)
    table = changes_table(changes)
    print(table.to_string(index=False) if not table.empty else "no change points")
    commands = bisect_commands(changes)
    if commands:
        # The folders `history add` was given: a nightly that writes every night into one folder keeps only
        # the newest; keep each night's (out_dir=results/nightly-$(date +%F)) to bisect older changes.
        print("\nwhich change caused it (each probe starts servers; see docs/regression.md):")
        print("\n".join(f"  {c}" for c in commands))
    print(f"\nreport: {page}")
    return exit_status(changes)


def baseline(args: list[str]) -> int:
    from bench.regress.baseline import promote

    p = argparse.ArgumentParser(prog="python -m bench baseline", description="Manage stored baselines.")
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("promote", help="make a results folder this machine's baseline (docs/regression.md)")
    pr.add_argument("results", type=Path, help="a sweep's results folder, e.g. results/nightly")
    pr.add_argument("--to", type=Path, required=True, help="results/baselines/<machine>/<sweep>")
    pr.add_argument("--reason", default="", help="why the baseline moves: a vLLM upgrade, a confirmed improvement")
    pr.add_argument("--allow-failed", action="store_true", help="promote even with a variant that is not ok")
    a = p.parse_args(args)
    record = promote(a.results, a.to, a.reason, a.allow_failed)
    print(f"bench: baseline: {len(record['variants'])} variants of {a.results} promoted to {a.to}", file=sys.stderr)
    print(f"  commit it: git add -f {a.to} && git commit -m 'baseline: {a.to.name} ({a.reason or 'why?'})'")
    return 0


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def bisect(args: list[str]) -> int:
    from bench.regress.bisect import Budget
    from bench.regress.bisection import Options, exit_status
    from bench.regress.bisection import bisect as search
    from bench.regress.compare import METRICS, load_thresholds

    p = argparse.ArgumentParser(
        prog="python -m bench bisect",
        description="Which of BAD's changes make GOOD regress, each named with the metrics it explains: each probe "
        "runs GOOD's variant with some changes applied beside GOOD itself (interleaved server starts, a round at a "
        "time until the answer is clear) and judges it as compare does. Exit 1 when a regression is reproduced "
        "and located, 0 when there is none to bisect (docs/regression.md).",
    )
    p.add_argument("good", type=Path, help="results folder (or variant folder) of the good run, e.g. the baseline")
    p.add_argument("bad", type=Path, help="results folder (or variant folder) of the bad run, e.g. tonight's")
    p.add_argument("--variant", help="the variant to bisect (default: the only one, or the folder given)")
    p.add_argument("--out", type=Path, help="where probes go (default: results/bisect/GOOD-BAD-VARIANT), not inside "
                   "GOOD or BAD; re-run the same command to resume an interrupted search")  # fmt: skip
    p.add_argument("--starts", type=int, default=3, help="server starts a side in each probe at most, one round "
                   "at a time (default 3: compare's interval over starts needs three or more)")  # fmt: skip
    p.add_argument("--passes", type=int, default=2, help="passes over the dataset per start (default 2)")
    p.add_argument("--max-probes", type=int, help="stop after this many new probes")
    p.add_argument("--max-minutes", type=float, help="stop starting probes after this many minutes of probes")
    p.add_argument("--metric", action="extend", nargs="+", choices=list(METRICS), metavar="NAME",
                   help="judge probes on these metrics (default: those that regressed from GOOD to BAD)")  # fmt: skip
    p.add_argument("--thresholds", type=Path, metavar="FILE", help="as for compare")
    p.add_argument("--envs", metavar="PY1,PY2,...", help="bisect an ordered list of server interpreters instead "
                   "(server.python; GOOD's first, BAD's last), e.g. venvs of successive vLLM versions")  # fmt: skip
    a = p.parse_args(args)
    if not (1 <= a.starts <= MAX_COUNT and 1 <= a.passes <= MAX_COUNT):
        raise BenchError(f"--starts {a.starts} --passes {a.passes} is out of range: each must be in 1..{MAX_COUNT:,}")
    # Not `<= 0` alone: NaN compares false with everything, and a search bounded by NaN or inf minutes never stops.
    if (a.max_probes is not None and not 1 <= a.max_probes <= MAX_COUNT) or (
        a.max_minutes is not None and not (math.isfinite(a.max_minutes) and a.max_minutes > 0)
    ):
        raise BenchError(f"--max-probes (1..{MAX_COUNT:,}) and --max-minutes must be finite and > 0")
    envs = [e.strip() for e in (a.envs or "").split(",") if e.strip()]
    missing = [e for e in envs if not Path(e).is_file()]
    if missing or (a.envs is not None and len(envs) < 2):
        raise BenchError(f"--envs {a.envs!r}: two or more interpreters that exist (not found: {', '.join(missing)})")
    seconds = a.max_minutes * 60 if a.max_minutes is not None else None
    signal.signal(signal.SIGTERM, _interrupted)  # as Ctrl-C: the probe under way stops its server, exit 130
    o = Options(a.variant, a.out, a.starts, a.passes, Budget(a.max_probes, seconds), a.metric, envs)
    result, text = search(a.good, a.bad, o, load_thresholds(a.thresholds))
    print(text)
    return exit_status(result)


def run(args: list[str]) -> int:
    from bench.cli.run import run as hydra_run

    return hydra_run(args)


VERBS: dict[str, Callable[[list[str]], int]] = {
    "run": run,
    "analyze": analyze,
    "compare": compare,
    "history": history,
    "baseline": baseline,
    "bisect": bisect,
}
