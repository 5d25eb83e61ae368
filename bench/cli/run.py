"""`python -m bench run [OVERRIDES]`: one Hydra run per server start, every variant in it, and the sweep's summary."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.core.paths import CONF_SEARCH_PATH

# Hydra's own flags that take a value; `--cfg job` must travel as a pair wherever the user put it.
_VALUED_FLAGS = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
                 "-cd", "--info", "-i", "--experimental-rerun")  # fmt: skip
# Flags after which Hydra prints or explains and runs no job: one Hydra call, not one per server start.
_NO_JOB_FLAGS = ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help", "--shell-completion", "-sc")


def split_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """(Hydra's flags with their values, the overrides). Hydra's argparse reads no flag between two overrides,
    so the flags go first whatever their place on the command line."""
    flags, overrides = [], []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            flags.append(arg)
            takes_value = arg in _VALUED_FLAGS and "=" not in arg
            if takes_value and i + 1 < len(args) and not args[i + 1].startswith("-") and "=" not in args[i + 1]:
                flags.append(args[i + 1])
                i += 1
        else:
            overrides.append(arg)
        i += 1
    return flags, overrides


def config_dirs(flags: list[str]) -> list[Path]:
    """The folders of Hydra's `--config-dir DIR` / `-cd DIR` / `--config-dir=DIR`, made absolute; a missing
    one is bad input here, where Hydra would say less."""
    from bench.core.errors import ConfigError

    dirs = []
    for i, flag in enumerate(flags):
        name, eq, value = flag.partition("=")
        if name not in ("--config-dir", "-cd"):
            continue
        value = value if eq else (flags[i + 1] if i + 1 < len(flags) else "")
        if not value or not Path(value).is_dir():
            raise ConfigError(f"{name} {value!r}: no such folder (it holds server/NAME.yaml variants, sweep/...)")
        dirs.append(Path(value).resolve())
    return dirs


def _gpus_here() -> int:
    from bench.run.telemetry import gpu_count

    return gpu_count()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: list[str]) -> int:
    """Exit status: 0 every variant ok, 1 some variant not ok (or unknown), 2 bad input; Ctrl-C raises."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from bench.cli.overrides import (
        Sources,
        drop_unknown_variants,
        name_sweep_runs,
        one_line,
        parse,
        plan_starts,
        ray_resources,
        rotated,
        slurm_gpus,
    )
    from bench.core.config import register_schemas
    from bench.core.errors import ConfigError
    from bench.run.runner import check_job

    register_schemas()  # the config groups' schemas, before anything composes the config
    flags, overrides = split_flags(args)
    src = Sources(tuple(config_dirs(flags)))
    overrides, unknown = drop_unknown_variants(overrides, src)
    gpus_here = _gpus_here()
    overrides = name_sweep_runs(ray_resources(slurm_gpus(overrides, gpus_here, src), gpus_here, src), src)
    # SIGTERM (a CI job cancelled, `kill`) takes the same clean path as Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    told: set[str] = set()  # old config spellings already reported: once per command, not once per job
    if any(f.split("=")[0] in _NO_JOB_FLAGS for f in flags):
        swept = [o.input_line for o in parse(overrides, strict=True) if o.is_sweep_override()]
        if swept and not any(f in ("-m", "--multirun") for f in flags):
            raise ConfigError(f"{swept[0]}: --cfg, --info and --help show one job; give one value")
        return _hydra([*flags, *overrides], {}, told)
    multirun = any(f in ("-m", "--multirun") for f in flags)
    try:
        plan = plan_starts(overrides, src, multirun, check_job, told)
    except (HydraException, OmegaConfBaseException) as e:  # a typo'd key, an unknown option, a wrong type
        raise ConfigError(one_line(e)) from None
    if unknown and plan.out_dirs:  # recorded as failed runs, so the summary, report and exit status show them
        record_unknown(plan.out_dirs[0], unknown, src.known_variants())
    statuses: dict[str, str] = {}
    started = time.time()
    round_s: list[float] = []
    # One Hydra run per server start, every variant in it, the order rotated from start to start
    # (overrides.job_order): a multirun runs its jobs in sweeper order, so the interleaving is made here.
    for k in range(plan.starts):
        args_k = [*flags, *overrides]
        if plan.starts > 1:
            variants = [f"server={','.join(rotated(plan.variants, k))}"] if plan.variants else []
            args_k = [*flags, *plan.rest, f"start={k}", *variants]
        args_k.append(f"last_start={str(k == plan.starts - 1).lower()}")
        t0 = time.time()
        status = _hydra(args_k, statuses, told)
        if status:
            return status
        round_s.append(time.time() - t0)
        if _rounds_end(plan, k + 1, round_s, time.time() - started):
            statuses.clear()  # the runs' statuses as the early stop made them (complete), read back from disk
            break
    # Every variant ran to its end: 0 only if all of them completed, so scripts notice a failed one.
    # Jobs a launcher (submitit...) ran in other processes left their statuses on disk.
    done = list(statuses.values()) or statuses_on_disk(plan.out_dirs, since=started)
    return 0 if all(s == "ok" for s in done) and not unknown else 1


