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

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
_STATUSES: list[str] = []  # one per variant run in this process, for the exit status
_SWEEP_DIRS: list[Path] = []  # where the summary callback looked: jobs a launcher ran elsewhere report there
_UNKNOWN: list[str] = []  # variants a sweep named that have no conf/server/NAME.yaml

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

run examples:
  python -m bench run                              server=single on the default engine
  python -m bench run +sweep=parallel              single, tp2, pp2 -> results/parallel/
  python -m bench run +sweep=decoding dataset.sample_size=20
  python -m bench run server=spec_ngram engine=cpu model=/models/my-hf-folder

config groups (conf/):
  server=   single tp2 pp2 spec_draft spec_ngram awq   (add a YAML file to add a variant)
  dataset=  builtin squad_file hf                      (dataset.sample_size=N dataset.seed=S)
  load=     sequential concurrency rate concurrency_sweep rate_sweep sweep slo_search
  +sweep=   parallel decoding quantization all nightly spec_k
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
            from bench.compare import main as compare_main

            return compare_main(rest)
        if verb == "history":
            from bench.history import main as history_main

            return history_main(rest)
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
    verbs = "run, analyze, compare, history"
    print(f"bench: unknown verb {verb!r}; verbs: {verbs} (python -m bench --help)", file=sys.stderr)
    return 2


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _known_variants() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "server").glob("*.yaml"))


def _sweep_variants(name: str) -> list[str]:
    from omegaconf import OmegaConf

    path = CONF_DIR / "sweep" / f"{name}.yaml"
    return str(OmegaConf.load(path).hydra.sweeper.params.get("server", "")).split(",") if path.is_file() else []


def _variants_of(override: str) -> list[str] | None:
    """The variants an override names: `server=a,b` directly, `+sweep=NAME` through its preset; None for others."""
    key, _, value = override.partition("=")
    if key.lstrip("+~") == "server":
        names = value.split(",")
    elif key.lstrip("+") == "sweep":
        names = _sweep_variants(value)
    else:
        return None
    return [n.strip() for n in names if n.strip()]


def _drop_unknown_variants(overrides: list[str]) -> tuple[list[str], list[str]]:
    """The overrides without unknown variants, and those variants. All unknown is bad input (exit 2);
    some unknown in a sweep are reported and recorded as failed, and the known ones still run."""
    from bench.errors import ConfigError

    known = _known_variants()
    kept, unknown, asked = [], [], []
    for o in overrides:
        names = _variants_of(o)
        if names is None:
            kept.append(o)
            continue
        asked += names
        unknown += [n for n in names if n not in known]
        good = [n for n in names if n in known]
        key = o.partition("=")[0]
        if key.lstrip("+") == "sweep":
            kept.append(o)
            if good and len(good) < len(names):  # the preset's list, less what does not exist
                kept.append(f"hydra.sweeper.params.server={','.join(good)}")
        elif good:
            kept.append(f"{key}={','.join(good)}")
    if unknown:
        message = (
            f"unknown server variant {', '.join(unknown)}; available: {', '.join(known)}"
            f" (add conf/server/NAME.yaml to define one)"
        )
        if len(unknown) == len(asked):
            raise ConfigError(message)
        print(f"bench: error: {message}; the other variants run", file=sys.stderr)
    return kept, unknown


def _slurm_gpus(overrides: list[str]) -> list[str]:
    """The SLURM launcher runs every job of a sweep as one job array with the same resources: ask each job
    for the largest TP x PP among the sweep's variants, unless the command sets gpus_per_node itself."""
    from omegaconf import OmegaConf

    if "hydra/launcher=submitit_slurm" not in overrides or any("hydra.launcher.gpus_per_node=" in o for o in overrides):
        return overrides
    names = [n for o in overrides for n in _variants_of(o) or []] or ["single"]
    sizes = {"tensor_parallel_size": [1], "pipeline_parallel_size": [1]}
    for o in overrides:  # sizes set on the command line count too
        key, _, value = o.partition("=")
        if key.removeprefix("server.") in sizes:
            sizes[key.removeprefix("server.")] += [int(v) for v in value.split(",")]
    need = 1
    for name in names:
        path = CONF_DIR / "server" / f"{name}.yaml"
        conf = OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {}
        assert isinstance(conf, dict)
        tp = max([int(conf.get("tensor_parallel_size", 1)), *sizes["tensor_parallel_size"]])
        pp = max([int(conf.get("pipeline_parallel_size", 1)), *sizes["pipeline_parallel_size"]])
        need = max(need, tp * pp)
    print(f"bench: each SLURM job asks for {need} GPU(s), the sweep's largest TP x PP", file=sys.stderr)
    return [*overrides, f"hydra.launcher.gpus_per_node={need}"]


# Keys whose sweep does not name runs apart: the variant already names them; hydra's own; where runs go.
_UNNAMED_KEYS = ("server", "run_name", "out_dir", "sweep_name", "sweep_params")


