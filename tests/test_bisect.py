"""bench.regress.bisect: the differences between two runs, and its searches on synthetic oracles."""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.core.files import read_run
from bench.regress.bisect import (
    BUDGET_SPENT,
    FOUND,
    NO_REGRESSION,
    NOTHING,
    Budget,
    Cache,
    Probe,
    bisect_ordered,
    cache_from_json,
    cache_to_json,
    ddmin,
    differences,
    format_report,
)
from bench.regress.causes import format_causes, search_causes

NIGHTS = Path(__file__).resolve().parents[1] / "results" / "reference" / "history" / "nights"
CHANGES = [f"c{i}" for i in range(6)]
ENVS = [f"py{i}" for i in range(7)]  # py0 is GOOD's environment, py6 BAD's


def culprits(*keys: str, calls: list[frozenset[str]] | None = None) -> Callable[[frozenset[str]], bool]:
    """Regressed when every one of `keys` is applied (two or more: they regress only together)."""

    def oracle(subset: frozenset[str]) -> bool:
        if calls is not None:
            calls.append(subset)
        return set(keys) <= subset

    return oracle


def noisy(oracle: Callable[[Any], bool], seed: int, error: float = 1 / 20) -> Callable[[Any], bool]:
    """The oracle's verdict, wrong `error` of the time (seeded): a probe is a real measurement."""
    rng = random.Random(seed)
    return lambda subset: oracle(subset) != (rng.random() < error)


# --- ddmin ------------------------------------------------------------------------------------


@pytest.mark.parametrize("culprit", CHANGES)
def test_one_culprit_is_named_wherever_it_is(culprit: str) -> None:
    calls: list[frozenset[str]] = []
    result = ddmin(CHANGES, culprits(culprit, calls=calls))
    assert (result.status, result.culprit) == (FOUND, (culprit,))
    # A subset is asked again only on purpose: a regression confirmed (2), the answer made sure (3).
    assert result.probes_run == len(calls) and max(Counter(calls).values()) <= 3
    assert all(c == frozenset(CHANGES) or len(c) <= 3 for c in calls)  # halves and smaller, as ddmin splits


def test_two_culprits_that_regress_only_together_are_named_together() -> None:
    changes = [f"c{i}" for i in range(8)]
    result = ddmin(changes, culprits("c1", "c6"))
    assert (result.status, result.culprit) == (FOUND, ("c1", "c6"))
    assert result.probes_run == 25  # measured; what this costs without noise


def test_no_culprit_when_bad_s_changes_do_not_regress() -> None:
    calls: list[frozenset[str]] = []
    result = ddmin(CHANGES, culprits("not among the changes", calls=calls))
    assert (result.status, result.culprit) == (NO_REGRESSION, ())
    assert set(calls) == {frozenset(CHANGES)} and len(calls) == 3  # best of 5, no search


def test_nothing_to_search_asks_nothing() -> None:
    result = ddmin([], culprits("c0"))
    assert (result.status, result.probes_run) == (NOTHING, 0)


def test_a_noisy_oracle_still_names_the_culprit() -> None:
    """Probes that err 1 time in 20, over 200 seeds: measured 99.5% right (98.8% over 1000 seeds) with the culprit
    4th of 6 changes, 8.8 probes on average (8 without noise), at most 22. With one observation a verdict it
    was 86% (1000 seeds, 4.2 probes): a false alarm leads ddmin away from the culprit for good; with regressions
    confirmed but the answer not made sure, 97.6%."""
    results = [ddmin(CHANGES, noisy(culprits("c3"), seed)) for seed in range(200)]
    right = sum(r.culprit == ("c3",) for r in results) / len(results)
    probes = [r.probes_run for r in results]
    assert right >= 0.95
    assert statistics.mean(probes) < 11 and max(probes) <= 40


def test_a_noisy_oracle_still_names_two_interacting_culprits() -> None:
    """Measured 98.5% right over 200 seeds, 27.4 probes on average (25 without noise), at most 41."""
    changes = [f"c{i}" for i in range(8)]
    results = [ddmin(changes, noisy(culprits("c1", "c6"), seed)) for seed in range(200)]
    assert sum(r.culprit == ("c1", "c6") for r in results) / len(results) >= 0.93
    assert max(r.probes_run for r in results) <= 70