def _rounds_end(plan: Any, done: int, round_s: list[float], elapsed_s: float) -> bool:
    """Whether the sweep stops after `done` rounds (repeats.until=clear, repeats.max_minutes): recorded in every
    run.json, said on one line, and the summary printed, which the last start's callback would have done."""
    from bench.regress import rounds

    if not plan.out_dirs or (plan.repeats.until == "fixed" and plan.repeats.max_minutes is None):
        return False
    decision = rounds.after_round(plan.out_dirs[0], plan.repeats, plan.baseline_variant, done, round_s, elapsed_s)
    if decision is None:
        return False
    rounds.record(plan.out_dirs[0], decision)
    print(f"bench: rounds: {decision['verdict']} after {done} of {plan.starts}: {decision['reason']}", file=sys.stderr)
    if done < plan.starts:
        print_summary(plan.out_dirs[0], plan.baseline_variant, plan.report)
    return True


def _hydra(argv: list[str], statuses: dict[str, str], told: set[str]) -> int:
    """One Hydra run (a job, or a multirun's jobs) of the arguments `argv`, read by Hydra's own parser (not
    sys.argv); each job's variant and status lands in `statuses`."""
    from hydra._internal.utils import _run_hydra, get_args_parser
    from omegaconf import DictConfig

    from bench.core.errors import BenchError, ConfigError

    failed = [0]

    def task(cfg: DictConfig) -> None:
        try:
            run_dir, status = run_job(cfg, told)
            statuses[run_dir] = status
        except BenchError as e:
            # Inside Hydra's runner: report here, one line, and stop the sweep.
            if os.environ.get("BENCH_DEBUG") == "1":
                traceback.print_exc()
            print(f"bench: error: {e}", file=sys.stderr)
            failed[0] = 2
            raise SystemExit(2) from None
        except Exception as e:  # Hydra would print the traceback and exit 1, which reads as a verdict
            from bench.core.exits import internal_error

            failed[0] = internal_error(e)
            raise SystemExit(failed[0]) from None

    parser = get_args_parser()
    try:
        # hydra.main's own body, less its sys.argv: the arguments are this command's.
        _run_hydra(args=parser.parse_args(argv), args_parser=parser, task_function=task,
                   config_path=CONF_SEARCH_PATH, config_name="config")  # fmt: skip
    except SystemExit as e:
        # Hydra exits 1 after printing a config error of its own (typo, unknown group option).
        return 2 if e.code == 1 else int(e.code or 0)
    except ValueError as e:
        # Hydra's refusal of its own flags before any job runs ("Only one of --run, --multirun, --cfg ...").
        raise ConfigError(str(e).splitlines()[0]) from None
    return failed[0]


def statuses_on_disk(out_dirs: list[Path], since: float) -> list[str]:
    """Statuses of the runs that finished after `since`: a launcher (submitit...) ran them in other processes."""
    from bench.core.folder import ResultsFolder

    out = []
    for run in (run for sweep in out_dirs if sweep.is_dir() for _, run in ResultsFolder(sweep).runs()):
        if run.finished_at and dt.datetime.fromisoformat(run.finished_at).timestamp() >= int(since):
            out.append(run.status)
    return out


