"""Pre-flight: what is refused or filtered before a server starts, decided from the machine and the data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.core.config import DatasetConfig, RequestConfig, ServerConfig
from bench.core.cpu import WNA16_KERNEL, CpuCaps
from bench.core.errors import DatasetError
from bench.run import preflight
from bench.run.dataset import load_dataset
from bench.run.finish import final_status
from bench.run.models import resolve_model

ROOT = Path(__file__).resolve().parents[1]
SERVER = ServerConfig(model="/m")  # max_model_len 2048


def _caps(avx512: bool) -> CpuCaps:
    return CpuCaps(
        arch="x86_64", avx2=True, avx512f=avx512, avx512=avx512, avx512_bf16=avx512, amx=False,
        kernel_library="_C" if avx512 else "_C_AVX2", kernels=(WNA16_KERNEL,) if avx512 else (),
    )  # fmt: skip


def _w4a16(tmp_path: Path) -> str:
    group = {"weights": {"num_bits": 4, "group_size": 64}, "input_activations": None, "targets": ["Linear"]}
    q = {"quant_method": "compressed-tensors", "config_groups": {"group_0": group}}
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": q}))
    return str(tmp_path)


def test_w4a16_is_refused_on_a_build_without_its_kernel_and_runs_on_one_with_it(tmp_path):
    model = _w4a16(tmp_path)
    reason = preflight.missing_kernel(model, model, "cpu", _caps(avx512=False))
    assert reason and reason.startswith("not runnable here:") and WNA16_KERNEL in reason and "_C_AVX2" in reason
    assert preflight.missing_kernel(model, model, "cpu", _caps(avx512=True)) is None
    assert preflight.missing_kernel(model, model, "cuda", _caps(avx512=False)) is None  # a GPU has its own kernels
    # The bundled AWQ model is known to be W4A16 before it is made (minutes of quantization saved).
    assert preflight.missing_kernel("bundled:smollm2-135m-awq", None, "cpu", _caps(avx512=False))


def test_only_4bit_weight_only_checkpoints_need_the_kernel(tmp_path):
    assert preflight.weight_only_4bit(_w4a16(tmp_path), None)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert not preflight.weight_only_4bit(str(tmp_path), None)
    w8a8 = {"weights": {"num_bits": 8}, "input_activations": {"num_bits": 8}}
    q = {"quant_method": "compressed-tensors", "config_groups": {"g": w8a8}}
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": q}))
    assert not preflight.weight_only_4bit(str(tmp_path), None)
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "awq", "bits": 4}}))
    assert preflight.weight_only_4bit(str(tmp_path), None)


@pytest.mark.parametrize(
    ("status", "n", "failed", "expected"),
    [("ok", 10, 0, "ok"), ("ok", 10, 1, "partial"), ("ok", 10, 10, "failed"), ("partial", 10, 3, "partial"),
     ("interrupted", 4, 1, "interrupted"), ("ok", 0, 0, "ok")],
)  # fmt: skip
def test_a_replay_with_failed_requests_is_never_ok(status, n, failed, expected):
    assert final_status(status, n, failed) == expected


def _long_zh() -> list:
    return load_dataset(DatasetConfig(name="long_zh", path=str(ROOT / "bench" / "data" / "long_zh.json")))


def test_the_long_passage_set_has_prompts_longer_than_the_default_context():
    """Counted with the bundled model's real tokenizer and chat template, as the server will."""
    items = _long_zh()
    model = resolve_model("bundled:smollm2-135m")
    server = ServerConfig(model=model)
    messages = [[{"role": "user", "content": i.user_prompt()}] for i in items]
    counts = preflight.prompt_tokens(model, messages)
    assert len(counts) == len(items) and all(n > len(i.context) for n, i in zip(counts, items, strict=True))
    fit = preflight.fit_prompts(items, counts, server, RequestConfig(), "skip")
    long_ids = {i.id for i in items if len(i.context) > 1000}  # the two long passages, 8 of 10 questions
    assert set(fit.too_long) == long_ids and len(long_ids) == 8
    assert fit.limit == 2048 - 32 and min(fit.too_long.values()) > fit.limit
    record = fit.as_dict()
    assert record["n_too_long"] == 8 and record["longest_tokens"] == max(counts) and record["policy"] == "skip"
    # The whole context fits a longer max_model_len.
    assert not preflight.fit_prompts(
        items, counts, ServerConfig(model=model, max_model_len=4096), RequestConfig(), "skip"
    ).too_long


def test_the_policy_skips_fails_or_keeps_the_long_prompts():
    items = _long_zh()
    counts = [3000 if len(i.context) > 1000 else 400 for i in items]
    fit = preflight.fit_prompts(items, counts, SERVER, RequestConfig(), "skip")
    kept, note = preflight.apply_policy(items, fit)
    assert [i.id for i in kept] == ["lz3-1", "lz3-2"] and note and "8 of 10 prompts" in note and "skipped" in note
    assert "longest 3000" in note
    keep = preflight.fit_prompts(items, counts, SERVER, RequestConfig(), "keep")
    assert preflight.apply_policy(items, keep)[0] == items
    fail = preflight.fit_prompts(items, counts, SERVER, RequestConfig(), "fail")
    with pytest.raises(DatasetError, match="8 of 10 prompts do not fit .* dataset.too_long=fail"):
        preflight.apply_policy(items, fail)
    every = preflight.fit_prompts(items, [3000] * len(items), SERVER, RequestConfig(), "skip")
    with pytest.raises(DatasetError, match="none left to replay"):
        preflight.apply_policy(items, every)


def test_the_prompt_limit_leaves_room_for_the_requests_max_tokens():
    items = _long_zh()
    counts = [1500] * len(items)
    assert not preflight.fit_prompts(items, counts, SERVER, RequestConfig(max_tokens=500), "skip").too_long
    fit = preflight.fit_prompts(items, counts, SERVER, RequestConfig(max_tokens=600), "skip")
    assert fit.limit == 2048 - 600 and len(fit.too_long) == len(items)


def test_awq_of_a_local_model_without_its_checkpoint_says_how_to_make_it(tmp_path):
    src = tmp_path / "my-model"
    src.mkdir()
    reason = preflight.missing_awq(f"{src}-awq")
    assert reason and f"{src}-awq" in reason and "make_awq.py" in reason and "setup.sh awq" in reason
    (tmp_path / "my-model-awq").mkdir()
    assert preflight.missing_awq(f"{src}-awq") is None  # made: vLLM serves it
    assert preflight.missing_awq("bundled:smollm2-135m-awq") is None  # made on first use
    assert preflight.missing_awq("org/model-awq") is None  # a hub id: vLLM's to find
