"""When a sweep's rounds stop: a clear answer (repeats.until=clear) or a deadline (repeats.max_minutes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.core.files import read_run
from bench.core.records import OK
from bench.core.repeats import Repeats, to_repeats
from bench.regress import rounds
from tests.test_compare import write_variant


def sweep(tmp_path: Path, slowdown: float, starts: int, seed: int = 0) -> Path:
    """An A/B sweep folder: single and spec_ngram, `starts` starts of 2 passes, 2 % noise, spec_ngram scaled."""
    rng = np.random.default_rng(seed)
    out = tmp_path / f"ab-{slowdown}-{starts}"
    for variant, scale in (("single", 1.0), ("spec_ngram", slowdown)):
        walls = [[float(10 * scale * rng.normal(1, 0.02)) for _ in range(2)] for _ in range(starts)]
        write_variant(out, variant, walls)
    return out


def test_a_clear_slowdown_stops_the_rounds_early(tmp_path: Path) -> None:
    out = sweep(tmp_path, 1.5, starts=3)
    decision = rounds.after_round(out, Repeats(starts=8, passes=2, until="clear"), "single", 3, [60.0] * 3, 180.0)
    assert decision is not None and decision["verdict"] == "regression" and decision["stopped_after"] == 3


def test_one_round_is_never_enough_and_a_quiet_pair_stops_once_it_excludes_the_slowdown(tmp_path: Path) -> None:
    out = sweep(tmp_path, 1.0, starts=1)
    assert rounds.after_round(out, Repeats(starts=8, until="clear"), "single", 1, [60.0], 60.0) is None
    out = sweep(tmp_path, 1.0, starts=3, seed=1)  # 2 % noise: three rounds bound the change below +10 %
    decision = rounds.after_round(out, Repeats(starts=8, until="clear"), "single", 3, [60.0] * 3, 180.0)
    assert decision is not None and decision["verdict"] == "no regression" and "excludes +10%" in decision["reason"]
    noisy = tmp_path / "noisy"  # 15 % noise: two rounds cannot tell
    rng = np.random.default_rng(3)
    for variant in ("single", "spec_ngram"):
        write_variant(noisy, variant, [[float(10 * rng.normal(1, 0.15)) for _ in range(2)] for _ in range(2)])
    assert rounds.after_round(noisy, Repeats(starts=8, until="clear"), "single", 2, [60.0] * 2, 120.0) is None


def test_at_the_cap_every_answer_is_given(tmp_path: Path) -> None:
    out = sweep(tmp_path, 1.0, starts=4, seed=2)
    decision = rounds.after_round(out, Repeats(starts=4, until="clear"), "single", 4, [60.0] * 4, 240.0)
    assert decision is not None and decision["verdict"] == "no regression"


def test_a_deadline_ends_the_rounds_before_one_that_would_not_fit(tmp_path: Path) -> None:
    out = sweep(tmp_path, 1.0, starts=2)
    plan = Repeats(starts=8, max_minutes=5)
    assert rounds.after_round(out, plan, "single", 2, [100.0, 100.0], 200.0) is None  # 100 s left: one more fits
    decision = rounds.after_round(out, plan, "single", 2, [100.0, 120.0], 220.0)
    assert decision is not None and decision["verdict"] == rounds.DEADLINE


def test_the_decision_is_recorded_and_an_early_stop_is_complete(tmp_path: Path) -> None:
    from bench.core.records import Start
    from tests.test_runspec import spec, write

    out = tmp_path / "s"
    write(out, spec("repeats={starts: 8, passes: 1, until: clear}"), [1.0, 1.1])
    run = read_run(out / "single")
    assert run is not None and run.spec is not None
    run.starts = [Start(start=0, status=OK), Start(start=1, status=OK)]
    from bench.core.files import write_run
    from bench.run.finish import finish

    finish(run, out / "single")
    write_run(out / "single", run)
    assert read_run(out / "single").status == "partial"  # type: ignore[union-attr]  # 2 of 8 starts
    rounds.record(out, {"stop": True, "verdict": "regression", "reason": "r", "rounds": 2, "stopped_after": 2})
    again = read_run(out / "single")
    assert again is not None and again.status == OK and again.rounds["stopped_after"] == 2


def test_until_and_the_deadline_are_checked() -> None:
    import pytest

    from bench.core.errors import ConfigError

    for bad in ({"until": "soon"}, {"max_minutes": 0}, {"max_minutes": float("nan")}, {"against": "/nonexistent"}):
        with pytest.raises(ConfigError):
            to_repeats(bad)


def test_the_dispatcher_stops_a_sweep_whose_answer_is_clear(tmp_path: Path) -> None:
    """An A/B of two variants against one instant endpoint (the same server: nothing differs) with
    repeats.until=clear: the sweep ends at the rule's answer, no later than its cap, and every run says why."""
    import subprocess
    import sys

    from bench.run.server import VllmServer, free_port

    endpoint = str(Path(__file__).resolve().parents[1] / "benchmarks" / "instant_endpoint.py")
    port = free_port("127.0.0.1")
    out = tmp_path / "ab"
    with VllmServer([sys.executable, endpoint, str(port), "4"], "127.0.0.1", port, tmp_path / "e.log", {}, 30):
        p = subprocess.run(
            [sys.executable, "-m", "bench", "run", "-m", "server=single,spec_ngram", f"endpoint=http://127.0.0.1:{port}",
             f"out_dir={out}", "dataset.sample_size=6", "repeats.prefix_cache=keep", "repeats.until=clear",
             "repeats.starts=4", "repeats.passes=2", "telemetry_interval_s=0"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    assert "bench: rounds: " in p.stderr
    for variant in ("single", "spec_ngram"):
        run = read_run(out / variant)
        assert run is not None and run.status == OK, (variant, run and run.reason)
        done = run.rounds["stopped_after"]
        assert run.rounds["stop"] and 2 <= done <= 4 and len(run.starts) == done
