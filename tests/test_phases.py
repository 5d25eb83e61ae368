"""The server's phases from /metrics histograms: bucket deltas, Prometheus-style quantiles, summary and compare."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.analyze.tables import summary_table
from bench.core.describe import outside_engine
from bench.regress.compare import REGRESSION, REPORTED, compare_dirs, exit_code, load_thresholds
from bench.run.prometheus import PHASE_HISTOGRAMS, delta, histogram_quantile, parse, phase_figures, summarize
from tests.test_compare import STABLE, by_metric, write_variant

INF = math.inf


def histogram(name: str, buckets: dict[str, float], total: float) -> str:
    """A histogram family in Prometheus text, as vLLM writes it (engine and model labels, `le` per bucket)."""
    lines = [f"# TYPE {name} histogram"]
    lines += [f'{name}_bucket{{engine="0",le="{le}",model_name="m"}} {n}' for le, n in buckets.items()]
    lines += [f'{name}_count{{engine="0",model_name="m"}} {buckets["+Inf"]}']
    lines += [f'{name}_sum{{engine="0",model_name="m"}} {total}']
    return "\n".join(lines) + "\n"


QUEUE = PHASE_HISTOGRAMS["queue"]
BEFORE = histogram(QUEUE, {"0.1": 2.0, "0.5": 3.0, "1.0": 4.0, "+Inf": 4.0}, 1.2)
# Four more requests: two under 0.1 s, one in (0.5, 1], one above 1 s.
AFTER = histogram(QUEUE, {"0.1": 4.0, "0.5": 5.0, "1.0": 7.0, "+Inf": 8.0}, 4.0)


def test_parse_keeps_each_bucket_and_delta_keeps_the_phase_histograms() -> None:
    snap = parse(AFTER)
    assert snap[f"{QUEUE}_bucket{{le=0.5}}"] == 5.0 and snap[f"{QUEUE}_bucket{{le=+Inf}}"] == 8.0
    d = delta(parse(BEFORE), parse(AFTER))
    assert d[f"{QUEUE}_count"] == 4.0 and d[f"{QUEUE}_sum"] == pytest.approx(2.8)
    assert [d[f"{QUEUE}_bucket{{le={le}}}"] for le in ("0.1", "0.5", "1.0", "+Inf")] == [2.0, 2.0, 3.0, 4.0]
    # Histograms that are no phase stay out of the delta, as gauges do.
    other = histogram("vllm:request_prompt_tokens", {"10.0": 1.0, "+Inf": 1.0}, 5.0)
    assert not [k for k in delta(parse(other), parse(other)) if "prompt_tokens" in k]


def test_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    buckets = [(0.1, 2.0), (0.5, 2.0), (1.0, 3.0), (INF, 4.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)  # rank 2: the top of the first bucket
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.05)  # the first bucket starts at 0
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.5 + 0.5 * (2.8 - 2.0) / 1.0)
    # The rank falls in +Inf: the highest finite bound, Prometheus' answer (the histogram knows no more).
    assert histogram_quantile(0.99, buckets) == 1.0


def test_quantile_edge_cases() -> None:
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]) is None  # no request in the window
    assert histogram_quantile(0.5, [(0.1, 0.0), (1.0, 0.0), (INF, 5.0)]) == 1.0  # all above the highest bound
    assert histogram_quantile(0.5, [(0.1, 1.0), (1.0, 2.0)]) is None  # no +Inf bucket: not a whole histogram
    assert histogram_quantile(0.5, [(0.1, 3.0), (1.0, 2.0), (INF, 4.0)]) is None  # counts that fall
    assert histogram_quantile(0.5, [(0.1, 1.0), (INF, 1.0)]) == pytest.approx(0.05)  # order of the input is kept out
    assert histogram_quantile(0.5, [(INF, 1.0), (0.1, 1.0)]) == pytest.approx(0.05)


def test_phase_figures_from_a_delta() -> None:
    f = phase_figures(delta(parse(BEFORE), parse(AFTER)))
    assert f["server_queue_s_mean"] == pytest.approx(2.8 / 4)
    assert f["server_queue_s_p50"] == pytest.approx(0.1)
    assert f["server_queue_s_p90"] == 1.0  # rank 3.6 of 4 lies in +Inf
    # A histogram this server does not expose: its figures are None, never guessed.
    assert f["server_prefill_s_mean"] is None and f["server_decode_s_p99"] is None


def test_a_percentile_never_exceeds_what_the_mean_allows() -> None:
    # Eight queue times of ~20 us, all in vLLM's first bucket (0, 0.3 s]: interpolation alone would say 150 ms.
    tiny = histogram(QUEUE, {"0.3": 8.0, "0.5": 8.0, "+Inf": 8.0}, 8 * 2e-5)
    empty = histogram(QUEUE, {"0.3": 0.0, "0.5": 0.0, "+Inf": 0.0}, 0.0)
    f = phase_figures(delta(parse(empty), parse(tiny)))
    assert histogram_quantile(0.5, [(0.3, 8.0), (0.5, 8.0), (INF, 8.0)]) == pytest.approx(0.15)
    assert f["server_queue_s_p50"] == pytest.approx(2 * 2e-5) and f["server_queue_s_p99"] == pytest.approx(100 * 2e-5)


def test_empty_delta_and_counter_reset_give_none() -> None:
    assert all(v is None for v in phase_figures({}).values())
    same = delta(parse(AFTER), parse(AFTER))
    assert all(v is None for v in phase_figures(same).values())  # nothing counted between the scrapes
    # The server restarted between the two scrapes: its counts start again from 0 and fall.
    reset = delta(parse(AFTER), parse(BEFORE))
    assert all(v is None for v in phase_figures(reset).values())


def test_summaries_gain_phase_keys_only_where_the_server_has_them() -> None:
    plain = "# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total 1.0\n"
    assert not [k for k in summarize(parse(plain), parse(plain), None) if k.startswith("server_")]
    s = summarize(parse(plain + BEFORE), parse(plain + AFTER), None)
    assert s["server_queue_s_mean"] == pytest.approx(0.7) and s["server_prefill_s_mean"] is None


def test_outside_the_engine_is_client_minus_server() -> None:
    client = {"ttft_s_mean": 0.30, "latency_s_mean": 1.25}
    server = {"server_ttft_s_mean": 0.28, "server_e2e_s_mean": 1.20}
    out = outside_engine(client, server)
    assert out == pytest.approx({"outside_engine_ttft_s": 0.02, "outside_engine_e2e_s": 0.05})
    assert outside_engine(client, None) == {} and outside_engine(client, {"server_ttft_s_mean": None}) == {}


def _with_phases(sweep: Path, variant: str, queue_s: float) -> None:
    """A variant whose run and trials carry the server's phases (as a run of this bench writes them)."""
    import json

    path = sweep / variant / "run.json"
    run = json.loads(path.read_text())
    phases = {"server_queue_s_mean": queue_s, "server_prefill_s_mean": 0.2, "server_decode_s_mean": 0.5,
              "outside_engine_ttft_s": 0.01, "outside_engine_e2e_s": 0.02}  # fmt: skip
    run["server_metrics"] |= phases
    for t in run["trials"]:
        t |= phases
    path.write_text(json.dumps(run))


