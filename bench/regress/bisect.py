"""Which change made a run regress: what two runs differ in, and the searches over it (ddmin, bisection)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.core.records import RunResult
from bench.regress.differences import HASH, UNRECORDED, compact, field_changes, recorded

FOUND, NO_REGRESSION, BUDGET_SPENT, NOTHING = "found", "no regression", "budget spent", "nothing to apply"
CACHE_VERSION = 1
# Levels of a verdict (Search.verdict): 1 one observation, 2 best of 3, 3 best of 5. A verdict the search acts
# on is confirmed; an answer it names, sure. With probes that err 1 time in 20, a confirmed verdict errs about
# 1 time in 140 and a sure one 1 time in 1000 (tests/test_bisect.py measures what that gives a search).
CONFIRM, SURE = 2, 3
# Fields a probe applies to GOOD as overrides: the variant's server fields (server.python, its environment,
# included), the prefix-cache policy, the SLO, and the dataset and load settings a run records (swept keys).
APPLICABLE = ("server.", "repeats.", "slo.", "dataset.", "load.")
ENVIRONMENT = ("vllm_version", "torch_version", "python")  # of server.python's environment where it is set
WHY_NOT = {
    "engine": "another engine build (cpu or cuda): run GOOD and BAD on one engine",
    "gpus": "other GPUs: run GOOD and BAD on one machine",
    "driver": "another GPU driver: run GOOD and BAD on one machine",
    "cpu": "another CPU: run GOOD and BAD on one machine",
    "cpu_isa": "another CPU instruction set or kernel library: run GOOD and BAD on one machine",
    "cpu_count": "another number of CPUs: run GOOD and BAD on one machine",
    "git_commit": "bench's own code: run the probes from an older checkout to bisect it",
    HASH: UNRECORDED,
}


@dataclass(frozen=True)
class Difference:
    """One field BAD differs from GOOD in, and whether a probe can apply it to GOOD."""

    key: str  # dotted, as a Hydra override names it where applicable: server.extra_args
    good: Any
    bad: Any
    applicable: bool
    why_not: str = ""  # where not applicable: why, and what would make it so

    def __str__(self) -> str:
        return f"{self.key}: {compact(self.good)} -> {compact(self.bad)}"


def differences(good: RunResult | Mapping[str, Any], bad: RunResult | Mapping[str, Any]) -> list[Difference]:
    """What BAD differs from GOOD in (run.json dicts or read_run's records), in key order."""
    fields = recorded(good)
    changed = field_changes(fields, recorded(bad))
    if any(key == "server.python" for key, _, _ in changed):
        env = "comes with server.python, which is bisected"
    elif fields.get("server.python"):
        env = "server.python's environment changed in place: keep each install and give them as --envs PY1,PY2"
    else:
        env = "the environment bench runs in, not server.python: install each and give them as --envs PY1,PY2"
    return [Difference(k, g, b, not (why := _why_not(k, g, b, env)), why) for k, g, b in changed]


def _why_not(key: str, good: Any, bad: Any, env: str) -> str:
    """'' where a probe can apply the change; env: why a version of the server's environment cannot be."""
    if key == "server.name":
        return "the variant's name, a label: it changes nothing the server does"
    if key.startswith(APPLICABLE):
        secret = "<redacted>" in compact(good) + compact(bad)
        return "holds a secret, which run.json does not record: apply it by hand" if secret else ""
    return env if key in ENVIRONMENT else WHY_NOT.get(key, "not a setting bench can apply")


@dataclass(frozen=True)
class Probe:
    """One measurement of GOOD with some changes applied, judged against GOOD by compare's verdicts."""

    regressed: bool
    figures: dict[str, float] = field(default_factory=dict)  # the effect, e.g. change_pct, ci_lo_pct, ci_hi_pct
    cost_s: float = 0.0  # what the probe took, start-up included: what the time budget counts
    note: str = ""  # the verdict in words: `wall_clock_s +18% [+12%, +25%]`
    metrics: tuple[str, ...] = ()  # the judged metrics it regressed on (none while regressed: the variant failed)
    changes_pct: dict[str, float] = field(default_factory=dict)  # each judged metric's change, in %


# Subset -> its observations in the order made. Several only where the search asked again (see Search.verdict).
Cache = dict[frozenset[str], list[Probe]]
Oracle = Callable[[frozenset[str]], bool | Probe]


def cache_to_json(cache: Cache) -> dict[str, Any]:
    """The cache as JSON: each subset as its sorted keys, with its observations."""
    entries = sorted((sorted(k), [dataclasses.asdict(p) for p in v]) for k, v in cache.items() if v)
    return {"schema_version": CACHE_VERSION, "probes": [{"subset": k, "observations": v} for k, v in entries]}


def cache_from_json(data: Mapping[str, Any]) -> Cache:
    """cache_to_json's output read back; keys a newer bench added to a probe are ignored. A value of the wrong
    type is a TypeError (the caller's bad input), never a probe that would mislead or crash the search later."""
    names = {f.name for f in dataclasses.fields(Probe)}

    def probe(o: Mapping[str, Any]) -> Probe:
        kept = {k: v for k, v in o.items() if k in names}
        p = Probe(**kept | {"metrics": tuple(kept.get("metrics", ()))})
        numbers = [p.cost_s, *p.figures.values(), *p.changes_pct.values()]
        if not (
            isinstance(p.regressed, bool) and isinstance(p.note, str) and all(isinstance(m, str) for m in p.metrics)
            and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in numbers)
        ):  # fmt: skip
            raise TypeError(f"a probe of the wrong shape: {str(dict(o))[:200]}")
        return p

    probes = data.get("probes", [])
    if not isinstance(probes, list):
        raise TypeError("probes is not a list")
    return {frozenset(e["subset"]): [probe(o) for o in e["observations"]] for e in probes}


