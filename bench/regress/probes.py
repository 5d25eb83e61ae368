"""bisect's probes: GOOD's variant with some of BAD's changes applied, run for real beside GOOD, judged by compare."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.core.errors import BenchError
from bench.core.files import atomic_write_text, make_dir, read_run
from bench.core.records import OK, RUN_FILE, RunResult
from bench.regress.bisect import Cache, Difference, Probe, cache_from_json, cache_to_json, differences
from bench.regress.compare import REGRESSION, ThresholdsBase, Verdict, compare_results
from bench.regress.differences import ABSENT
from bench.regress.sides import load_pair, load_results

GOOD = "bisect_good"  # GOOD's configuration as a variant of every probe
WORKLOAD = "bisect_workload"  # the sweep preset that replays GOOD's workload
# The parts of GOOD's composed config a probe replays as they were: what was asked of the server, and how.
# Not the server (the probe's variants are), not where results go, not repeats (the bisect budget sets it).
WORKLOAD_KEYS = ("model", "engine", "engines", "dataset", "load", "request", "slo", "telemetry_interval_s")
# The probe's `bench run` speaks bench/cli/exits.py's contract (regress sits below cli, so not imported from it).
BAD_INPUT, INTERRUPTED = 2, 130


@dataclass(frozen=True)
class Subject:
    """What one bisect works on: GOOD's and BAD's runs of a variant, what differs, and what regressed."""

    good_dir: Path  # GOOD's variant folder (holds run.json)
    bad_dir: Path
    good: RunResult
    bad: RunResult
    diffs: tuple[Difference, ...]
    workload: dict[str, Any]

    @property
    def applicable(self) -> list[Difference]:
        return [d for d in self.diffs if d.applicable]


def variant_dir(path: Path, variant: str | None) -> Path:
    """A variant's folder: PATH itself when it holds run.json, else PATH/VARIANT (the only one, when unnamed)."""
    if (path / RUN_FILE).is_file():
        return path
    if not path.is_dir():
        raise BenchError(f"no results folder at {path}")
    names = sorted(d.name for d in path.iterdir() if (d / RUN_FILE).is_file())
    if variant is None and len(names) == 1:
        variant = names[0]
    if variant is None or variant not in names:
        which = f"no variant {variant!r} in {path}" if variant else f"{path} holds several variants"
        raise BenchError(f"{which}: give --variant, one of {', '.join(names) or '(none)'}")
    return path / variant


def _read(run_dir: Path) -> RunResult:
    run = read_run(run_dir)
    if run is None:
        raise BenchError(f"{run_dir / RUN_FILE}: unreadable")
    if run.status != OK:
        raise BenchError(f"{run_dir}: the variant is {run.status}, not ok: nothing to bisect against")
    if run.spec is None:
        raise BenchError(f"{run_dir}: run.json records no server config (a run of bench before 2026-11): re-run it")
    if run.server.endpoint:
        raise BenchError(f"{run_dir}: measured an endpoint bench did not start; bisect changes servers it starts")
    return run


def composed_config(run_dir: Path) -> dict[str, Any]:
    """GOOD's composed config as Hydra saved it: the run's .hydra/config.yaml, else its sweep's multirun.yaml."""
    for path in (run_dir / ".hydra" / "config.yaml", run_dir.parent / "multirun.yaml"):
        if path.is_file():
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError) as e:
                raise BenchError(f"{path}: not a readable config ({str(e).splitlines()[0]})") from None
            if isinstance(data, dict):
                return data
    raise BenchError(f"{run_dir}: neither .hydra/config.yaml nor ../multirun.yaml: the workload it replayed is unknown")


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """tree[a][b][c] = value for key `a.b.c`, made where missing; ABSENT deletes the key."""
    *parents, leaf = key.split(".")
    for p in parents:
        if not isinstance(tree.get(p), dict):
            tree[p] = {}
        tree = tree[p]
    if value is ABSENT:
        tree.pop(leaf, None)
    else:
        tree[leaf] = value


def workload(good_dir: Path, good: RunResult) -> dict[str, Any]:
    """What GOOD replayed, and how: its composed config's workload parts, with a multirun's swept values."""
    config = composed_config(good_dir)
    out = {k: config[k] for k in WORKLOAD_KEYS if k in config}
    for key, value in (good.params or {}).items():
        if not key.startswith("server."):
            set_dotted(out, key, value)
    return out