def test_summary_has_phase_columns_only_where_a_run_measured_them(tmp_path: Path) -> None:
    write_variant(tmp_path / "old", "single", STABLE)
    assert not [c for c in summary_table(tmp_path / "old").columns if c.startswith(("server_", "outside_"))]
    write_variant(tmp_path / "new", "single", STABLE)
    _with_phases(tmp_path / "new", "single", 0.1)
    table = summary_table(tmp_path / "new")
    assert table.loc[0, "server_queue_s_mean"] == 0.1 and "server_queue_s_p99" not in table  # measured by none


def test_compare_reports_a_phase_change_without_failing_unless_a_threshold_is_set(tmp_path: Path) -> None:
    for side, queue in (("base", 0.10), ("cur", 0.14)):
        write_variant(tmp_path / side, "single", STABLE)
        _with_phases(tmp_path / side, "single", queue)
    verdicts = compare_dirs(tmp_path / "base", tmp_path / "cur")
    q = by_metric(verdicts)["server_queue_s_mean"]
    assert (q.verdict, q.threshold) == (REPORTED, None) and q.change_pct == pytest.approx(40.0)
    assert exit_code(verdicts, fail_on_missing=True) == 0
    strict = tmp_path / "strict.yaml"
    strict.write_text("server_queue_s_mean: 0.2\n")
    q = by_metric(compare_dirs(tmp_path / "base", tmp_path / "cur", load_thresholds(strict)))["server_queue_s_mean"]
    assert q.verdict == REGRESSION


def test_a_baseline_from_before_phases_is_reported_not_missing(tmp_path: Path) -> None:
    write_variant(tmp_path / "base", "single", STABLE)
    write_variant(tmp_path / "cur", "single", STABLE)
    _with_phases(tmp_path / "cur", "single", 0.1)
    verdicts = compare_dirs(tmp_path / "base", tmp_path / "cur")
    q = by_metric(verdicts)["server_queue_s_mean"]
    assert (q.verdict, q.note) == (REPORTED, "not measured in the baseline run")
    assert exit_code(verdicts, fail_on_missing=True) == 0


def test_the_decomposition_adds_up_to_the_client_latency_per_level() -> None:
    import pandas as pd

    from bench.report.charts.phases import decomposition, phases_chart

    trials = pd.DataFrame(
        [
            {"variant": "single", "level": lv, "repeat": rep, "server_queue_s_mean": q, "server_prefill_s_mean": 0.1,
             "server_decode_s_mean": 0.5, "server_e2e_s_mean": q + 0.61, "outside_engine_e2e_s": 0.02 * lv}
            for lv, q in ((1.0, 0.0), (8.0, 0.2)) for rep in (0, 1)
        ]
        + [{"variant": "old", "level": 1.0, "repeat": 0}]  # a run without phases: no bar
    )  # fmt: skip
    parts = decomposition(trials)
    assert list(zip(parts["variant"], parts["level"], strict=True)) == [("single", 1.0), ("single", 8.0)]
    totals = parts[["queue", "prefill", "decode", "front_end", "outside"]].sum(axis=1)
    assert totals.tolist() == pytest.approx([0.61 + 0.02, 0.81 + 0.16])  # the client's mean latency
    assert parts["front_end"].tolist() == pytest.approx([0.01, 0.01])
    assert len(phases_chart(trials).axes[0].patches) == 2 * 5
    assert decomposition(trials[trials["variant"] == "old"]).empty
