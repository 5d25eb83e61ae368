"""Finding the best configuration: sweep folders named by what varies, goodput, lossless diffs, and the
charts of sweeps, load levels, SLO searches and power (fabricated folders and the stored GPU reference)."""

from __future__ import annotations

import io
import json
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from matplotlib.text import Text

from bench.analyze.sweep import load_sweep
from bench.analyze.tables import answer_diffs, crossover, pareto_front, summary_table
from bench.cli.overrides import name_sweep_runs, swept_keys
from bench.core.config import register_schemas, to_bench_config
from bench.core.files import RequestWriter, write_run
from bench.core.paths import CONF_DIR
from bench.core.records import OK, RequestRecord, RunResult
from bench.report.build import analyze
from bench.report.charts import load
from bench.report.charts.registry import drawn
from bench.run.runner import sweep_values

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"


def figures(s) -> dict:
    """The charts the report draws for this sweep, by name, each drawn when called (from the chart table)."""
    return {c.name: partial(c.draw, s, "single") for c in drawn(s)}


def text_of(fig) -> str:
    fig.savefig(io.BytesIO(), format="png")
    return "\n".join(t.get_text() for t in fig.findobj(Text))


def compose_job(overrides: list[str]):
    register_schemas()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return to_bench_config(compose("config", overrides=overrides))


def test_a_sweep_inside_a_variant_gets_a_folder_per_value_named_by_what_varies():
    cmd = ["server=spec_ngram", "server.speculative_config.num_speculative_tokens=1,3,5", "dataset.sample_size=8"]
    named = name_sweep_runs(cmd)
    assert swept_keys(cmd) == ["server.speculative_config.num_speculative_tokens"]
    # One job of the multirun: what Hydra composes for k=3.
    job = [o if "num_speculative_tokens=1,3,5" not in o else o.replace("1,3,5", "3") for o in named]
    cfg = compose_job(job)
    assert cfg.run_name == "spec_ngram-num_speculative_tokens=3"
    assert sweep_values(cfg) == {"server.speculative_config.num_speculative_tokens": 3}


def test_a_swept_old_spelling_is_read_as_the_new_one_and_recorded_as_swept():
    for key in ("server.max_tokens", "request.max_tokens"):
        named = name_sweep_runs(["server=single", f"{key}=16,64"])
        cfg = compose_job([o.replace("16,64", "16") for o in named])
        assert cfg.run_name == "single-max_tokens=16" and cfg.request.max_tokens == 16
        assert sweep_values(cfg) == {key: 16}


def test_variants_alone_and_an_explicit_run_name_keep_their_folders():
    assert name_sweep_runs(["server=single,spec_ngram", "dataset.sample_size=8"]) == [
        "server=single,spec_ngram", "dataset.sample_size=8"]  # fmt: skip
    named = name_sweep_runs(["server=single,spec_ngram", "dataset=builtin,squad_file", "run_name=${dataset.name}"])
    assert not any(o.startswith("run_name='") for o in named) and "sweep_params=[dataset]" in named


def test_swept_values_that_are_paths_or_groups_make_plain_folder_names():
    cmd = ["model=/models/a,/models/b", "dataset=builtin,squad_file"]
    assert swept_keys(cmd) == ["model", "dataset"]
    job = [*name_sweep_runs(cmd)[2:], "model=/models/a", "dataset=squad_file", "dataset.path=x.json"]
    assert compose_job(job).run_name == "single-model=models_a-dataset=squad_file"


def test_spec_k_preset_sweeps_k_1_to_6_with_its_folders():
    assert swept_keys(["+sweep=spec_k"]) == ["server.speculative_config.num_speculative_tokens"]


# ---- a fabricated k sweep ---------------------------------------------------------------------------------