def subject(good: Path, bad: Path, variant: str | None) -> Subject:
    good_dir = variant_dir(good, variant)
    bad_dir = variant_dir(bad, variant or good_dir.name)
    g, b = _read(good_dir), _read(bad_dir)
    return Subject(good_dir, bad_dir, g, b, tuple(differences(g, b)), workload(good_dir, g))


def targets(s: Subject, thresholds: ThresholdsBase, metrics: Sequence[str] | None) -> list[Verdict]:
    """compare's verdicts of BAD against GOOD for the variant: the metrics whose regression the probes look for."""
    base, cur = load_pair(s.good_dir, s.bad_dir)
    return [v for v in compare_results(base, cur, thresholds, metrics) if v.verdict == REGRESSION]


def server_config(s: Subject, changes: Iterable[Difference], name: str) -> dict[str, Any]:
    """GOOD's resolved server fields with the changes applied: a variant file's content."""
    server = s.good.spec.to_dict()["server"] if s.good.spec is not None else {}
    for d in changes:
        if d.key.startswith("server."):
            set_dotted(server, d.key.removeprefix("server."), d.bad)
    server |= {"name": name, "port": 0}
    kept = {k: v for k, v in server.items() if v is not None}
    return {"defaults": ["server_schema", "_self_"], **kept}


def probe_name(keys: Iterable[str]) -> str:
    """A variant (and folder) name for a subset: stable across runs, so an interrupted search finds its probes."""
    return "probe_" + hashlib.sha1("\n".join(sorted(keys)).encode()).hexdigest()[:8]


