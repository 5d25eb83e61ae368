"""`bench bisect`: its probes' variants, its folder and cache, and the verb end to end with a simulated `bench run`
(the real probes are in tests/test_bisect_real.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.cli import main as cli
from bench.cli.run import config_dirs
from bench.core.errors import BenchError, ConfigError
from bench.core.files import read_run, write_run
from bench.regress import probes
from bench.regress.bisect import Difference
from bench.regress.differences import ABSENT
from bench.regress.history import ChangePoint, bisect_commands
from tests.test_compare import write_variant

SERVER = {"name": "single", "model": "bundled:smollm2-135m", "served_model_name": "bench-model", "dtype": "float32",
          "max_model_len": 2048, "extra_args": [], "env": {"VLLM_CPU_KVCACHE_SPACE": "2"}, "python": None,
          "port": 0, "api_key": None}  # fmt: skip
BAD_SERVER = SERVER | {
    "max_model_len": 1024,
    "served_model_name": "bench-model-b",
    "extra_args": ["--no-enable-prefix-caching"],
    "env": {"VLLM_CPU_KVCACHE_SPACE": "3"},
}
FAST, SLOW = [[10.0, 10.2, 9.9], [10.1, 9.8, 10.0]], [[13.0, 13.3, 12.9], [13.1, 12.8, 13.2]]
CULPRIT = "--no-enable-prefix-caching"


def sweep(path: Path, server: dict[str, Any], walls: list[list[float]]) -> Path:
    write_variant(path, "single", walls, server={"config": server, "engine": "cpu", "prefix_cache": "reset"})
    config = {"model": "bundled:smollm2-135m", "dataset": {"sample_size": 10}, "load": {"concurrency": 1},
              "request": {"max_tokens": 16}, "repeats": {"starts": 2, "passes": 3}, "out_dir": str(path),
              "hydra": {"mode": "MULTIRUN"}}  # fmt: skip
    (path / "multirun.yaml").write_text(yaml.safe_dump(config))
    return path


def test_set_dotted_makes_and_deletes_keys() -> None:
    tree: dict[str, Any] = {"env": {"A": "1"}}
    probes.set_dotted(tree, "env.B", "2")
    probes.set_dotted(tree, "env.A", ABSENT)
    probes.set_dotted(tree, "speculative_config.method", "ngram")
    assert tree == {"env": {"B": "2"}, "speculative_config": {"method": "ngram"}}


def test_a_probe_variant_is_good_s_server_with_the_changes(tmp_path: Path) -> None:
    s = probes.subject(sweep(tmp_path / "good", SERVER, FAST), sweep(tmp_path / "bad", BAD_SERVER, SLOW), None)
    assert {d.key for d in s.applicable} == {
        "server.extra_args", "server.max_model_len", "server.served_model_name", "server.env.VLLM_CPU_KVCACHE_SPACE"
    }  # fmt: skip
    by_key = {d.key: d for d in s.diffs}
    variant = probes.server_config(s, [by_key["server.extra_args"], by_key["server.env.VLLM_CPU_KVCACHE_SPACE"]], "p")
    assert variant["extra_args"] == [CULPRIT] and variant["env"] == {"VLLM_CPU_KVCACHE_SPACE": "3"}
    assert variant["max_model_len"] == 2048 and variant["name"] == "p" and variant["port"] == 0
    assert "api_key" not in variant and "python" not in variant  # None: the schema's default
    assert variant["defaults"] == ["server_schema", "_self_"]
    assert s.workload["dataset"]["sample_size"] == 10 and s.workload["request"]["max_tokens"] == 16
    assert s.workload["load"]["concurrency"] == 1 and "out_dir" not in s.workload and "repeats" not in s.workload


def test_folders_that_cannot_be_bisected_say_why(tmp_path: Path) -> None:
    good = sweep(tmp_path / "good", SERVER, FAST)
    write_variant(good, "spec_ngram", FAST)
    with pytest.raises(BenchError, match="several variants: give --variant, one of single, spec_ngram"):
        probes.variant_dir(good, None)
    with pytest.raises(BenchError, match="no variant 'tp2'"):
        probes.variant_dir(good, "tp2")
    (good / "multirun.yaml").unlink()  # a stored run of schema 5: its workload was only there
    with pytest.raises(BenchError, match="does not record the request, dataset, load it replayed"):
        probes.subject(good, good, "single")


def fake_bench_run(calls: list[list[str]]) -> Any:
    """`bench run` as far as bisect sees it: a folder per variant with `repeats.starts` starts, the probe slow when
    it has the culprit, and its server bigger (peak memory +30 %) with a KV cache of more than 2 GiB."""

    def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        args = dict(a.split("=", 1) for a in cmd if "=" in a)
        conf, out = Path(cmd[cmd.index("--config-dir") + 1]), Path(args["out_dir"])
        good, name = args["server"].split(",")
        variant = yaml.safe_load((conf / "server" / f"{name}.yaml").read_text())
        rounds = int(args.get("repeats.starts", 1))
        walls = (SLOW if CULPRIT in variant.get("extra_args", []) else [[w + 0.05 for w in s] for s in FAST]) * 3
        big = float(variant.get("env", {}).get("VLLM_CPU_KVCACHE_SPACE", "2")) > 2
        for v in (good, name):
            shutil.rmtree(out / v, ignore_errors=True)  # the starts so far, written again with one more
        write_variant(out, good, (FAST * 3)[:rounds])
        write_variant(out, name, walls[:rounds], mem_mib=1300.0 if big else 1000.0)
        return subprocess.CompletedProcess(cmd, 0)

    return run


def as_child(run: Any) -> Any:
    """subprocess.run's stand-in as probes.run_child: the exit status."""
    return lambda cmd: run(cmd).returncode


