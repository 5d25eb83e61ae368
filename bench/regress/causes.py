"""Every cause of a regression: a culprit per group of metrics that move together, until BAD without them is quiet."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bench.regress.bisect import (
    BUDGET_SPENT,
    CONFIRM,
    FOUND,
    NO_REGRESSION,
    NOTHING,
    SURE,
    Asked,
    Budget,
    BudgetSpent,
    Cache,
    Difference,
    Oracle,
    Probe,
    Search,
    Spent,
    minimal,
)


@dataclass(frozen=True)
class Culprit:
    """One cause: the smallest set of changes that regresses, and the target metrics its own probes regress on."""

    keys: tuple[str, ...]
    explains: tuple[str, ...]
    effect: Probe | None  # its first regressing probe: the figures it moves


@dataclass(frozen=True)
class Causes(Spent):
    """What a search for every cause found, and what it could not explain."""

    status: str  # FOUND (one culprit or more) | NO_REGRESSION | BUDGET_SPENT | NOTHING
    culprits: tuple[Culprit, ...]
    targets: tuple[str, ...]  # the metrics searched on: those compare found regressed from GOOD to BAD
    asked: tuple[Asked, ...]
    # BUDGET_SPENT: the smallest set established so far to regress on `searching`, in the search under way.
    open_set: tuple[str, ...] = ()
    searching: tuple[str, ...] = ()
    # Not FOUND by the last look, which saw BAD without the culprits regress yet no smaller set of its changes.
    unlocated: tuple[str, ...] = ()

    @property
    def unexplained(self) -> tuple[str, ...]:
        """Targets no culprit's probes regress on."""
        done = {m for c in self.culprits for m in c.explains}
        return tuple(m for m in self.targets if m not in done)

    @property
    def culprit(self) -> tuple[str, ...]:
        """Every culprit's changes (budget spent: with the set under search), as one search's answer."""
        return tuple(k for c in self.culprits for k in c.keys) + self.open_set


def regressed_on(metrics: Iterable[str]) -> Callable[[Probe], bool]:
    """A probe's verdict for a group of metrics; a variant that failed to run regresses on every one."""
    group = set(metrics)
    return lambda p: p.regressed and (not p.metrics or bool(group & set(p.metrics)))


def moved(probes: Sequence[Probe], targets: Sequence[str]) -> tuple[str, ...]:
    """The targets that regressed together in a subset's regressing observations: in at least half of them."""
    hits = [p for p in probes if p.regressed]
    counts = Counter(m for p in hits for m in p.metrics if m in targets)
    together = [m for m in targets if counts[m] and 2 * counts[m] >= len(hits)]
    return tuple(together or [m for m in targets if counts[m]] or targets)


def search_causes(
    changes: Sequence[str], oracle: Oracle, targets: Sequence[str], budget: Budget | None = None,
    cache: Cache | None = None, save: Callable[[Cache], None] | None = None,
) -> Causes:  # fmt: skip
    """Every culprit among `changes`. BAD's changes are probed; the target metrics that move together there are
    searched as one group (ddmin); the culprit comes off, and BAD without it is probed on the targets still
    unexplained, until none is left or it no longer regresses on them (made sure, as ddmin's no-regression is).
    Each probe is judged on every target once; a later round reads the same observations for its own group."""
    s = Search(oracle, {} if cache is None else cache, budget or Budget(), save)
    targets = tuple(targets)
    if not changes:
        return Causes(NOTHING, (), targets, ())
    pool, found, left = list(changes), list[Culprit](), targets
    group = left
    try:
        while pool and left:
            whole = frozenset(pool)
            s.judge, s.levels, group = regressed_on(left), {}, left
            if not (s.verdict(whole, CONFIRM) or s.verdict(whole, SURE)):
                break  # BAD's changes less the culprits: quiet on what is left
            group = moved(_observed(s, whole), left)
            s.judge, s.levels, s.best = regressed_on(group), {}, whole
            c = _located(s, pool, [k for f in found for k in f.keys])
            if c is None:  # regressed on what is left, yet no set of its changes surely on the group that moved
                status = FOUND if found else NO_REGRESSION
                return Causes(status, tuple(found), targets, tuple(s.asked), unlocated=group)
            mine = _observed(s, frozenset(c))
            explains = moved(mine, targets)
            found.append(Culprit(tuple(c), explains, next((p for p in mine if p.regressed), None)))
            # Were none of what is left among what its probes name, the group it was found on counts: progress.
            done = set(explains) & set(left) or set(group)
            left = tuple(m for m in left if m not in done)
            pool = [x for x in pool if x not in c]
    except BudgetSpent:
        rest = tuple(x for x in pool if x in s.best)
        return Causes(BUDGET_SPENT, tuple(found), targets, tuple(s.asked), rest, group)
    return Causes(FOUND if found else NO_REGRESSION, tuple(found), targets, tuple(s.asked))