@dataclass
class Prober:
    """Runs probes in `root`: one `bench run` each of GOOD and GOOD-with-changes, interleaved start by start."""

    s: Subject
    root: Path
    starts: int
    passes: int
    thresholds: ThresholdsBase
    metrics: list[str]  # compare's metrics a probe judges: BAD's regressed ones
    changes_of: Callable[[frozenset[str]], list[Difference]]
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    def prepare(self) -> None:
        preset = {
            **self.s.workload,
            "sweep_name": "bisect",
            "baseline_variant": GOOD,
            "repeats": {"starts": self.starts, "passes": self.passes,
                        "prefix_cache": self.s.good.spec.repeats.prefix_cache if self.s.good.spec else "reset"},
            "hydra": {"mode": "MULTIRUN"},
        }  # fmt: skip
        self._write(self.conf / "sweep" / f"{WORKLOAD}.yaml", preset, "# @package _global_\n")
        self._write(self.conf / "server" / f"{GOOD}.yaml", server_config(self.s, [], GOOD))

    def _write(self, path: Path, data: dict[str, Any], head: str = "") -> None:
        make_dir(path.parent)
        atomic_write_text(path, head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    def command(self, name: str, out_dir: Path) -> list[str]:
        return [sys.executable, "-m", "bench", "run", "--config-dir", str(self.conf), f"+sweep={WORKLOAD}",
                f"server={GOOD},{name}", f"out_dir={out_dir}"]  # fmt: skip

    def __call__(self, subset: frozenset[str], index: int) -> Probe:
        name = probe_name(subset)
        changes = self.changes_of(subset)
        self._write(self.conf / "server" / f"{name}.yaml", server_config(self.s, changes, name))
        out_dir = self.root / "probes" / f"{name}-{index}"
        what = "; ".join(str(d) for d in changes) or "(none)"
        self.log(f"bench: bisect: probe {out_dir.name}: {what}")
        t0 = time.monotonic()
        code = run_child(self.command(name, out_dir))
        cost = time.monotonic() - t0
        if code in (INTERRUPTED, -signal.SIGINT, -signal.SIGTERM):  # stopped by the user: Ctrl-C reaches it too
            raise KeyboardInterrupt
        if code == BAD_INPUT:
            raise BenchError(f"probe {out_dir}: bench run refused its input: see its output above")
        if code not in (0, 1):  # a crash or a kill (the OOM killer): neither a verdict nor the user's bad input
            raise RuntimeError(f"probe {out_dir}: bench run exited {code}: see its output above")
        probe = self.judge(out_dir, name, cost)
        self.log(f"bench: bisect: probe {out_dir.name}: {'regressed' if probe.regressed else 'passes'}: {probe.note}")
        return probe

    def judge(self, out_dir: Path, name: str, cost_s: float) -> Probe:
        sides = load_results(out_dir)
        good, probe = sides.get(GOOD), sides.get(name)
        if good is None or good.status != OK:
            why = good.reason if good else "no run"
            raise BenchError(f"probe {out_dir}: GOOD's own configuration did not run ok ({why}): it says nothing")
        if probe is None or probe.status != OK:
            # The changes stop the variant (a server that will not start, every request failing): BAD ran, so
            # this subset alone is worse than BAD, which counts as regressed; the note says how.
            return Probe(True, {}, cost_s, f"failed: {probe.reason if probe else 'no run'}")
        verdicts = compare_results({"v": good}, {"v": probe}, self.thresholds, self.metrics)
        regressed = any(v.verdict == REGRESSION for v in verdicts)
        return Probe(regressed, figures(headline(verdicts)), cost_s, note(verdicts))


def headline(verdicts: Sequence[Verdict]) -> Verdict | None:
    """The verdict that speaks for a probe: the wall clock's where it regressed (what the user waits for), else
    the first regression, else the wall clock's or the first."""
    bad = [v for v in verdicts if v.verdict == REGRESSION] or list(verdicts)
    return next((v for v in bad if v.metric == "wall_clock_s"), bad[0] if bad else None)


def note(verdicts: Sequence[Verdict]) -> str:
    """`wall_clock_s +18.2% [+12.0%, +25.1%] regression (and 3 more regressions)`."""
    top = headline(verdicts)
    if top is None:
        return "no figures"
    more = sum(v.verdict == REGRESSION for v in verdicts) - (top.verdict == REGRESSION)
    return describe(top) + (f" (and {more} more regression{'s' * (more > 1)})" if more else "")


def figures(v: Verdict | None) -> dict[str, float]:
    if v is None or v.change_pct is None:
        return {}
    out = {"change_pct": v.change_pct}
    if v.ci is not None and v.baseline:
        out |= {"ci_lo_pct": 100 * v.ci[0] / v.baseline, "ci_hi_pct": 100 * v.ci[1] / v.baseline}
    return out


def describe(v: Verdict) -> str:
    """`wall_clock_s +18.2% [+12.0%, +25.1%] regression`."""
    f = figures(v)
    if not f:
        return f"{v.metric} {v.verdict}"
    ci = f" [{f['ci_lo_pct']:+.1f}%, {f['ci_hi_pct']:+.1f}%]" if "ci_lo_pct" in f else ""
    return f"{v.metric} {f['change_pct']:+.1f}%{ci} {v.verdict}"


def run_child(cmd: list[str], grace_s: float = 120.0) -> int:
    """A probe's `bench run`, in its own process group, and stopped with bisect: a SIGTERMed (or Ctrl-C'd) bisect
    left its probe running as an orphan. The child gets SIGTERM (its own clean path: servers stopped), then,
    after `grace_s`, SIGKILL."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        return proc.wait()
    except BaseException:
        _stop_group(proc, grace_s)
        raise


def _stop_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 30.0)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait_s)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def load_cache(path: Path, fingerprint: Mapping[str, Any]) -> Cache:
    """An earlier search's probes, when it searched the same thing; another search's cache is bad input."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("subject") != fingerprint:
            raise BenchError(f"{path} holds another search's probes: give another --out, or remove that folder")
        return cache_from_json(data)
    except (ValueError, AttributeError, KeyError, TypeError, IndexError, RecursionError) as e:
        raise BenchError(f"{path}: corrupt probe cache ({e}): give another --out, or remove it") from None


def save_cache(path: Path, fingerprint: Mapping[str, Any], cache: Cache) -> None:
    atomic_write_text(path, json.dumps({"subject": dict(fingerprint), **cache_to_json(cache)}, indent=1) + "\n")


def fingerprint(s: Subject, starts: int, passes: int, metrics: Sequence[str], envs: Sequence[str]) -> dict[str, Any]:
    """What makes two searches the same one: a cache is reused only for it."""
    return {
        # As given, not resolved: a checkout moved elsewhere and run with the same command still finds its cache.
        "good": str(s.good_dir), "bad": str(s.bad_dir), "starts": starts, "passes": passes,
        "metrics": sorted(metrics), "envs": list(envs),
        "changes": [dataclasses.asdict(d) | {"good": repr(d.good), "bad": repr(d.bad)} for d in s.applicable],
    }  # fmt: skip
