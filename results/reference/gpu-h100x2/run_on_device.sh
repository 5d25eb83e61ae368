#!/bin/bash
# Device side of issue 10 (2 GPUs), re-runnable: set up once, run what is not done yet (bench resumes), pack results.
# usage (repo root on the device): bash .vb/go.sh [SECONDS_FOR_THIS_CALL]
set -u
T0=$(date +%s); DEADLINE=$(( T0 + ${1:-560} ))
left() { echo $(( DEADLINE - $(date +%s) )); }
R=/tmp/res; mkdir -p $R
if [ ! -f /tmp/smol/config.json ]; then
  bash .vb/setup.sh 2>&1 | tee -a $R/setup.log || exit 1
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .vb/h/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
[ -f /tmp/shape8b/config.json ] || python3 scripts/make_shape_model.py /tmp/smol /tmp/shape8b --like llama-3.1-8b || exit 1
python3 -c "import hydra, omegaconf, openai, pynvml, prometheus_client, tqdm, pandas, matplotlib, vllm, torch; print('imports ok: vllm', vllm.__version__, 'torch', torch.__version__, 'GPUs', torch.cuda.device_count())" || exit 1
nvidia-smi -L; nvidia-smi topo -m 2>/dev/null | head -5
SMI_FILE=$R/nvidia_smi.$T0.csv
echo "epoch $(date +%s.%N) local $(date '+%Y/%m/%d %H:%M:%S.%N %Z')" >> $R/clock_marks.txt
nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used,power.draw,clocks.sm --format=csv,nounits -lms 500 > $SMI_FILE &
SMI=$!
L=$(left)
if [ "$L" -gt 200 ]; then
  echo "GO: parallel starts with $L s left"
  timeout -s TERM -k 60 $(( L - 60 )) python3 -m bench run +sweep=parallel engine=cuda model=/tmp/shape8b \
    'server.extra_args=[--load-format,dummy]' dataset.sample_size=null out_dir=$R/parallel 2>&1 \
    | tee -a $R/parallel.log | grep -v "it/s\]$"
  echo "GO: parallel exit ${PIPESTATUS[0]} at $(date +%s)" | tee -a $R/clock_marks.txt
else
  echo "GO: $L s left, sweep not started"
fi
kill $SMI
for f in $R/*/*/server.log; do [ -f "$f" ] && tail -200 "$f" > "$(dirname "$f")/server_tail.log"; done
tar czf $OUT/gpu_results.tar.gz -C $R --exclude=server.log --exclude=.hydra .
ls -la $OUT; du -sh $R/*