def _swept_keys(overrides: list[str]) -> list[str]:
    """Keys the multirun varies besides the variant, in command order: comma lists, range() and
    choice() on the command line or in a `+sweep=` preset's `hydra.sweeper.params`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    lines = []
    for o in overrides:
        key, _, value = o.partition("=")
        if key.lstrip("+") == "sweep" and (CONF_DIR / "sweep" / f"{value}.yaml").is_file():
            params = OmegaConf.select(OmegaConf.load(CONF_DIR / "sweep" / f"{value}.yaml"), "hydra.sweeper.params")
            lines += [f"{k}={v}" for k, v in (params or {}).items()]
        else:
            lines.append(o.removeprefix("hydra.sweeper.params."))
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except HydraException:
        return []  # Hydra itself reports the bad override, in its words
    keys = [o.key_or_group for o in parsed if o.is_sweep_override()]
    return [k for k in dict.fromkeys(keys) if k not in _UNNAMED_KEYS and not k.startswith("hydra.")]


def _sweep_run_name(keys: list[str]) -> str:
    """`${server.name}-LEAF=VALUE...`: one folder per combination, named by what varies, stable across
    re-runs (so resume finds it). The key's last part names it unless two swept keys share that part."""
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
    leaves = [k.rsplit(".", 1)[-1] for k in keys]
    parts = []
    for key, leaf in zip(keys, leaves, strict=True):
        label = leaf if leaves.count(leaf) == 1 else key
        value = f"${{{key}.name}}" if key in groups else f"${{bench_slug:${{{key}}}}}"
        parts.append(f"{label}={value}")
    return "${server.name}-" + "-".join(parts)


def _name_sweep_runs(overrides: list[str]) -> list[str]:
    """A multirun varying fields inside a variant gets a folder per combination, and records what it varied."""
    keys = _swept_keys(overrides)
    if not keys:
        return overrides
    out = [*overrides, f"sweep_params=[{','.join(keys)}]"]
    if not any(o.partition("=")[0].lstrip("+") == "run_name" for o in overrides):
        out.append(f"run_name='{_sweep_run_name(keys)}'")
    return out


def _record_unknown(out_dir: Path) -> None:
    """Unknown variants of a sweep get a failed run.json, so the summary, report and exit status show them."""
    import datetime as dt

    from bench.results import FAILED, RunResult, write_run

    known = _known_variants()
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    for name in _UNKNOWN:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        reason = f"unknown server variant {name!r}; available: {', '.join(known)} (add conf/server/{name}.yaml)"
        write_run(out_dir / name, RunResult(variant=name, status=FAILED, reason=reason, finished_at=now))
        _STATUSES.append(FAILED)


def _run(overrides: list[str]) -> int:
    import hydra
    from omegaconf import DictConfig

    from bench.config import register_schemas

    overrides, unknown = _drop_unknown_variants(overrides)
    overrides = _slurm_gpus(overrides)
    overrides = _name_sweep_runs(overrides)
    _UNKNOWN[:] = unknown
    register_schemas()
    # SIGTERM (a CI job cancelled, `kill`) takes the same clean path as Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    status = 0
    _STATUSES.clear()
    _SWEEP_DIRS.clear()
    started = time.time()

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def task(cfg: DictConfig) -> None:
        nonlocal status
        from bench.errors import BenchError

        try:
            _task(cfg)
        except BenchError as e:
            # Inside Hydra's runner: report here, one line, and stop the sweep.
            if os.environ.get("BENCH_DEBUG") == "1":
                traceback.print_exc()
            print(f"bench: error: {e}", file=sys.stderr)
            status = 2
            raise SystemExit(2) from None

    sys.argv = [sys.argv[0], *overrides]
    try:
        task()
    except SystemExit as e:
        # Hydra exits 1 after printing a config error of its own (typo, unknown group option).
        return 2 if e.code == 1 else int(e.code or 0)
    if status:
        return status
    # Every variant ran to its end: 0 only if all of them completed, so scripts notice a failed one.
    statuses = _STATUSES or _statuses_on_disk(_SWEEP_DIRS, since=started)
    return 0 if all(s == "ok" for s in statuses) else 1


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


def _task(cfg: Any) -> None:
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
    _STATUSES.append(result.status)
    line = f"bench: {result.variant}: {result.status}"
    if result.reason:
        line += f" ({result.reason})"
    print(line, file=sys.stderr)
    if result.search:
        print(f"bench: {result.variant}: {search_outcome(result.search)}", file=sys.stderr)


def _analyze(args: list[str]) -> int:
    from bench.analysis import format_summary, summary_table
    from bench.errors import BenchError
    from bench.report import analyze

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
    report = analyze(a.results_dir, a.baseline, a.compare)
    print(format_summary(summary_table(a.results_dir, a.baseline)))
    print(f"\nreport: {report}\ncharts: {report.parent / 'charts'}")
    return 0


class SummaryCallback:
    """Hydra callback: the one-screen summary once a run or sweep ends."""

    def _print(self, config: Any) -> None:
        from bench.analysis import format_summary, summary_table, time_split
        from bench.report import analyze

        out_dir = Path(config.out_dir)
        if not out_dir.is_dir():
            return
        _SWEEP_DIRS.append(out_dir)
        table = summary_table(out_dir, config.baseline_variant)
        print("", format_summary(table), time_split(table), sep="\n")
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