@dataclass(frozen=True)
class Budget:
    """Bounds on the new probes of one search; probes answered from the cache are free."""

    probes: int | None = None
    seconds: float | None = None  # summed cost_s of the new probes


@dataclass(frozen=True)
class Asked:
    subset: frozenset[str]
    probe: Probe
    cached: bool  # answered from the cache of an earlier, interrupted search


class Spent:
    """What a search spent: the probes it ran (cached answers cost nothing) and their time. Needs `asked`."""

    asked: tuple[Asked, ...]

    @property
    def probes_run(self) -> int:
        return sum(not a.cached for a in self.asked)

    @property
    def cost_s(self) -> float:
        return sum(a.probe.cost_s for a in self.asked if not a.cached)


@dataclass(frozen=True)
class SearchResult(Spent):
    status: str  # FOUND | NO_REGRESSION | BUDGET_SPENT | NOTHING
    # FOUND: the 1-minimal set of changes that regresses (ordered search: the first bad item); BUDGET_SPENT: the
    # smallest set established to regress so far.
    culprit: tuple[str, ...]
    asked: tuple[Asked, ...]  # every observation the search used, in order
    last_good: str | None = None  # ordered search: the item before the culprit, where the interval starts

    def effect(self) -> Probe | None:
        """The culprit's own regressing probe: what it does to the figures."""
        subset = frozenset(self.culprit)
        return next((a.probe for a in self.asked if a.subset == subset and a.probe.regressed), None)


class BudgetSpent(Exception):
    pass