def test_the_probe_budget_stops_the_search_with_the_smallest_failing_set_so_far() -> None:
    result = ddmin(CHANGES, culprits("c4"), Budget(probes=5))
    assert result.status == BUDGET_SPENT and result.probes_run == 5
    assert result.culprit == ("c3", "c4", "c5")  # all 6 confirmed (2), one half passed (1), the other confirmed (2)
    assert ddmin(CHANGES, culprits("c4"), Budget(probes=4)).culprit == tuple(CHANGES)  # that half not yet confirmed


def test_the_time_budget_counts_the_probes_cost() -> None:
    def slow(subset: frozenset[str]) -> Probe:
        return Probe("c4" in subset, cost_s=100.0)

    result = ddmin(CHANGES, slow, Budget(seconds=250))
    assert result.status == BUDGET_SPENT and (result.probes_run, result.cost_s) == (3, 300.0)


# --- cache and resume -------------------------------------------------------------------------


def test_the_cache_survives_json() -> None:
    cache: Cache = {}
    ddmin(CHANGES, lambda s: Probe("c2" in s, {"change_pct": 18.0}, 60.0, "wall_clock_s +18%"), cache=cache)
    text = json.dumps(cache_to_json(cache))
    assert cache_from_json(json.loads(text)) == cache
    assert json.loads(text)["probes"][0]["subset"] == sorted(json.loads(text)["probes"][0]["subset"])


def test_a_search_resumed_from_its_saved_cache_asks_no_probe_twice() -> None:
    whole: list[frozenset[str]] = []
    expected = ddmin(CHANGES, culprits("c1", "c4", calls=whole))
    calls: list[frozenset[str]] = []
    oracle = culprits("c1", "c4", calls=calls)
    saved = {"text": ""}

    def save(cache: Cache) -> None:
        saved["text"] = json.dumps(cache_to_json(cache))  # as the CLI would write it, after every probe

    def interrupted(subset: frozenset[str]) -> bool:
        if len(calls) == 7:
            raise KeyboardInterrupt  # Ctrl-C during the 8th probe
        return oracle(subset)

    with pytest.raises(KeyboardInterrupt):
        ddmin(CHANGES, interrupted, save=save)
    stopped = ddmin(CHANGES, oracle, Budget(probes=5), cache_from_json(json.loads(saved["text"])), save)
    resumed = ddmin(CHANGES, oracle, cache=cache_from_json(json.loads(saved["text"])), save=save)
    assert (stopped.status, resumed.status, resumed.culprit) == (BUDGET_SPENT, FOUND, expected.culprit)
    assert Counter(calls) == Counter(whole)  # every probe once over the three sessions, as in one
    again = ddmin(CHANGES, oracle, cache=cache_from_json(json.loads(saved["text"])))
    assert (again.culprit, again.probes_run, len(calls)) == (("c1", "c4"), 0, len(whole))
    assert f"probes: 0 run, 0 s, {len(again.asked)} answered from the cache" in format_report(again)


# --- ordered bisection ------------------------------------------------------------------------


def first_bad(index: int, calls: list[str] | None = None) -> Callable[[str], bool]:
    def oracle(env: str) -> bool:
        if calls is not None:
            calls.append(env)
        return ENVS.index(env) >= index

    return oracle


@pytest.mark.parametrize("index", range(1, len(ENVS)))
def test_ordered_bisection_finds_the_first_bad_environment(index: int) -> None:
    calls: list[str] = []
    result = bisect_ordered(ENVS, first_bad(index, calls))
    assert (result.status, result.culprit, result.last_good) == (FOUND, (ENVS[index],), ENVS[index - 1])
    assert ENVS[0] not in calls  # GOOD's own environment is the reference, never probed
    assert len(set(calls)) <= 4 and result.probes_run <= 10  # log2(6) midpoints, each confirmed


def test_ordered_bisection_without_a_regression() -> None:
    result = bisect_ordered(ENVS, first_bad(len(ENVS)))
    assert (result.status, result.culprit, result.probes_run) == (NO_REGRESSION, (), 3)