def probe_runs(calls: list[list[str]]) -> int:
    """Probes run: distinct probe folders (a probe runs one `bench run` a round)."""
    return len({c[-1] for c in calls})


def test_the_verb_names_the_culprit_and_resumes_from_its_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = sweep(tmp_path / "good", SERVER, FAST), sweep(tmp_path / "bad", BAD_SERVER, SLOW)
    calls: list[list[str]] = []
    monkeypatch.setattr(probes, "run_child", as_child(fake_bench_run(calls)))
    out = tmp_path / "bisect"
    args = ["bisect", str(good), str(bad), "--out", str(out), "--metric", "wall_clock_s"]
    assert cli.main(args) == 1
    text = capsys.readouterr().out
    assert f"culprit 1 of 1: server.extra_args: [] -> [{CULPRIT}]" in text
    assert "effect: wall_clock_s +3" in text and f"probes: {probe_runs(calls)} run" in text
    # Each probe runs 2 rounds at least (one start a side says nothing of restarts), 3 at most (--starts 3).
    assert all(2 <= sum(c[-1] == d for c in calls) <= 3 for d in {c[-1] for c in calls})
    assert "server.name" not in text  # the same variant on both sides
    assert calls and all("+sweep=bisect_workload" in c for c in calls)
    report = (out / "report.md").read_text()
    assert report.count("| probe_") >= probe_runs(calls) and "regressed: wall_clock_s" in report
    cache = json.loads((out / "cache.json").read_text())
    assert cache["subject"]["metrics"] == ["wall_clock_s"]
    n = len(calls)
    assert cli.main(args) == 1  # resumed: every answer from the cache, no probe run again
    assert len(calls) == n and "answered from the cache" in capsys.readouterr().out


def test_no_regression_between_good_and_bad_runs_no_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = sweep(tmp_path / "good", SERVER, FAST), sweep(tmp_path / "bad", BAD_SERVER, FAST)
    calls: list[list[str]] = []
    monkeypatch.setattr(probes, "run_child", as_child(fake_bench_run(calls)))
    assert cli.main(["bisect", str(good), str(bad), "--out", str(tmp_path / "b")]) == 0
    assert not calls and "no regression from GOOD to BAD" in capsys.readouterr().out