@dataclass
class Search:
    """Observations through the cache, within the budget; the search functions ask it for verdicts."""

    oracle: Oracle
    cache: Cache
    budget: Budget
    save: Callable[[Cache], None] | None = None
    # What an observation says: regressed at all, or (bench/regress/causes.py) on the metrics searched for now.
    judge: Callable[[Probe], bool] = lambda p: p.regressed
    asked: list[Asked] = field(default_factory=list)
    used: set[tuple[frozenset[str], int]] = field(default_factory=set)
    run: int = 0
    spent_s: float = 0.0
    levels: dict[frozenset[str], int] = field(default_factory=dict)
    best: frozenset[str] = frozenset()

    def observe(self, subset: frozenset[str], i: int) -> bool:
        """The i-th observation of a subset: from the cache, else a new probe if the budget allows."""
        seen = self.cache.get(subset, [])
        cached = i < len(seen)
        if not cached:
            b = self.budget
            if (b.probes is not None and self.run >= b.probes) or (b.seconds is not None and self.spent_s >= b.seconds):
                raise BudgetSpent
            out = self.oracle(subset)
            seen = self.cache[subset] = [*seen, out if isinstance(out, Probe) else Probe(bool(out))]
            self.run, self.spent_s = self.run + 1, self.spent_s + seen[i].cost_s
            if self.save:
                self.save(self.cache)  # after every probe: an interrupted search loses none
        if (subset, i) not in self.used:
            self.used.add((subset, i))
            self.asked.append(Asked(subset, seen[i], cached))
        return self.judge(seen[i])

    def verdict(self, subset: frozenset[str], level: int) -> bool:
        """Regressed, by the majority of up to 2 x level - 1 observations (stopping once `level` agree). A subset
        once asked at a higher level keeps it, so a search that meets it again takes the surer verdict."""
        level = self.levels[subset] = max(level, self.levels.get(subset, 1))
        votes: list[bool] = []
        while max(votes.count(True), votes.count(False)) < level:
            votes.append(self.observe(subset, len(votes)))
        return votes.count(True) >= level

    def fails(self, subset: frozenset[str]) -> bool:
        """Regressed. One observation of a pass, but a regression confirmed (best of 3): a false alarm would lead
        the search away from the culprit, while a missed one costs probes (finer splits test the culprit again)."""
        failed = self.verdict(subset, 1) and self.verdict(subset, CONFIRM)
        if failed:
            self.best = subset  # ddmin only narrows: the set it now stands on, for a search the budget stops
        return failed

    def result(self, status: str, culprit: Sequence[str], last_good: str | None = None) -> SearchResult:
        return SearchResult(status, tuple(culprit), tuple(self.asked), last_good)