def _run(sweep: Path, name: str, base: str, wall: float, answers: list[str], params=None, spec=None, trials=None,
         slo=None, ttft=0.1, lossless=False) -> None:  # fmt: skip
    d = sweep / name
    d.mkdir(parents=True)
    with RequestWriter(d / "requests.jsonl") as w:
        for i, a in enumerate(answers):
            w.write(RequestRecord(i, f"q{i}", "en", "?", "?", ["Paris"], a, 0.0, 1.0, 1.0, ttft, [], 0.05, 10, 8,
                                  "stop", None, 1.0, 1.0))  # fmt: skip
    write_run(d, RunResult(
        variant=name, status=OK, wall_clock_s=wall, replay_s=wall, n_requests=len(answers),
        stats={"output_tok_per_s": 8 * len(answers) / wall, "tpot_s_p50": wall / 100, "f1": 1.0},
        server_metrics={"available": True, **(spec or {})}, server={"config": {"name": base, "lossless": lossless}},
        params=params or {}, trials=trials or [],
    ))  # fmt: skip
    if slo:  # a run.json of schema 5 kept its objectives at the top level: the migration layer reads them
        data = json.loads((d / "run.json").read_text())
        (d / "run.json").write_text(json.dumps(data | {"schema_version": 5, "slo": slo}))


@pytest.fixture
def k_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "spec_k"
    same = ["Paris", "Lyon", "Nice", "Metz"]
    _run(sweep, "single", "single", 10.0, same, slo={"ttft_ms": 200})
    for k, wall, acc in ((1, 8.0, 0.8), (3, 6.5, 0.6), (5, 7.0, 0.45)):
        answers = same if k != 5 else ["Paris", "Lyon is big", "Nice", "Metz"]
        _run(sweep, f"spec_ngram-num_speculative_tokens={k}", "spec_ngram", wall, answers,
             params={"server.speculative_config.num_speculative_tokens": k},
             spec={"spec_acceptance_rate": acc, "spec_mean_acceptance_length": 1 + acc * k},
             slo={"ttft_ms": 200}, ttft=0.1 if k != 5 else 0.3)  # fmt: skip
    return sweep


def test_k_sweep_chart_draws_speedup_and_acceptance_against_k(k_sweep: Path):
    s = load_sweep(k_sweep)
    assert "sweep" in figures(s)
    text = text_of(load.sweep_chart(s.summary, s.params))
    assert "best: num_speculative_tokens=3" in text and "1.54" in text  # 10 s / 6.5 s
    assert "acceptance rate (% of drafted tokens)" in text


def test_goodput_and_slo_shares_in_the_summary(k_sweep: Path):
    table = summary_table(k_sweep).set_index("variant")
    assert table.loc["single", "goodput_req_per_s"] == pytest.approx(0.4)  # 4 requests meet TTFT, 10 s
    assert table.loc["spec_ngram-num_speculative_tokens=5", "slo_ttft_share"] == 0.0  # TTFT 300 ms > 200
    assert table.loc["spec_ngram-num_speculative_tokens=5", "goodput_req_per_s"] == 0.0


def test_each_differing_answer_is_recorded_with_where_it_first_differs(k_sweep: Path):
    from bench.analyze.tables import load_requests

    diffs = answer_diffs(load_requests(k_sweep), "single")
    assert diffs[["variant", "question_id", "first_diff_char", "first_diff_word"]].values.tolist() == [
        ["spec_ngram-num_speculative_tokens=5", "q1", 4, 1]]  # fmt: skip
    analyze(k_sweep)
    assert (k_sweep / "answer_diffs.csv").is_file() and (k_sweep / "charts" / "sweep.png").is_file()


# ---- load levels ------------------------------------------------------------------------------------------


def _trials(variant: str, speedups: dict[int, float] | None = None) -> list[dict]:
    out = []
    for c in (1, 2, 4, 8):
        tok = 13.0 * c**0.8 * (speedups or {}).get(c, 1.0)
        out.append({"repeat": 0, "level": float(c), "load": "concurrency", "phase": "fixed", "output_tok_per_s": tok,
                    "tpot_s_p50": c / tok, "latency_s_p50": 2 * c / tok, "latency_s_p99": 3 * c / tok})  # fmt: skip
    return out