def test_another_search_s_cache_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = sweep(tmp_path / "good", SERVER, FAST), sweep(tmp_path / "bad", BAD_SERVER, SLOW)
    out = tmp_path / "b"
    out.mkdir()
    (out / "cache.json").write_text(json.dumps({"subject": {"good": "elsewhere"}, "probes": []}))
    assert cli.main(["bisect", str(good), str(bad), "--out", str(out)]) == 2
    assert "holds another search's probes" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--starts", "0"], "out of range"),
        (["--max-minutes", "nan"], "--max-minutes must be finite and > 0"),
        (["--max-minutes", "inf"], "--max-minutes must be finite and > 0"),
        (["--envs", "/nope/python,/nope/python3"], "not found: /nope/python"),
        (["--variant", "tp2"], "no variant 'tp2'"),
    ],
)
def test_bad_bisect_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    good, bad = sweep(tmp_path / "good", SERVER, FAST), sweep(tmp_path / "bad", BAD_SERVER, SLOW)
    assert cli.main(["bisect", str(good), str(bad), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_env_bisection_applies_each_interpreter_as_server_python(tmp_path: Path) -> None:
    from bench.regress.bisection import _env_changes

    s = probes.subject(sweep(tmp_path / "good", SERVER, FAST), sweep(tmp_path / "bad", SERVER, SLOW), None)
    changes = _env_changes(s, ["/a/python", "/b/python"])
    assert changes["/b/python"] == [Difference("server.python", None, "/b/python", True)]
    assert probes.server_config(s, changes["/b/python"], "p")["python"] == "/b/python"


def test_config_dir_adds_variants_and_a_missing_one_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "server").mkdir()
    assert config_dirs(["--config-dir", str(tmp_path)]) == [tmp_path.resolve()]
    assert config_dirs([f"--config-dir={tmp_path}", "-m"]) == [tmp_path.resolve()]
    with pytest.raises(ConfigError, match="no such folder"):
        config_dirs(["-cd", str(tmp_path / "nope")])


def test_history_prints_a_bisect_command_for_each_change_for_the_worse() -> None:
    common = dict(machine="m", hardware="h", metric="wall_clock_s", level=1.0, index=3, last_good="t1", first_bad="t2",
                  before=1.0, after=1.2, step=0.2, step_low=0.1, step_high=0.3, p_value=0.01)  # fmt: skip
    worse = ChangePoint(variant="single", worse=True, good_dir="results/n-1", bad_dir="results/n 2", **common)  # type: ignore[arg-type]
    better = ChangePoint(variant="tp2", worse=False, good_dir="a", bad_dir="b", **common)  # type: ignore[arg-type]
    assert bisect_commands([worse, worse, better]) == [
        "python -m bench bisect results/n-1 'results/n 2' --variant single"
    ]


@pytest.mark.parametrize("code, status", [(2, 2), (3, 3), (-9, 3), (130, 130)])
def test_a_probe_s_exit_keeps_the_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, status: int
) -> None:
    """A probe's bench run that crashes or is killed is no verdict and no bad input; Ctrl-C stays Ctrl-C."""
    good, bad = sweep(tmp_path / "good", SERVER, FAST), sweep(tmp_path / "bad", BAD_SERVER, SLOW)
    monkeypatch.setattr(probes, "run_child", as_child(lambda cmd, **kw: subprocess.CompletedProcess(cmd, code)))
    assert cli.main(["bisect", str(good), str(bad), "--out", str(tmp_path / "b"), "--metric", "wall_clock_s"]) == status