def _split(c: list[str], n: int) -> list[list[str]]:
    return [c[len(c) * i // n : len(c) * (i + 1) // n] for i in range(n)]


def _ddmin(s: Search, c: list[str]) -> list[str]:
    """Zeller's ddmin from a failing set c: 1-minimal by the first observation of every pass."""
    n = 2
    while len(c) >= 2:
        parts = _split(c, n)
        rests = [[x for x in c if x not in p] for p in parts] if n > 2 else []  # n = 2: the rests are the parts
        tried = parts + rests
        hit = next((i for i, sub in enumerate(tried) if s.fails(frozenset(sub))), None)
        if hit is not None:
            c, n = tried[hit], 2 if hit < len(parts) else max(n - 1, 2)
        elif n < len(c):
            n = min(len(c), 2 * n)
        else:
            break
    return c


def minimal(s: Search, changes: list[str]) -> list[str] | None:
    """ddmin, then its answer checked: the passes that make it 1-minimal confirmed (one that was an error sends
    the search on from the smaller set), its regression made sure (an error sends it back to the start, where
    the cache answers again for free). None: BAD's changes do not regress after all. The empty set is GOOD."""
    c = changes
    while True:
        c = _ddmin(s, c)
        smaller = next((r for x in c if (r := [y for y in c if y != x]) and s.verdict(frozenset(r), CONFIRM)), None)
        if smaller is not None:
            s.best, c = frozenset(smaller), smaller
        elif s.verdict(frozenset(c), SURE):
            return c
        elif c == changes:
            return None
        else:
            s.best, c = frozenset(changes), changes


def ddmin(
    changes: Sequence[str], oracle: Oracle, budget: Budget | None = None, cache: Cache | None = None,
    save: Callable[[Cache], None] | None = None,
) -> SearchResult:  # fmt: skip
    """The smallest set of `changes` that, applied to GOOD, regresses (oracle(subset) -> regressed). The cache is
    filled in place (save gets it after every probe); given an earlier search's cache, no probe is asked twice."""
    s = Search(oracle, {} if cache is None else cache, budget or Budget(), save)
    if not changes:
        return s.result(NOTHING, ())
    everything = frozenset(changes)
    try:
        # BAD's changes that do not regress GOOD leave nothing to search; said only once sure.
        if not (s.verdict(everything, CONFIRM) or s.verdict(everything, SURE)):
            return s.result(NO_REGRESSION, ())
        s.best = everything
        found = minimal(s, list(changes))
    except BudgetSpent:
        return s.result(BUDGET_SPENT, [x for x in changes if x in s.best])
    return s.result(NO_REGRESSION, ()) if found is None else s.result(FOUND, found)


def _bisect(s: Search, items: Sequence[str]) -> tuple[int, int]:
    """Binary search between items[0], GOOD, and the last item, which regresses: the last pass and first fail."""
    lo, hi = 0, len(items) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if s.verdict(frozenset([items[mid]]), CONFIRM):
            hi = mid
        else:
            lo = mid
        s.best = frozenset([items[lo], items[hi]])
    return lo, hi


def bisect_ordered(
    items: Sequence[str], oracle: Callable[[str], bool | Probe], budget: Budget | None = None,
    cache: Cache | None = None, save: Callable[[Cache], None] | None = None,
) -> SearchResult:  # fmt: skip
    """The first of `items` (environments in order, GOOD's first, BAD's last) that regresses, by binary search.
    Every verdict moves the search, so each is confirmed, and the two that name the answer made sure (an error
    sends the search again, the cache answering for free). items[0] is GOOD itself, taken as passing."""
    s = Search(lambda subset: oracle(next(iter(subset))), {} if cache is None else cache, budget or Budget(), save)
    if len(items) < 2:
        return s.result(NOTHING, ())
    last = frozenset([items[-1]])
    s.best = frozenset([items[0], items[-1]])
    try:
        while s.verdict(last, CONFIRM) or s.verdict(last, SURE):
            lo, hi = _bisect(s, items)
            if s.verdict(frozenset([items[hi]]), SURE) and (lo == 0 or not s.verdict(frozenset([items[lo]]), SURE)):
                return s.result(FOUND, [items[hi]], items[lo])
    except BudgetSpent:
        lo, hi = sorted(items.index(x) for x in s.best)
        return s.result(BUDGET_SPENT, [items[hi]], items[lo])
    return s.result(NO_REGRESSION, ())


def _headline(result: SearchResult, names: list[str]) -> list[str]:
    """What the search found, as lines; the first unindented."""
    if result.status == FOUND and result.last_good is not None:
        return [f"first bad: {names[0]} (last good: {result.last_good})"]
    if result.status == FOUND:
        return [f"culprit: {names[0]}"] if len(names) == 1 else ["culprits, which regress only together:", *names]
    if result.status == BUDGET_SPENT and result.last_good is not None:
        return ["budget spent before the search ended:", f"first bad between {result.last_good} and {names[0]}"]
    if result.status == BUDGET_SPENT:
        return ["budget spent before the search ended; the smallest set found to regress so far:", *names]
    if result.status == NO_REGRESSION:
        return ["no culprit: BAD's changes applied to GOOD do not regress (noise, or what could not be bisected)"]
    return ["nothing to bisect: no change bench can apply"]


def format_report(result: SearchResult, diffs: Sequence[Difference] = ()) -> str:
    """The culprit with its effect, the probes and their cost, and what could not be bisected."""
    by_key = {d.key: d for d in diffs}
    head = _headline(result, [str(by_key.get(k, k)) for k in result.culprit])
    lines = head[:1] + [f"  {x}" for x in head[1:]]
    effect = result.effect() if result.status in (FOUND, BUDGET_SPENT) else None
    if effect is not None:
        figures = ", ".join(f"{k} {v:+.4g}" for k, v in effect.figures.items())
        lines.append("effect: " + (effect.note or figures))
    cached = len(result.asked) - result.probes_run
    from_cache = f", {cached} answered from the cache" if cached else ""
    lines.append(f"probes: {result.probes_run} run, {result.cost_s:,.0f} s{from_cache}")
    not_applied = [d for d in diffs if not d.applicable]
    if not_applied:
        lines += ["could not be bisected:", *(f"  {d}: {d.why_not}" for d in not_applied)]
    return "\n".join(lines)
