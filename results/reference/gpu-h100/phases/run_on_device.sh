#!/bin/bash
# Device side of issue 24: set up once, run what is not done yet (bench resumes), pack the results.
# usage (repo root on the device): bash .vb/go.sh [SECONDS_FOR_THIS_CALL]
set -u
T0=$(date +%s); DEADLINE=$(( T0 + ${1:-560} ))
R=/tmp/res; mkdir -p $R
if [ ! -f /tmp/smol/config.json ]; then bash .vb/setup.sh 2>&1 | tee -a $R/setup.log || exit 1; fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0
python3 -c "import hydra, omegaconf, openai, pynvml, prometheus_client, ruptures, scipy, pandas, matplotlib, vllm, torch, opentelemetry.proto, aiohttp; print('imports ok: vllm', vllm.__version__, 'torch', torch.__version__)" || exit 1
nvidia-smi -L; nvidia-smi --query-gpu=driver_version,memory.total --format=csv
git log -1 --format=%H 2>/dev/null || true
L=$(( DEADLINE - $(date +%s) - 30 ))
[ "$L" -gt 120 ] || { echo "GO: only $L s left"; exit 0; }
timeout -s INT -k 20 $L python3 -m bench run -m server=single,spec_ngram engine=cuda model=/tmp/smol \
  load=concurrency_sweep 'load.levels=[1,64]' dataset.sample_size=null repeats.starts=2 repeats.passes=2 \
  tracing.enabled=true out_dir=$R/phases 2>&1 | grep -v "req\]$" | tail -40
echo "GO: bench exit ${PIPESTATUS[0]} after $(( $(date +%s) - T0 )) s"
for f in $R/phases/*/server.log; do [ -f "$f" ] && tail -300 "$f" > "$(dirname "$f")/server_tail.log"; done
tar czf $OUT/gpu_phases.tar.gz -C $R --exclude=server.log --exclude=.hydra . 2>/dev/null
ls -la $OUT