def test_ordered_bisection_under_its_budget() -> None:
    result = bisect_ordered(ENVS, first_bad(5), Budget(probes=4))
    assert (result.status, result.culprit, result.last_good) == (BUDGET_SPENT, ("py6",), "py3")
    assert format_report(result).splitlines()[:2] == [
        "budget spent before the search ended:",
        "  first bad between py3 and py6",
    ]


def test_ordered_bisection_with_a_noisy_oracle() -> None:
    """Measured 100% right over 200 seeds (first bad py3 of py0..py15), 12.7 probes on average, at most 23."""
    envs = [f"py{i}" for i in range(16)]
    results = [bisect_ordered(envs, noisy(lambda e: int(e[2:]) >= 3, seed)) for seed in range(200)]
    assert sum(r.culprit == ("py3",) for r in results) / len(results) >= 0.97
    assert max(r.probes_run for r in results) <= 30


# --- differences and the report ---------------------------------------------------------------


def test_differences_of_two_committed_nights() -> None:
    """night-07 to night-08 turned speculation off; everything else the same machine and bench."""
    good, bad = read_run(NIGHTS / "night-07" / "spec_ngram"), read_run(NIGHTS / "night-08" / "spec_ngram")
    assert good is not None and bad is not None
    diffs = differences(good, bad)
    assert [(str(d), d.applicable) for d in diffs] == [
        (
            "server.speculative_config: {method: ngram, num_speculative_tokens: 5, prompt_lookup_max: 4,"
            " prompt_lookup_min: 2} -> None",
            True,
        )
    ]
    raw = [json.loads((NIGHTS / n / "spec_ngram" / "run.json").read_text()) for n in ("night-07", "night-08")]
    assert differences(*raw) == diffs  # run.json's dicts as well as read_run's records


def run(python: str | None, vllm: str, **provenance: object) -> dict[str, object]:
    config = {"name": "single", "model": "/m", "extra_args": [], "python": python}
    return {
        "config_hash": f"{python}-{vllm}",
        "server": {"config": config},
        "provenance": {"engine": "cuda", "vllm_version": vllm, "gpus": [], **provenance},
    }


def test_a_vllm_that_comes_with_server_python_is_bisected_with_it() -> None:
    by_key = {d.key: d for d in differences(run("/old/bin/python", "0.10"), run("/new/bin/python", "0.11"))}
    assert by_key["server.python"].applicable and not by_key["vllm_version"].applicable
    assert by_key["vllm_version"].why_not == "comes with server.python, which is bisected"
    assert "config_hash" not in by_key  # server.python explains it


def test_what_cannot_be_applied_says_why() -> None:
    good = run(None, "0.10", git_commit="aaa", gpus=[{"name": "H100", "driver": "550"}])
    bad = run(None, "0.11", git_commit="bbb", gpus=[{"name": "H100", "driver": "560"}])
    by_key = {d.key: d for d in differences(good, bad)}
    assert sorted(by_key) == ["config_hash", "driver", "git_commit", "vllm_version"]
    assert not any(d.applicable for d in by_key.values())
    assert by_key["vllm_version"].why_not.startswith("the environment bench runs in, not server.python")
    assert by_key["git_commit"].why_not.startswith("bench's own code")


def test_the_report_names_the_culprit_its_effect_and_what_could_not_be_bisected() -> None:
    good = run(None, "0.10", gpus=[{"name": "H100", "driver": "550"}])
    bad = run(None, "0.10", gpus=[{"name": "H100", "driver": "560"}])
    good["server"]["config"]["extra_args"] = []  # type: ignore[index]
    bad["server"] = {"config": {**good["server"]["config"], "extra_args": ["--no-enable-prefix-caching"]}}  # type: ignore[index]
    diffs = differences(good, bad)
    keys = [d.key for d in diffs if d.applicable]

    def oracle(subset: frozenset[str]) -> Probe:
        hit = "server.extra_args" in subset
        return Probe(hit, {"ttft_s_p50 change %": 41.0} if hit else {}, 120.0, "ttft_s_p50 +41% [+30%, +52%]" * hit)

    assert format_report(ddmin(keys, oracle), diffs).splitlines() == [
        "culprit: server.extra_args: [] -> [--no-enable-prefix-caching]",
        "effect: ttft_s_p50 +41% [+30%, +52%]",
        "probes: 3 run, 360 s",
        "could not be bisected:",
        "  driver: 550 -> 560: another GPU driver: run GOOD and BAD on one machine",
    ]


