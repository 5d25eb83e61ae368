"""Start-up as a compared figure: the compile cache's state per start, compare's cold and warm rows, history's."""

from __future__ import annotations

from pathlib import Path

from bench.core import startup
from bench.core.files import write_run
from bench.core.records import OK, RunResult, Start
from bench.regress.compare import NOISE, REGRESSION, compare_dirs
from bench.regress.history import run_points
from bench.run import compile_cache


def test_the_first_start_of_a_run_folder_is_cold_and_later_ones_warm(tmp_path: Path) -> None:
    env = compile_cache.root_env({"X": "1"}, tmp_path)
    assert env["VLLM_CACHE_ROOT"] == str((tmp_path / compile_cache.DIR).resolve()) and env["X"] == "1"
    assert compile_cache.state(env, tmp_path) == compile_cache.COLD
    compile_cache.mark_started(env, tmp_path)
    assert compile_cache.state(env, tmp_path) == compile_cache.WARM
    assert compile_cache.size_bytes(env) == 0  # nothing compiled (an eager start)
    art = Path(env["VLLM_CACHE_ROOT"]) / "torch_compile_cache" / "abc" / "rank_0_0" / "model.bin"
    art.parent.mkdir(parents=True)
    art.write_bytes(b"x" * 100)
    assert compile_cache.size_bytes(env) == 100


def test_a_root_the_user_chose_is_kept_and_judged_by_its_artifacts(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    env = compile_cache.root_env({"VLLM_CACHE_ROOT": str(mine)}, tmp_path / "run")
    assert env == {"VLLM_CACHE_ROOT": str(mine)}
    compile_cache.mark_started(env, tmp_path / "run")
    assert not mine.exists()  # bench writes nothing into a root it does not own
    assert compile_cache.state(env, tmp_path / "run") == compile_cache.COLD
    (mine / "torch_compile_cache" / "h").mkdir(parents=True)
    (mine / "torch_compile_cache" / "h" / "a").write_text("compiled")
    assert compile_cache.state(env, tmp_path / "run") == compile_cache.WARM


def starts(cold: float, warm: list[float]) -> list[Start]:
    states = [("cold", cold)] + [("warm", w) for w in warm]
    return [Start(start=i, status=OK, startup_s=s, compile_cache=c, compile_cache_bytes=10) for i, (c, s) in
            enumerate(states)]  # fmt: skip


def test_by_cache_keeps_cold_and_warm_apart_and_skips_unrecorded_starts() -> None:
    ss = [*starts(120.0, [40.0, 42.0]), Start(start=3, status=OK, startup_s=99.0)]
    assert startup.by_cache(ss) == {"startup_cold_s": [120.0], "startup_warm_s": [40.0, 42.0]}
    assert startup.means(ss) == {"startup_cold_s": 120.0, "startup_warm_s": 41.0}


def write(sweep: Path, cold: float, warm: list[float]) -> None:
    (sweep / "single").mkdir(parents=True)
    trials = [{"start": i, "repeat": 0, "wall_clock_s": 10.0, "output_tok_per_s": 32.0} for i in range(len(warm) + 1)]
    result = RunResult(variant="single", status=OK, config_hash="h", wall_clock_s=10.0, trials=trials,  # type: ignore[arg-type]
                       starts=starts(cold, warm), provenance={"engine": "cpu"})  # fmt: skip
    write_run(sweep / "single", result)


def test_a_slower_warm_start_is_a_start_up_regression_and_cold_is_judged_apart(tmp_path: Path) -> None:
    # A broken compile cache (VLLM_DISABLE_COMPILE_CACHE=1): every warm start compiles again, the cold one is as before.
    write(tmp_path / "base", 120.0, [40.0, 41.0, 39.5])
    write(tmp_path / "cur", 121.0, [118.0, 122.0, 119.0])
    rows = {v.metric: v for v in compare_dirs(tmp_path / "base", tmp_path / "cur")}
    assert rows["startup_warm_s"].verdict == REGRESSION and "over starts" in rows["startup_warm_s"].basis
    assert rows["startup_cold_s"].verdict == NOISE


def test_older_results_without_cache_states_have_no_start_up_rows(tmp_path: Path) -> None:
    for side in ("base", "cur"):
        write(tmp_path / side, 100.0, [40.0])
        run = tmp_path / side / "single" / "run.json"
        run.write_text(
            run.read_text().replace('"compile_cache": "cold"', '"x": 1').replace('"compile_cache": "warm"', '"x": 1')
        )
    assert not {v.metric for v in compare_dirs(tmp_path / "base", tmp_path / "cur")} & set(startup.STARTUP_METRICS)


def test_history_has_a_point_per_cache_state(tmp_path: Path) -> None:
    write(tmp_path / "night", 120.0, [40.0, 42.0])
    points = run_points(tmp_path / "night").set_index("metric")
    assert points.loc["startup_warm_s", "value"] == 41.0 and points.loc["startup_warm_s", "n_starts"] == 2
    assert points.loc["startup_cold_s", "value"] == 120.0