def test_crossover_marks_where_speculation_drops_below_1x(tmp_path: Path):
    sweep = tmp_path / "load"
    _run(sweep, "single", "single", 10.0, ["a"], trials=_trials("single"))
    _run(sweep, "spec_ngram", "spec_ngram", 7.0, ["a"], spec={"spec_acceptance_rate": 0.6},
         trials=_trials("spec_ngram", {1: 1.5, 2: 1.2, 4: 0.9, 8: 0.8}))  # fmt: skip
    s = load_sweep(sweep)
    points = crossover(s.trials, "single", ["spec_ngram"])
    assert points["speedup"].round(2).tolist() == [1.5, 1.2, 0.9, 0.8]
    text = text_of(load.crossover_chart(s.trials, s.summary))
    assert "first below 1x at ≈ 3.2 in flight" in text  # 2^(1 + 0.2/0.3) between 2 (1.2x) and 4 (0.9x)
    assert {"pareto", "crossover"} <= set(figures(s))
    assert "front: 4 of 4 levels" in text_of(load.pareto_chart(s.trials))


def test_pareto_front_keeps_only_points_nothing_beats_on_both():
    pts = pd.DataFrame({"x": [1, 2, 3, 2.5], "y": [10, 8, 5, 4]})
    assert pareto_front(pts, "x", "y").tolist() == [True, True, True, False]
    assert pareto_front(pts, "x", "y", maximize_y=False).tolist() == [False, False, True, True]


def test_slo_search_chart_marks_the_answer(tmp_path: Path):
    sweep = tmp_path / "search"
    _run(sweep, "single", "single", 10.0, ["a"])
    run = sweep / "single" / "run.json"
    import json

    data = json.loads(run.read_text())
    data["search"] = {"mode": "slo_search", "goal_share": 0.9, "max_req_per_s": 3.0, "best_req_per_s": 1.5,
                      "stopped": "bracketed within 10%", "tried": [
                          {"req_per_s": None, "phase": "throughput", "slo_met_share": 0.2},
                          {"req_per_s": 1.5, "phase": "rate", "slo_met_share": 1.0},
                          {"req_per_s": 2.25, "phase": "rate", "slo_met_share": 0.5}]}  # fmt: skip
    run.write_text(json.dumps(data))
    s = load_sweep(sweep)
    text = text_of(figures(s)["slo_search"]())
    assert "single: 1.50 req/s meets the SLOs" in text and "goal: 90% of requests" in text


def test_power_chart_of_the_two_gpu_reference_shows_the_pp_imbalance():
    s = load_sweep(REFERENCE / "gpu-h100x2" / "parallel")
    text = text_of(figures(s)["power"]())
    # NVML reads every pp2 stage ~90 % busy; power shows each drawing ~70 % of the single GPU's.
    assert "100 % = single gpu0, 403 W" in text
    assert "284 W (70%)" in text and "290 W (72%)" in text and "93 %" in text


def test_cpu_sweeps_have_no_power_chart():
    assert "power" not in figures(load_sweep(REFERENCE / "cpu"))


def test_compare_fails_a_lossless_variant_whose_identical_answers_drop(tmp_path: Path):
    from bench.regress.compare import REGRESSION, compare_dirs

    same, one_off = ["Paris", "Lyon", "Nice", "Metz"], ["Paris", "Lyon", "Nice", "Metz!"]
    for folder, spec_answers in (("base", same), ("cur", one_off)):
        _run(tmp_path / folder, "single", "single", 10.0, same)
        _run(tmp_path / folder, "spec_ngram", "spec_ngram", 7.0, spec_answers, lossless=True)
        _run(tmp_path / folder, "awq", "awq", 7.0, spec_answers)  # not declared lossless: may differ
    verdicts = {(v.variant, v.metric): v for v in compare_dirs(tmp_path / "base", tmp_path / "cur")}
    v = verdicts[("spec_ngram", "identical_to_baseline")]
    assert (v.verdict, v.baseline, v.current) == (REGRESSION, 1.0, 0.75)
    assert ("awq", "identical_to_baseline") not in verdicts


