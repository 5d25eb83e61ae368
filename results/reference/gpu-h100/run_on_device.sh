#!/bin/bash
# Device side of issue 9, re-runnable: set up once, run what is not done yet (bench resumes), pack results into $OUT.
# usage (repo root on the device): bash .vb/go.sh [SECONDS_FOR_THIS_CALL]
set -u
T0=$(date +%s); DEADLINE=$(( T0 + ${1:-560} ))
left() { echo $(( DEADLINE - $(date +%s) )); }
R=/tmp/res; mkdir -p $R
if [ ! -f /tmp/smol/config.json ]; then
  bash .vb/setup.sh 2>&1 | tee -a $R/setup.log || exit 1
fi
# bench from a snapshot of the checkout's HEAD commit (.vb/snap): others edit the live tree meanwhile.
cd .vb/snap && echo "bench at commit $(cat COMMIT)"
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 -c "import hydra, omegaconf, openai, pynvml, prometheus_client, tqdm, pandas, matplotlib, vllm; print('imports ok: vllm', vllm.__version__, 'openai', openai.__version__, 'pandas', pandas.__version__)" || exit 1
nvidia-smi -L; nvidia-smi --query-gpu=driver_version,memory.total,clocks.max.sm --format=csv
# nvidia-smi beside bench's own NVML sampler, for the same period; epoch marks align its local-time stamps.
SMI_FILE=$R/nvidia_smi.$T0.csv
echo "epoch $(date +%s.%N) local $(date '+%Y/%m/%d %H:%M:%S.%N %Z')" >> $R/clock_marks.txt
nvidia-smi --query-gpu=timestamp,utilization.gpu,utilization.memory,memory.used,memory.total,power.draw,clocks.sm --format=csv,nounits -lms 500 > $SMI_FILE &
SMI=$!
COMMON="engine=cuda model=/tmp/smol repeats=1 dataset.sample_size=null +engines.cuda.env.VLLM_USE_FLASHINFER_SAMPLER=0"
for SWEEP in decoding parallel; do
  L=$(left)
  if [ "$L" -lt 200 ]; then echo "GO: $L s left, $SWEEP not started"; break; fi
  echo "GO: $SWEEP starts with $L s left"
  echo "$(date +%s.%N) start $SWEEP" >> $R/clock_marks.txt
  timeout -s TERM -k 60 $(( L - 70 )) python3 -m bench run +sweep=$SWEEP $COMMON out_dir=$R/$SWEEP 2>&1 | tee -a $R/$SWEEP.log | grep -v "it/s\]$"
  echo "GO: $SWEEP exit ${PIPESTATUS[0]} at $(date +%s)" | tee -a $R/clock_marks.txt
done
kill $SMI
# What comes back: results without full server logs (200-line tails instead), plus the full logs gzipped apart.
for f in $R/*/*/server.log; do tail -200 "$f" > "$(dirname "$f")/server_tail.log"; done
tar czf $OUT/gpu_results.tar.gz -C $R --exclude=server.log --exclude=.hydra .
tar czf $OUT/server_logs.tar.gz -C $R $(cd $R && ls -d */*/server.log */*/.hydra 2>/dev/null)
ls -la $OUT; du -sh $R/*