def run_job(cfg: Any, told: set[str] | None = None) -> tuple[str, str]:
    """One variant's server start inside Hydra; returns the variant's folder and its status."""
    # One INFO line per request from the HTTP client would bury the progress bar.
    for name in ("httpx", "httpx2", "openai"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from bench.analyze.tables import write_summary
    from bench.core.config import to_bench_config
    from bench.core.folder import locked
    from bench.run.load import search_outcome
    from bench.run.runner import run_variant

    bc = to_bench_config(cfg, told)
    try:
        # One writer per run folder: a second `bench run` into it refuses (or waits, lock_wait_s) instead of
        # deleting the first one's requests file under it.
        with locked(Path(bc.out_dir) / bc.run_name, bc.lock_wait_s):
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


def redact_hydra_files(config: Any) -> None:
    """Hydra writes the job's config, overrides and its own config into <run>/.hydra/ (and a sweep's into
    multirun.yaml) before bench sees them: an api_key given on the command line, or credentials inside an
    endpoint URL, would be kept in plain text and uploaded with a nightly's artifacts. Rewritten here."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from bench.core.files import atomic_write_text
    from bench.core.secrets import redact, secret_values

    hydra_cfg = HydraConfig.get()
    tree = OmegaConf.to_container(config, resolve=False)
    secrets = secret_values(tree) | secret_values(list(hydra_cfg.overrides.task))
    try:  # resolved too: ${oc.env:KEY} is safe in the files, but a resolved value may be written elsewhere
        secrets |= secret_values(OmegaConf.to_container(config, resolve=True))
    except Exception:  # an unresolvable interpolation: the config check reports it
        pass
    run_dir = Path(hydra_cfg.runtime.output_dir)
    files = [
        *(run_dir / str(hydra_cfg.output_subdir or ".hydra")).glob("*.yaml"),
        Path(config.out_dir) / "multirun.yaml",
    ]
    for path in files:
        if path.is_file() and not path.is_symlink():
            text = path.read_text(encoding="utf-8")
            if (clean := redact(text, secrets)) != text:
                atomic_write_text(path, clean)


def record_unknown(out_dir: Path, unknown: list[str], known: list[str]) -> None:
    """Unknown variants of a sweep get a failed run.json, so the summary, report and exit status show them."""
    from bench.core.files import write_run
    from bench.core.records import FAILED, RunResult

    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    for name in unknown:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        reason = f"unknown server variant {name!r}; available: {', '.join(known)} (add conf/server/{name}.yaml)"
        write_run(out_dir / name, RunResult(variant=name, status=FAILED, reason=reason, finished_at=now))


def print_summary(out_dir: Path, baseline_variant: str, render: bool = True) -> None:
    """The one-screen summary of a finished sweep, and where its results and report are; `render` false writes
    the summary tables without drawing a chart (config `report`)."""
    from bench.analyze.sweep import load_sweep
    from bench.report.build import write_report
    from bench.report.console import format_summary, quality_note, startup_phases, time_split

    if render:
        report, sweep = write_report(out_dir, baseline_variant)
    else:
        report, sweep = None, load_sweep(out_dir, baseline_variant, write=True)
    folder = sweep.folder or out_dir
    lines = [format_summary(sweep.summary), quality_note(folder), time_split(sweep.summary), startup_phases(folder)]
    print("", *[line for line in lines if line], sep="\n")
    print(f"results: {out_dir}" + (f"\nreport:  {report}" if report else ""))


class SummaryCallback:
    """Hydra callback: the one-screen summary once a run or sweep ends. Its state is the job's config:
    `last_start` (the summary follows a sweep's last server start only)."""

    def _print(self, config: Any) -> None:
        out_dir = Path(config.out_dir)
        if out_dir.is_dir() and config.get("last_start", True):
            print_summary(out_dir, config.baseline_variant, bool(config.get("report", True)))

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        """Hydra has just saved the job's config files: nothing secret stays in them (see redact_hydra_files)."""
        redact_hydra_files(config)

    def on_run_end(self, config: Any, **kwargs: Any) -> None:
        self._print(config)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self._print(config)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):  # the other hooks Hydra calls do nothing here
            return lambda *a, **k: None
        raise AttributeError(name)
