#!/bin/bash
# run from the repo root on the device after all parts are in /tmp/xfer (from ../shared/gpu/setup.sh, + AWQ)
set -e
T0=$(date +%s)
cat /tmp/xfer/part.* > /tmp/bundle.tar
sha256sum -c .vb/bundle.sha256
mkdir -p /tmp/b && tar xf /tmp/bundle.tar -C /tmp/b && rm -f /tmp/bundle.tar /tmp/xfer/part.*
(cd /tmp/b && sha256sum -c SHA256SUMS)
mkdir -p /tmp/site
xz -dc -T0 /tmp/b/site.tar.xz | tar x -C /tmp/site
xz -dc -T0 /tmp/b/vllm.tar.xz | tar x -C /tmp/site
tar xf /tmp/b/awq.tar -C /tmp && mv /tmp/smollm2-135m-awq /tmp/smol-awq
echo "SETUP extracted in $(( $(date +%s) - T0 )) s; /tmp/site $(du -sh /tmp/site | cut -f1)"
export PYTHONPATH=/tmp/site
python3 .vb/convert.py /tmp/b SmolLM2-135M-Instruct.Q4_1.gguf /tmp/smol 2>&1 | grep -v "it/s\]" | tail -3
echo "SETUP done in $(( $(date +%s) - T0 )) s"
