"""A weightless model folder shaped like a larger Llama, for timing parallelism with `--load-format dummy`.

Usage: python -m bench.run.make_shape_model SRC_HF_DIR OUT_DIR [--like llama-3.1-8b]

vLLM's `--load-format dummy` fills the weights with random values, so the server does the same work per
token as the real model of that shape without the weights being on disk (no hub needed). The tokenizer
and chat template come from SRC_HF_DIR (e.g. the bundled SmolLM2 folder); the vocabulary stays the
tokenizer's. Answers are noise: use such a model for speed and GPU use, never for quality.

    python -m bench run +sweep=parallel engine=cuda model=OUT_DIR 'server.extra_args=[--load-format,dummy]'
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

# Published architecture sizes; the vocabulary is the tokenizer's, set below.
SHAPES: dict[str, dict[str, object]] = {
    "llama-3.1-8b": {
        "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "rope_theta": 500000.0,
    },
    # SmolLM2-135M with 8 attention heads instead of 9, so that tensor parallel 2 can split them: the CPU
    # engine's parallel sweep serves this shape (same layers, widths and vocabulary; 8 x 64 attention width).
    "smollm2-135m-8heads": {
        "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
        "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 64, "tie_word_embeddings": True,
    },
    "llama-3.2-1b": {
        "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "rope_theta": 500000.0,
    },
}  # fmt: skip
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "generation_config.json",
)


def make(src: Path, out: Path, like: str) -> None:
    config = json.loads((src / "config.json").read_text())
    if config.get("model_type") != "llama":
        raise SystemExit(f"{src} is a {config.get('model_type')} model; the shapes here are Llama's")
    config |= {"tie_word_embeddings": False, "torch_dtype": "bfloat16"} | SHAPES[like] | {"bench_shape_of": like}
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    for name in TOKENIZER_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, out / name)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--like", choices=sorted(SHAPES), default="llama-3.1-8b")
    a = p.parse_args()
    make(a.src, a.out, a.like)
    print(f"{a.out}: {a.like} shape, tokenizer of {a.src}")