@pytest.mark.server
def test_load_sweep_on_the_real_cpu_engine_runs_its_phases_in_one_server_start(tmp_path: Path):
    """Synchronous, throughput, then one rate between them: three levels, one server start, goodput reported."""
    import json
    import subprocess

    from tests.conftest import BENCH_RUN, require_engine, vllm_processes

    require_engine()
    out = tmp_path / "r"
    args = ["load=sweep", "load.sweep_points=1", "dataset.sample_size=4", "request.max_tokens=8", "slo.ttft_ms=60000"]
    p = subprocess.run([*BENCH_RUN, f"out_dir={out}", *args], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    run = json.loads((out / "single" / "run.json").read_text())
    assert [t["phase"] for t in run["trials"]] == ["synchronous", "throughput", "rate"]
    sync, peak = run["search"]["synchronous_req_per_s"], run["search"]["max_req_per_s"]
    assert 0 < sync < peak  # 4 requests at once finish sooner than one after another
    assert run["trials"][2]["level"] == pytest.approx((sync + peak) / 2, rel=1e-3)
    assert vllm_processes() == []
    row = summary_table(out).iloc[0]
    assert row["slo_met_share"] == 1.0 and row["goodput_req_per_s"] == pytest.approx(row["requests_per_s"])


def _starts_run(sweep: Path, name: str, per_start: list[list[str]], lossless: bool = False) -> None:
    """A variant of several server starts: the answers of each start."""
    import dataclasses

    d = sweep / name
    d.mkdir(parents=True)
    with RequestWriter(d / "requests.jsonl") as w:
        for k, answers in enumerate(per_start):
            for i, a in enumerate(answers):
                rec = RequestRecord(i, f"q{i}", "en", "?", "?", ["Paris"], a, 0.0, 1.0, 1.0, 0.1, [], 0.05, 10, 8,
                                    "stop", None, 1.0, 1.0)  # fmt: skip
                w.write(dataclasses.replace(rec, start=k))
    trials = [{"start": k, "repeat": 0, "level": 1.0, "wall_clock_s": 7.0, "f1": 1.0} for k in range(len(per_start))]
    write_run(d, RunResult(variant=name, status=OK, wall_clock_s=7.0, replay_s=7.0, trials=trials,
                           n_requests=sum(map(len, per_start)), stats={"f1": 1.0},
                           server={"config": {"name": name, "lossless": lossless}}))  # fmt: skip


@pytest.mark.parametrize(("base_starts", "verdict"), [
    # The baseline's own starts agreed: the engine is deterministic here, and one changed answer is a regression.
    ([["Paris", "Lyon", "Nice", "Metz"]] * 2, "regression"),
    # They disagreed on one question in four (bf16 speculation, batched decoding): a drop of 1/8 is within that.
    ([["Paris", "Lyon", "Nice", "Metz"], ["Paris", "Lyon", "Nice", "Metz?"]], "within noise"),
])  # fmt: skip
def test_the_identical_share_tolerates_what_the_baselines_own_starts_moved(tmp_path: Path, base_starts, verdict):
    from bench.regress.compare import compare_dirs

    same = ["Paris", "Lyon", "Nice", "Metz"]
    for folder, spec in (("base", base_starts), ("cur", [same, ["Paris", "Lyon", "Nice", "Metz!"]])):
        _starts_run(tmp_path / folder, "single", [same, same])
        _starts_run(tmp_path / folder, "spec_ngram", spec, lossless=True)
    v = {(v.variant, v.metric): v for v in compare_dirs(tmp_path / "base", tmp_path / "cur")}[
        ("spec_ngram", "identical_to_baseline")
    ]
    assert v.current == 0.875 and v.verdict == verdict, v
