"""Prometheus parsing and the counter arithmetic behind acceptance rates."""

from __future__ import annotations

import pytest

from bench.run.prometheus import delta, parse, summarize

BEFORE = """\
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="m"} 100.0
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="m"} 1000.0
# TYPE vllm:spec_decode_num_drafts_total counter
vllm:spec_decode_num_drafts_total{engine="0",model_name="m"} 10.0
# TYPE vllm:spec_decode_num_draft_tokens_total counter
vllm:spec_decode_num_draft_tokens_total{engine="0",model_name="m"} 50.0
# TYPE vllm:spec_decode_num_accepted_tokens_total counter
vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="m"} 20.0
# TYPE vllm:spec_decode_num_accepted_tokens_per_pos_total counter
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="0"} 9.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="1"} 6.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
"""
AFTER = (
    BEFORE.replace("} 100.0", "} 180.0")
    .replace("} 1000.0", "} 1400.0")
    .replace('drafts_total{engine="0",model_name="m"} 10.0', 'drafts_total{engine="0",model_name="m"} 30.0')
    .replace("} 50.0", "} 150.0")
    .replace(
        'accepted_tokens_total{engine="0",model_name="m"} 20.0', 'accepted_tokens_total{engine="0",model_name="m"} 60.0'
    )
    .replace('position="0"} 9.0', 'position="0"} 29.0')
    .replace('position="1"} 6.0', 'position="1"} 16.0')
)


def test_parse_sums_labels_but_keeps_positions():
    snap = parse(BEFORE)
    assert snap["vllm:generation_tokens_total"] == 100.0
    assert snap["vllm:spec_decode_num_accepted_tokens_per_pos_total{position=1}"] == 6.0
    assert snap["vllm:kv_cache_usage_perc"] == 0.25


def test_delta_keeps_counters_only():
    d = delta(parse(BEFORE), parse(AFTER))
    assert d["vllm:generation_tokens_total"] == 80.0
    assert "vllm:kv_cache_usage_perc" not in d


def test_acceptance_figures():
    s = summarize(parse(BEFORE), parse(AFTER), kv_peak=0.5)
    assert s["generation_tokens"] == 80.0 and s["prompt_tokens"] == 400.0
    assert s["spec_acceptance_rate"] == pytest.approx(40 / 100)
    assert s["spec_mean_acceptance_length"] == pytest.approx(1 + 40 / 20)
    assert s["spec_acceptance_per_position"] == pytest.approx([20 / 20, 10 / 20])
    assert s["kv_cache_usage_peak"] == 0.5


def test_no_spec_figures_without_drafts_and_unavailable_scrape():
    plain = BEFORE.split("# TYPE vllm:spec_decode_num_drafts_total")[0]
    assert "spec_acceptance_rate" not in summarize(parse(plain), parse(plain), None)
    assert summarize(None, parse(plain), None) == {"available": False}