def test_two_changes_that_cause_two_regressions_are_both_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One change slows the replay, another (a bigger KV cache) raises peak memory: a search for one would name
    one; BAD without the first still regresses on memory, so the search goes on and names the second."""
    good = sweep(tmp_path / "good", SERVER, FAST)
    bad = tmp_path / "bad"
    write_variant(bad, "single", SLOW, mem_mib=1300.0, server={"config": BAD_SERVER, "engine": "cpu"})
    (bad / "multirun.yaml").write_text((good / "multirun.yaml").read_text())
    calls: list[list[str]] = []
    monkeypatch.setattr(probes, "run_child", as_child(fake_bench_run(calls)))
    out = tmp_path / "bisect"
    assert cli.main(["bisect", str(good), str(bad), "--out", str(out), "--starts", "1"]) == 1
    text = capsys.readouterr().out
    assert "BAD regressed: " in text and "mem_peak_mib +30.0%" in text and "wall_clock_s +30" in text
    lines = text.splitlines()
    named = {line.split(": ", 1)[1]: lines[i + 1] for i, line in enumerate(lines) if line.startswith("culprit ")}
    assert named.keys() == {f"server.extra_args: [] -> [{CULPRIT}]", "server.env.VLLM_CPU_KVCACHE_SPACE: 2 -> 3"}
    assert "wall_clock_s +30.2%" in named[f"server.extra_args: [] -> [{CULPRIT}]"]
    assert "mem_peak_mib" not in named[f"server.extra_args: [] -> [{CULPRIT}]"]
    assert named["server.env.VLLM_CPU_KVCACHE_SPACE: 2 -> 3"] == "  explains: mem_peak_mib +30.0%"
    assert "unexplained: nothing" in text
    report = (out / "report.md").read_text()
    assert "culprit 2 of 2" in report and "regressed: mem_peak_mib" in report


def test_what_no_probe_reproduces_is_said_to_be_unexplained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """BAD's folder shows more memory, but no change does it beside GOOD (the machine between the two runs):
    the speed culprit is named, and the memory is said plainly to be unexplained."""
    good = sweep(tmp_path / "good", SERVER, FAST)
    bad = tmp_path / "bad"
    server = BAD_SERVER | {"env": {"VLLM_CPU_KVCACHE_SPACE": "2"}}
    write_variant(bad, "single", SLOW, mem_mib=1300.0, server={"config": server, "engine": "cpu"})
    (bad / "multirun.yaml").write_text((good / "multirun.yaml").read_text())
    monkeypatch.setattr(probes, "run_child", as_child(fake_bench_run([])))
    assert cli.main(["bisect", str(good), str(bad), "--out", str(tmp_path / "b"), "--starts", "1"]) == 1
    text = capsys.readouterr().out
    assert f"culprit 1 of 1: server.extra_args: [] -> [{CULPRIT}]" in text
    assert "unexplained: mem_peak_mib: no probe beside GOOD reproduced it" in text


@pytest.mark.parametrize("inside", ["good", "bad"])
def test_out_inside_good_or_bad_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], inside: str) -> None:
    good, bad = sweep(tmp_path / "good", SERVER, FAST), sweep(tmp_path / "bad", BAD_SERVER, SLOW)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    out = tmp_path / inside / "single" / "bisect"
    assert cli.main(["bisect", str(good), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == f"bench: error: --out {out} lies inside {inside.upper()} ({tmp_path / inside}): give a folder of its own"
    )
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_probes_speak_the_one_exit_contract() -> None:
    from bench.core import exits

    assert (probes.BAD_INPUT, probes.INTERRUPTED) == (exits.BAD_INPUT, exits.INTERRUPTED)
    assert "BAD_INPUT, INTERRUPTED = " not in Path(probes.__file__).read_text()  # no copy of its own


def test_a_probe_runs_one_round_at_a_time_and_stops_once_its_answer_is_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each round is one `bench run` of one more start a side; the stop rule is asked after each. A rule that
    finds a +30 % probe clear after 2 rounds and an unchanged one after 3 (of --starts 4) spends just that."""
    from bench.regress import bisection

    good, bad = sweep(tmp_path / "good", SERVER, FAST), sweep(tmp_path / "bad", BAD_SERVER, SLOW)
    calls: list[list[str]] = []
    monkeypatch.setattr(probes, "run_child", as_child(fake_bench_run(calls)))
    asked: list[tuple[int, int, int]] = []

    def stop(good: Any, probe: Any, rounds: int, cap: int) -> bool:
        asked.append((good.starts, probe.starts, rounds))
        slow = probe.value("wall_clock_s") > 1.2 * good.value("wall_clock_s")
        return rounds >= (2 if slow else 3)

    monkeypatch.setattr(bisection, "stop_rule", lambda th, metrics: stop)
    out = tmp_path / "b"
    args = ["bisect", str(good), str(bad), "--out", str(out), "--metric", "wall_clock_s", "--starts", "4"]
    assert cli.main(args) == 1
    assert f"culprit 1 of 1: server.extra_args: [] -> [{CULPRIT}]" in capsys.readouterr().out
    assert all(g == p == r for g, p, r in asked)  # the sides so far: one start each per round
    per_probe = {d: [int(c[-2].split("=")[1]) for c in calls if c[-1] == d] for d in {c[-1] for c in calls}}
    assert all(rounds in ([1, 2], [1, 2, 3]) for rounds in per_probe.values()), per_probe
    assert "clear after 2 of 4 rounds" in (out / "report.md").read_text()


def test_a_probe_judged_on_no_timing_runs_its_fixed_rounds() -> None:
    """Memory or answers only: one more start makes nothing clearer, so the probe runs its rounds as planned."""
    from bench.regress.compare import Thresholds

    assert probes.stop_rule(Thresholds(), ["mem_peak_mib"]) is probes.fixed_rounds
    assert probes.stop_rule(Thresholds(), ["wall_clock_s"]) is not probes.fixed_rounds


@pytest.mark.parametrize(
    "observation",
    [
        {"regressed": "yes"},
        {"regressed": True, "cost_s": "60"},
        {"regressed": True, "cost_s": float("nan")},
        {"regressed": False, "metrics": [1]},
        {"regressed": False, "figures": {"change_pct": None}},
        "not a probe",
    ],
)
def test_a_cache_with_a_probe_of_the_wrong_shape_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], observation: Any
) -> None:
    """A torn or edited cache.json is one line and exit 2, never a probe that misleads the search or crashes it."""
    good, bad = sweep(tmp_path / "good", SERVER, FAST), sweep(tmp_path / "bad", BAD_SERVER, SLOW)
    monkeypatch.setattr(probes, "run_child", as_child(fake_bench_run([])))
    out = tmp_path / "b"
    args = ["bisect", str(good), str(bad), "--out", str(out), "--metric", "wall_clock_s", "--max-probes", "1"]
    cli.main(args)
    cache = json.loads((out / "cache.json").read_text())
    cache["probes"][0]["observations"][0] = observation
    (out / "cache.json").write_text(json.dumps(cache))
    capsys.readouterr()
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "corrupt probe cache" in err and len(err.splitlines()) == 1


