#!/bin/bash
# Device side of issue 18, re-runnable: set up once, run the jobs not done yet (bench resumes), pack results.
# usage (repo root on the device): bash .vb/go.sh [SECONDS_FOR_THIS_CALL] [NIGHTLY_STARTS]
set -u
T0=$(date +%s); DEADLINE=$(( T0 + ${1:-560} )); NSTARTS=${2:-2}
left() { echo $(( DEADLINE - $(date +%s) )); }
R=/tmp/res; mkdir -p $R
if [ ! -f /tmp/smol/config.json ]; then
  bash .vb/setup.sh 2>&1 | tee -a $R/setup.log || exit 1
fi
cd .vb/snap && echo "bench at commit $(cat COMMIT)"
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 -c "import hydra, omegaconf, openai, pynvml, prometheus_client, ruptures, scipy, pandas, matplotlib, vllm, torch; print('imports ok: vllm', vllm.__version__, 'torch', torch.__version__)" || exit 1
nvidia-smi -L; nvidia-smi --query-gpu=driver_version,memory.total,clocks.max.sm --format=csv
echo "epoch $(date +%s.%N) local $(date '+%Y/%m/%d %H:%M:%S.%N %Z')" >> $R/clock_marks.txt
nvidia-smi --query-gpu=timestamp,utilization.gpu,utilization.memory,memory.used,memory.total,power.draw,clocks.sm --format=csv,nounits -lms 500 > $R/nvidia_smi.$T0.csv &
SMI=$!
COMMON="engine=cuda model=/tmp/smol"
job() {  # name, min seconds it needs, command...
  local name=$1 need=$2; shift 2
  if [ -f $R/$name.done ]; then return 0; fi
  local L=$(left)
  if [ "$L" -lt "$need" ]; then echo "GO: $L s left, $name not started"; return 1; fi
  echo "GO: $name starts with $L s left"; echo "$(date +%s.%N) start $name" >> $R/clock_marks.txt
  timeout -s INT -k 30 $(( L - 40 )) "$@" 2>&1 | tee -a $R/$name.log | grep -v "it/s\]$"
  local rc=${PIPESTATUS[0]}
  echo "GO: $name exit $rc at $(date +%s)" | tee -a $R/clock_marks.txt
  [ "$rc" = 0 ] && touch $R/$name.done
}
job decoding 200 python3 -m bench run +sweep=decoding $COMMON load=concurrency_sweep 'load.levels=[1,4,16,64]' dataset.sample_size=null out_dir=$R/decoding
job quantization 150 python3 -m bench run +sweep=quantization $COMMON dataset.sample_size=null out_dir=$R/quantization
job nightly 240 python3 -m bench run +sweep=nightly $COMMON repeats.starts=$NSTARTS repeats.passes=3 out_dir=$R/nightly
job crosscheck 200 python3 benchmarks/crosscheck.py --engine cuda --model /tmp/smol --n 300 --rounds 3 --concurrency 1,8 --json $R/crosscheck.json
kill $SMI
for f in $R/*/*/server.log; do tail -300 "$f" > "$(dirname "$f")/server_tail.log"; done
tar czf $OUT/gpu_results.tar.gz -C $R --exclude=server.log --exclude=.hydra .
tar czf $OUT/server_logs.tar.gz -C $R $(cd $R && ls -d */*/server.log */*/.hydra 2>/dev/null)
ls -la $OUT; du -sh $R/* | tail -20; echo "GO: call done in $(( $(date +%s) - T0 )) s"
