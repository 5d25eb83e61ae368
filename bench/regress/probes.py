"""bisect's probes: GOOD's variant with some of BAD's changes applied, run for real beside GOOD, judged by compare."""

from __future__ import annotations

import dataclasses
import hashlib
import json
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
from bench.core.exits import BAD_INPUT, INTERRUPTED
from bench.core.files import atomic_write_text, make_dir, read_run
from bench.core.records import OK, RUN_FILE, RunResult
from bench.regress import sequential
from bench.regress.bisect import Cache, Difference, Probe, cache_from_json, cache_to_json, differences
from bench.regress.compare import REGRESSION, ThresholdsBase, Verdict, compare_results
from bench.regress.differences import ABSENT
from bench.regress.sides import Side, load_pair, load_results

GOOD = "bisect_good"  # GOOD's configuration as a variant of every probe
WORKLOAD = "bisect_workload"  # the sweep preset that replays GOOD's workload
# The parts of GOOD's RunSpec a probe replays as they were: what was asked of the server, and how. Not the server
# (the probe's variants are), not repeats (bisect's --starts and --passes set them).
WORKLOAD_PARTS = ("request", "dataset", "load", "slo")


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
        raise BenchError(
            f"{run_dir}: run.json records no RunSpec (a run too old for its settings to be rebuilt): re-run it"
        )
    if run.server.endpoint:
        raise BenchError(f"{run_dir}: measured an endpoint bench did not start; bisect changes servers it starts")
    return run


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


def workload_of(good: RunResult, where: Path) -> dict[str, Any]:
    """What GOOD replayed, and how, as a sweep preset's content: its RunSpec's workload (the one place bisect learns
    it; no Hydra file is read). Refused where run.json does not record it: a probe would replay something else."""
    spec = good.spec
    if spec is None:
        raise BenchError(f"{where}: run.json records no RunSpec, so what it replayed is unknown: re-run GOOD")
    missing = [p for p in WORKLOAD_PARTS if p in spec.unrecorded]
    if missing:
        raise BenchError(
            f"{where}: its run.json does not record the {', '.join(missing)} it replayed (a run stored before bench "
            "recorded them, without its Hydra files): re-run GOOD with this bench"
        )
    tree = spec.to_dict()
    return {"engine": spec.engine, **{p: tree[p] for p in WORKLOAD_PARTS}, "tracing": tree["tracing"]}


def subject(good: Path, bad: Path, variant: str | None) -> Subject:
    good_dir = variant_dir(good, variant)
    bad_dir = variant_dir(bad, variant or good_dir.name)
    g, b = _read(good_dir), _read(bad_dir)
    return Subject(good_dir, bad_dir, g, b, tuple(differences(g, b)), workload_of(g, good_dir))


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


# After each interleaved round (one start a side) of a probe: whether its answer is clear, given both sides so
# far, the rounds run and the cap (--starts). stop_rule picks bench/regress/sequential.py's rule, or a fixed number.
Stop = Callable[[Side, Side, int, int], bool]


def fixed_rounds(good: Side, probe: Side, rounds: int, cap: int) -> bool:
    """The fixed design: every probe runs its cap of rounds, whatever they show."""
    return rounds >= cap


def stop_rule(thresholds: ThresholdsBase, metrics: Sequence[str]) -> Stop:
    """The sequential rule's stop (bench/regress/sequential.py: regression or no regression once clear, on the
    timings among `metrics`); the fixed design where no timing is judged."""
    timings = [m for m in metrics if m in sequential.TIMINGS]
    if not timings:  # memory or answers only: judged on the finished probe, one more start adds nothing clearer
        return fixed_rounds

    def stop(good: Side, probe: Side, rounds: int, cap: int) -> bool:
        plan = sequential.Plan(max_rounds=cap)
        return rounds >= cap or sequential.decide_sides(good, probe, thresholds, plan, rounds, timings).stop

    return stop