def test_an_interrupted_bisect_lets_its_probe_stop_its_server(tmp_path: Path) -> None:
    """Ctrl-C or SIGTERM to bisect: the probe's bench run gets one SIGTERM and waits to finish, not a SIGKILL
    (subprocess.run's), which left its vLLM server running."""
    import os
    import signal
    import sys
    import threading

    seen = tmp_path / "signals"
    child = (
        "import signal, sys, time\n"
        "def stop(n, f):\n"
        f"    time.sleep(0.5); open({str(seen)!r}, 'a').write(signal.Signals(n).name + '\\n'); sys.exit(130)\n"
        "signal.signal(signal.SIGTERM, stop); signal.signal(signal.SIGINT, stop)\n"
        f"open({str(seen)!r}, 'a').write('ready\\n'); time.sleep(60)\n"
    )
    timer = threading.Timer(3.0, lambda: os.kill(os.getpid(), signal.SIGINT))  # Ctrl-C, to bisect only
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            probes.run_child([sys.executable, "-c", child])
    finally:
        timer.cancel()
    assert seen.read_text().splitlines() == ["ready", "SIGTERM"]  # once, and it finished its cleanup


def today(sweep_dir: Path) -> Path:
    """The sweep's runs as this bench writes them (schema 6: the RunSpec in run.json), its Hydra files gone."""
    for run_dir in [d for d in sweep_dir.iterdir() if (d / "run.json").is_file()]:
        run = read_run(run_dir)
        assert run is not None and run.spec is not None and not run.spec.unrecorded
        write_run(run_dir, run)
        shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
    (sweep_dir / "multirun.yaml").unlink(missing_ok=True)
    return sweep_dir


def test_bisect_opens_no_hydra_file_and_a_promoted_baseline_is_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's own example: GOOD a promoted baseline (run.json and requests.jsonl only). The workload comes
    from GOOD's RunSpec; nothing named .hydra or multirun.yaml is opened, by any reader."""
    import builtins

    from bench.regress.baseline import promote

    good = today(sweep(tmp_path / "nightly-1", SERVER, FAST))
    bad = today(sweep(tmp_path / "nightly-2", BAD_SERVER, SLOW))
    baseline = tmp_path / "baselines" / "lab" / "nightly"
    promote(good, baseline, "first night")
    opened: list[str] = []
    real_open, real_read, real_path_open = builtins.open, Path.read_text, Path.open

    def watch(name: object) -> None:
        if ".hydra" in str(name) or "multirun.yaml" in str(name):
            opened.append(str(name))
            raise AssertionError(f"opened {name}")

    def open_(file: Any, *args: Any, **kwargs: Any) -> Any:
        watch(file)
        return real_open(file, *args, **kwargs)

    def read_text(self: Path, *args: Any, **kwargs: Any) -> str:
        watch(self)
        return real_read(self, *args, **kwargs)

    def path_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        watch(self)
        return real_path_open(self, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(Path, "read_text", read_text)
    monkeypatch.setattr(Path, "open", path_open)
    calls: list[list[str]] = []
    monkeypatch.setattr(probes, "run_child", as_child(fake_bench_run(calls)))
    args = ["bisect", str(baseline), str(bad), "--out", str(tmp_path / "b"), "--metric", "wall_clock_s"]
    assert cli.main(args) == 1
    assert f"culprit 1 of 1: server.extra_args: [] -> [{CULPRIT}]" in capsys.readouterr().out
    assert not opened and calls
    preset = yaml.safe_load(real_read(tmp_path / "b" / "conf" / "sweep" / f"{probes.WORKLOAD}.yaml"))
    assert preset["dataset"]["sample_size"] == 10 and preset["request"]["max_tokens"] == 16
    assert preset["engine"] == "cpu" and preset["load"]["concurrency"] == 1


def test_a_run_that_records_no_workload_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stored run of schema 5 promoted as a baseline kept no Hydra file: what it replayed is unknown."""
    from bench.regress.baseline import promote

    good, bad = sweep(tmp_path / "good", SERVER, FAST), sweep(tmp_path / "bad", BAD_SERVER, SLOW)
    promote(good, tmp_path / "baseline", "old")
    assert cli.main(["bisect", str(tmp_path / "baseline"), str(bad), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not record the request, dataset, load it replayed" in err
