"""SLO checks per request, goodput, and where an answer first differs from the baseline's."""

from __future__ import annotations

import pytest

from bench.core import slo


def rec(**kw):
    base = {"question_id": "q1", "error": None, "ttft_s": 0.1, "tpot_s": 0.02, "latency_s": 0.5, "output_tokens": 10,
            "f1": 1.0, "answer": "Paris"}  # fmt: skip
    return base | kw


def test_each_objective_is_judged_and_a_failed_request_meets_none():
    s = {"ttft_ms": 200, "tpot_ms": 30, "latency_ms": 1000, "min_f1": 0.5}
    assert slo.check(rec(), s, None, False) == {"ttft": True, "tpot": True, "latency": True, "f1": True}
    assert slo.check(rec(ttft_s=0.3, f1=0.2), s, None, False) == {"ttft": False, "tpot": True, "latency": True,
                                                                  "f1": False}  # fmt: skip
    assert not any(slo.check(rec(error="HTTP 500"), s, None, False).values())
    # One output token: no time per token after the first, nothing to miss; more tokens and no TPOT: missed.
    assert slo.check(rec(tpot_s=None, output_tokens=1), {"tpot_ms": 30}, None, False) == {"tpot": True}
    assert slo.check(rec(tpot_s=None, output_tokens=5), {"tpot_ms": 30}, None, False) == {"tpot": False}


def test_a_record_is_judged_as_its_row_read_back():
    """The runner's RequestRecords and the analyzer's rows (dicts from requests.jsonl) meet the same checks."""
    from dataclasses import asdict

    from bench.core.records import RequestRecord

    records = [
        RequestRecord(i, f"q{i}", "en", "?", "?", ["Paris"], "Paris" if i else "Lyon", 0.0, 1.0, 0.2 + 0.4 * i,
                      0.1 * i, [], 0.02, 10, 8, "stop", "HTTP 500" if i == 3 else None, 1.0, 1.0 - 0.3 * i)
        for i in range(4)
    ]  # fmt: skip
    s = {"ttft_ms": 150, "latency_ms": 1000, "min_f1": 0.5, "identical_to_baseline": True}
    answers = {"q0": "Paris", "q1": "Paris", "q2": "Paris"}
    assert slo.check(records[1], s, "Paris", True) == slo.check(asdict(records[1]), s, "Paris", True)
    as_records, as_rows = (slo.summarize(rs, s, 2.0, answers) for rs in (records, [asdict(r) for r in records]))
    assert as_records == as_rows and as_records["slo_met_share"] == 0.25


def test_goodput_counts_requests_meeting_every_slo_per_second():
    records = [rec(), rec(ttft_s=0.5), rec(error="Timeout"), rec(latency_s=2.0)]
    out = slo.summarize(records, {"ttft_ms": 200, "latency_ms": 1000}, wall_s=2.0)
    assert out["goodput_req_per_s"] == pytest.approx(0.5)  # 1 of 4 met both, in 2 s
    assert out["slo_met_share"] == pytest.approx(0.25)
    assert out["slo_ttft_share"] == pytest.approx(0.5) and out["slo_latency_share"] == pytest.approx(0.5)
    assert slo.summarize(records, {}, 2.0) == {}  # no SLO set: no goodput


def test_identical_answer_slo_needs_the_baselines_answers():
    records = [rec(question_id="a", answer="Paris"), rec(question_id="b", answer="Lyon"), rec(question_id="c")]
    s = {"identical_to_baseline": True}
    out = slo.summarize(records, s, 1.0, {"a": "Paris", "b": "Paris"})  # the baseline never answered c
    assert out["slo_identical_share"] == pytest.approx(1 / 3)
    assert slo.summarize(records, s, 1.0, None)["slo_identical_share"] is None  # no baseline run: not judged


@pytest.mark.parametrize(
    ("answer", "baseline", "where"),
    [
        ("The capital is Paris.", "The capital is Lyon.", (15, 3)),
        ("The cap", "The capital", (7, 1)),  # a prefix differs where it ends, inside the second word
        ("Paris", "paris", (0, 0)),
        ("Paris is big", "Paris", (5, 1)),
    ],
)
def test_first_difference(answer, baseline, where):
    assert slo.first_difference(answer, baseline) == where


def test_baseline_answers_are_matched_at_the_same_load_level():
    # A batching engine is not batch-invariant: the baseline itself answered q1 differently at 64 in flight.
    base = [rec(level=1.0, answer="Paris"), rec(level=1.0, answer="Paris", repeat=1), rec(level=64.0, answer="Paris!"),
            rec(level=64.0, answer="Paris!", repeat=1), rec(level=64.0, answer="Lyon", repeat=2)]  # fmt: skip
    answers = slo.baseline_answers(base)
    assert slo.baseline_answer(answers, "q1", 1) == "Paris"
    assert slo.baseline_answer(answers, "q1", 64.0) == "Paris!"  # the most common answer at that level
    assert slo.baseline_answer(answers, "q1", 16) == "Paris"  # a level the baseline did not run: its lowest
    assert slo.baseline_answer(answers, "q2", 1) is None
    assert slo.baseline_answer(slo.baseline_answers([rec(level=64.0, answer="x"), rec(level=4.0, answer="y")]),
                               "q1", None) == "y"  # fmt: skip


def test_identical_share_of_a_load_sweep_compares_level_with_level():
    import pandas as pd

    from bench.analyze.tables import identical_share

    rows = [rec(variant=v, level=lv, answer=a) for v in ("single", "spec") for lv, a in ((1.0, "A"), (64.0, "B"))]
    share = identical_share(pd.DataFrame(rows), "single")
    # Matched by question alone, each answer would meet both of the baseline's: half would differ.
    assert share.to_dict() == {"single": 1.0, "spec": 1.0}
