"""`bench bisect GOOD BAD`: which of BAD's changes makes GOOD regress, searched with real probes, and its report."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.core.errors import BenchError
from bench.core.files import atomic_write_text, make_dir
from bench.core.folder import locked
from bench.regress.bisect import (
    BUDGET_SPENT,
    FOUND,
    Budget,
    Cache,
    Difference,
    Probe,
    SearchResult,
    bisect_ordered,
    format_report,
)
from bench.regress.causes import Causes, format_causes, search_causes
from bench.regress.compare import ThresholdsBase
from bench.regress.probes import (
    Prober,
    Subject,
    describe,
    fingerprint,
    load_cache,
    probe_name,
    save_cache,
    stop_rule,
    subject,
    targets,
)

CACHE_FILE, REPORT_FILE = "cache.json", "report.md"


@dataclass(frozen=True)
class Options:
    variant: str | None = None
    out: Path | None = None  # default: results/bisect/<GOOD>-<BAD>-<variant>
    starts: int = 3
    passes: int = 2
    budget: Budget = Budget()
    metrics: Sequence[str] | None = None  # default: those compare finds regressed from GOOD to BAD
    envs: Sequence[str] = ()  # an ordered list of server interpreters, GOOD's first


def _out_dir(s: Subject, o: Options, good: Path, bad: Path) -> Path:
    """Where the probes go: never inside GOOD or BAD, whose folders are the user's records."""
    sweep = lambda d: d.parent.name if d.parent.name else d.name  # noqa: E731
    out = o.out or Path("results") / "bisect" / f"{sweep(s.good_dir)}-{sweep(s.bad_dir)}-{s.good_dir.name}"
    where = out.resolve()
    for label, given in (("GOOD", good), ("BAD", bad)):
        if where.is_relative_to(given.resolve()):
            raise BenchError(f"--out {out} lies inside {label} ({given}): give a folder of its own")
    return out


def _env_changes(s: Subject, envs: Sequence[str]) -> dict[str, list[Difference]]:
    good = s.good.spec.server.python if s.good.spec is not None else None
    return {e: [Difference("server.python", good, e, True)] for e in envs}


def bisect(good: Path, bad: Path, o: Options, thresholds: ThresholdsBase) -> tuple[SearchResult | Causes | None, str]:
    """The search and its report text. None: nothing was searched (no regression between GOOD and BAD)."""
    s = subject(good, bad, o.variant)
    out = _out_dir(s, o, good, bad)  # refused before anything is probed or printed
    print(f"GOOD {s.good_dir}\nBAD  {s.bad_dir}\ndiffers in:")
    for d in s.diffs or ["nothing"]:
        print(f"  {d}" + ("" if not isinstance(d, Difference) or d.applicable else f"   (not applied: {d.why_not})"))
    regressed = targets(s, thresholds, o.metrics)
    if regressed:
        print("BAD regressed: " + "; ".join(describe(v) for v in regressed))
    elif o.metrics:  # asked for: the search's own first probes, beside GOOD, say whether BAD's changes regress
        print(f"BAD's folder shows no regression in {', '.join(o.metrics)}; the probes will tell")
    else:
        return None, "no regression from GOOD to BAD in any metric (name one with --metric to search anyway)"
    metrics = sorted(o.metrics or {v.metric for v in regressed})
    make_dir(out)
    with locked(out):  # one search per folder: a second would run the same probes into the same folders
        by_key = {d.key: d for d in s.applicable}
        envs = _env_changes(s, o.envs)
        if o.envs:
            changes_of = lambda sub: [c for e in sub for c in envs[e]]  # noqa: E731
        else:
            changes_of = lambda sub: [by_key[k] for k in sorted(sub)]  # noqa: E731
        prober = Prober(
            s, out, o.starts, o.passes, thresholds, metrics, changes_of, stop=stop_rule(thresholds, metrics)
        )
        prober.prepare()
        key = fingerprint(s, o.starts, o.passes, metrics, o.envs)
        cache = load_cache(out / CACHE_FILE, key)
        save = lambda c: save_cache(out / CACHE_FILE, key, c)  # noqa: E731
        result: SearchResult | Causes
        if o.envs:
            env_oracle = lambda e: prober(frozenset([e]), len(cache.get(frozenset([e]), [])))  # noqa: E731
            result = bisect_ordered(list(o.envs), env_oracle, o.budget, cache, save)
            text = format_report(result, s.diffs)
        else:
            oracle = lambda sub: prober(sub, len(cache.get(sub, [])))  # noqa: E731
            result = search_causes(list(by_key), oracle, metrics, o.budget, cache, save)
            text = format_causes(result, s.diffs)
        atomic_write_text(out / REPORT_FILE, markdown(s, result, text, prober, cache))
    return result, f"{text}\nreport: {out / REPORT_FILE}"


def markdown(s: Subject, result: SearchResult | Causes, text: str, prober: Prober, cache: Cache) -> str:
    """report.md: the verdict, then every probe with its folder, so each can be opened and re-run."""
    head = "| probe | changes applied | observation | verdict | cost | folder |\n|---|---|---|---|---|---|"
    lines = [f"# bisect: {s.good_dir} -> {s.bad_dir}", "", "```", text, "```", "", head]
    seen: dict[frozenset[str], int] = {}
    for a in result.asked:
        i = seen[a.subset] = seen.get(a.subset, -1) + 1
        name = probe_name(a.subset)
        changes = "; ".join(str(d) for d in prober.changes_of(a.subset)).replace("|", "\\|")
        on = f": {', '.join(a.probe.metrics)}" if a.probe.metrics else ""
        verdict = ("regressed" + on if a.probe.regressed else "passes") + (" (cached)" if a.cached else "")
        note = a.probe.note.replace("|", "\\|")
        lines.append(f"| {name} | {changes} | {note} | {verdict} | {a.probe.cost_s:.0f} s | probes/{name}-{i} |")
    command = ["python", *prober.command("NAME", prober.root / "probes" / "NAME-I")[1:]]
    lines += ["", f"Each probe: `{shlex.join(command)}`", ""]
    return "\n".join(lines)


def exit_status(result: SearchResult | Causes | None) -> int:
    """1: a regression reproduced and (at least partly) located; 0: none to bisect."""
    return int(result is not None and result.status in (FOUND, BUDGET_SPENT))


__all__ = ["Options", "Probe", "bisect", "exit_status"]