@dataclass
class Prober:
    """Runs probes in `root`: GOOD and GOOD-with-changes, one interleaved round at a time until `stop` says the
    answer is clear (at most `starts` rounds), then judged on every metric BAD regressed on."""

    s: Subject
    root: Path
    starts: int
    passes: int
    thresholds: ThresholdsBase
    metrics: list[str]  # compare's metrics a probe judges: BAD's regressed ones
    changes_of: Callable[[frozenset[str]], list[Difference]]
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)
    stop: Stop = fixed_rounds

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

    def command(self, name: str, out_dir: Path, rounds: int | None = None) -> list[str]:
        """The probe's `bench run`; with `rounds`, up to that many starts (those done are resumed, not re-run)."""
        more = [] if rounds is None else [f"repeats.starts={rounds}"]
        # report=false: a probe is judged from its summary tables; nobody opens its charts (issue: no waste).
        return [sys.executable, "-m", "bench", "run", "--config-dir", str(self.conf), f"+sweep={WORKLOAD}",
                f"server={GOOD},{name}", "report=false", *more, f"out_dir={out_dir}"]  # fmt: skip

    def __call__(self, subset: frozenset[str], index: int) -> Probe:
        name = probe_name(subset)
        changes = self.changes_of(subset)
        self._write(self.conf / "server" / f"{name}.yaml", server_config(self.s, changes, name))
        out_dir = self.root / "probes" / f"{name}-{index}"
        what = "; ".join(str(d) for d in changes) or "(none)"
        self.log(f"bench: bisect: probe {out_dir.name}: {what}")
        t0 = time.monotonic()
        for rounds in range(1, self.starts + 1):
            self._round(self.command(name, out_dir, rounds), out_dir)
            good, probe = self._sides(out_dir, name)
            if probe is None or self.stop(good, probe, rounds, self.starts):
                break
        result = self.judge(out_dir, name, time.monotonic() - t0)
        if rounds < self.starts:
            result = dataclasses.replace(result, note=f"{result.note} (clear after {rounds} of {self.starts} rounds)")
        self.log(f"bench: bisect: probe {out_dir.name}: {'regressed' if result.regressed else 'passes'}: {result.note}")
        return result

    def _round(self, command: list[str], out_dir: Path) -> None:
        """One round's `bench run`; its exit status kept to the contract (bench/core/exits.py)."""
        code = run_child(command)
        if code in (INTERRUPTED, -signal.SIGINT, -signal.SIGTERM):  # stopped by the user, or a signal sent to it
            raise KeyboardInterrupt
        if code == BAD_INPUT:
            raise BenchError(f"probe {out_dir}: bench run refused its input: see its output above")
        if code not in (0, 1):  # a crash or a kill (the OOM killer): neither a verdict nor the user's bad input
            raise RuntimeError(f"probe {out_dir}: bench run exited {code}: see its output above")

    def _sides(self, out_dir: Path, name: str) -> tuple[Side, Side | None]:
        """GOOD's side, which must have run, and the probe's (None where it did not run ok: nothing to wait for)."""
        sides = load_results(out_dir)
        good, probe = sides.get(GOOD), sides.get(name)
        if good is None or good.status != OK:
            why = good.reason if good else "no run"
            raise BenchError(f"probe {out_dir}: GOOD's own configuration did not run ok ({why}): it says nothing")
        return good, probe if probe is not None and probe.status == OK else None

    def judge(self, out_dir: Path, name: str, cost_s: float) -> Probe:
        good, probe = self._sides(out_dir, name)
        if probe is None:
            # The changes stop the variant (a server that will not start, every request failing): BAD ran, so
            # this subset alone is worse than BAD, which counts as regressed; the note says how.
            side = load_results(out_dir).get(name)
            return Probe(True, {}, cost_s, f"failed: {side.reason if side else 'no run'}")
        verdicts = compare_results({"v": good}, {"v": probe}, self.thresholds, self.metrics)
        bad = tuple(v.metric for v in verdicts if v.verdict == REGRESSION)
        pct = {v.metric: v.change_pct for v in verdicts if v.change_pct is not None}
        return Probe(bool(bad), figures(headline(verdicts)), cost_s, note(verdicts), bad, pct)


STOP_WAIT_S = 120.0  # for a probe's bench run to stop its server after an interrupt (a start-up ends first)


def run_child(command: list[str]) -> int:
    """A probe's `bench run`, its exit status. In a session of its own, so that one interrupt reaches it once: on
    Ctrl-C or SIGTERM to bisect it gets one SIGTERM (bench run's Ctrl-C) and the time to stop its server, rather
    than the SIGKILL subprocess.run sends, which left that server running."""
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise


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