# --- every cause ------------------------------------------------------------------------------

TARGETS = ("wall_clock_s", "ttft_s_p50", "mem_peak_mib")


def two_causes(speed: str, memory: str, error: float = 0.0, seed: int = 0) -> Callable[[frozenset[str]], Probe]:
    """`speed` slows the replay, `memory` raises peak memory; each metric's verdict wrong `error` of the time."""
    rng = random.Random(seed)

    def oracle(subset: frozenset[str]) -> Probe:
        hit = {"wall_clock_s": speed in subset, "ttft_s_p50": speed in subset, "mem_peak_mib": memory in subset}
        bad = tuple(m for m in TARGETS if hit[m] != (rng.random() < error))
        return Probe(bool(bad), cost_s=1.0, metrics=bad, changes_pct={m: 20.0 for m in bad})

    return oracle


@pytest.mark.parametrize("speed, memory", [("c0", "c1"), ("c4", "c2"), ("c5", "c0")])
def test_two_causes_of_two_regressions_are_both_named(speed: str, memory: str) -> None:
    result = search_causes(CHANGES, two_causes(speed, memory), TARGETS)
    assert result.status == FOUND and result.unexplained == ()
    assert {c.keys: c.explains for c in result.culprits} == {
        (speed,): ("wall_clock_s", "ttft_s_p50"),
        (memory,): ("mem_peak_mib",),
    }
    assert result.probes_run <= 24  # measured 12 to 22 over these orders (ddmin's halves)


def test_two_causes_with_a_noisy_probe() -> None:
    """Each metric's verdict wrong 1 time in 60 (about 1 probe in 20 wrong somewhere), 200 seeds: measured 100 %
    both named, 18.3 probes on average (16 without noise), at most 22."""
    results = [search_causes(CHANGES, two_causes("c3", "c1", 1 / 60, seed), TARGETS) for seed in range(200)]
    right = sum(sorted(c.keys for c in r.culprits) == [("c1",), ("c3",)] for r in results) / len(results)
    assert right >= 0.95 and max(r.probes_run for r in results) <= 40


def test_after_the_only_cause_bad_without_it_is_checked_and_the_rest_said_unexplained() -> None:
    """BAD's folder regressed on memory too, but no change does it: the search names the speed culprit, then
    probes BAD without it on memory until sure it is quiet (best of 5), and says memory is unexplained."""
    result = search_causes(CHANGES, two_causes("c2", "not among the changes"), TARGETS)
    assert [c.keys for c in result.culprits] == [("c2",)] and result.unexplained == ("mem_peak_mib",)
    rest = frozenset(c for c in CHANGES if c != "c2")
    assert sum(a.subset == rest for a in result.asked) == 3
    assert "unexplained: mem_peak_mib: no probe beside GOOD reproduced it" in format_causes(result)


def test_a_budget_ends_the_search_for_every_cause_and_the_report_says_what_is_left() -> None:
    result = search_causes(CHANGES, two_causes("c0", "c4"), TARGETS, Budget(probes=9))
    assert result.status == BUDGET_SPENT and [c.keys for c in result.culprits] == [("c0",)]
    assert result.searching == ("mem_peak_mib",) and "c4" in result.open_set
    text = format_causes(result)
    assert "unexplained: mem_peak_mib (the budget ended the search first)" in text
    assert "budget spent before the search ended; searching mem_peak_mib in:" in text


def test_a_cause_search_without_a_regression() -> None:
    result = search_causes(CHANGES, two_causes("x", "y"), TARGETS)
    assert (result.status, result.culprits, result.probes_run) == (NO_REGRESSION, (), 3)
    assert format_causes(result).splitlines()[0].startswith("no culprit")