def _located(s: Search, pool: list[str], culprits: list[str]) -> list[str] | None:
    """ddmin from the smallest set an earlier round saw regress on this group, less the culprits (with two causes,
    the half that held both names the second at once), else from the whole pool."""
    seeds = sorted(
        (seed for a in s.asked if s.judge(a.probe) and (seed := [x for x in pool if x in a.subset]) != pool and seed
         and any(x in a.subset for x in culprits)),
        key=len,
    )  # fmt: skip
    if seeds and s.fails(frozenset(seeds[0])):
        found = minimal(s, seeds[0])
        if found is not None:
            return found
    s.best = frozenset(pool)
    return minimal(s, pool)


def _observed(s: Search, subset: frozenset[str]) -> list[Probe]:
    return [a.probe for a in s.asked if a.subset == subset]


def _explains(c: Culprit) -> str:
    """`wall_clock_s +21.0%, ttft_s_p50 +37.2%`: each metric with the change its probe measured."""
    f = c.effect.changes_pct if c.effect else {}
    return ", ".join(f"{m} {f[m]:+.1f}%" if m in f else m for m in c.explains)


def format_causes(result: Causes, diffs: Sequence[Difference] = ()) -> str:
    """Each culprit with the metrics it explains and its effect, what is still unexplained, the probes' cost."""
    by_key = {d.key: d for d in diffs}
    name = lambda k: str(by_key.get(k, k))  # noqa: E731
    lines: list[str] = []
    if result.status == NOTHING:
        lines.append("nothing to bisect: no change bench can apply")
    elif not result.culprits and result.status == NO_REGRESSION:
        lines.append("no culprit: BAD's changes applied to GOOD do not regress (noise, or what could not be bisected)")
    for i, c in enumerate(result.culprits, 1):
        together = " (these regress only together)" if len(c.keys) > 1 else ""
        lines.append(f"culprit {i} of {len(result.culprits)}{together}: " + "; ".join(map(name, c.keys)))
        lines.append(f"  explains: {_explains(c)}")
        if c.effect is not None and c.effect.note:
            lines.append(f"  effect: {c.effect.note}")
    if result.status == BUDGET_SPENT:
        lines.append("budget spent before the search ended; searching " + ", ".join(result.searching) + " in:")
        lines += [f"  {name(k)}" for k in result.open_set]
    lines.append(_unexplained(result))
    cached = len(result.asked) - result.probes_run
    from_cache = f", {cached} answered from the cache" if cached else ""
    lines.append(f"probes: {result.probes_run} run, {result.cost_s:,.0f} s{from_cache}")
    not_applied = [d for d in diffs if not d.applicable]
    if not_applied:
        lines += ["could not be bisected:", *(f"  {d}: {d.why_not}" for d in not_applied)]
    return "\n".join(lines)


def _unexplained(result: Causes) -> str:
    """What is still unexplained, and why, in words."""
    left = result.unexplained
    if not left:
        return "unexplained: nothing (every metric that regressed from GOOD to BAD has its culprit)"
    listed = ", ".join(left)
    if result.status == BUDGET_SPENT:
        return f"unexplained: {listed} (the budget ended the search first)"
    if result.unlocated:
        return (
            f"unexplained: {listed}: BAD without the culprits still regressed on {', '.join(result.unlocated)}, "
            "but no smaller set of its changes did (changes that act only together, or noise: more --starts)"
        )
    return (
        f"unexplained: {listed}: no probe beside GOOD reproduced it (BAD's folder was measured apart from GOOD's, "
        "so the machine between the two runs, or a change bench cannot apply)"
    )
