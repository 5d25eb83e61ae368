#!/usr/bin/env bash
# Small real nightlies for results/reference/history/ (issue 15): bash scripts/history_nights.sh OUT FIRST LAST [CHANGE_AT]
# Night N runs spec_ngram on the CPU engine, 10 questions, 3 passes, into OUT/night-NN (~2.5 min on 2 cores).
# From night CHANGE_AT on, speculation is off (server.speculative_config=null): the real change, an engine
# argument, that the history must find. The batch FIRST..LAST holds /tmp/bench-real.lock throughout, so no
# other real run on a shared machine times against it: keep a batch under 15 minutes (5 nights).
set -euo pipefail
out=$1 first=$2 last=$3 change_at=${4:-8}
exec 9>/tmp/bench-real.lock
flock 9
for n in $(seq "$first" "$last"); do
  night=$(printf 'night-%02d' "$n")
  extra=()
  if [ "$n" -ge "$change_at" ]; then extra=(server.speculative_config=null); fi
  echo "$(date -u +%FT%TZ) $night ${extra[*]:-}" >&2
  .venv/bin/python -m bench run server=spec_ngram dataset.sample_size=10 repeats=3 \
    out_dir="$out/$night" run_name=spec_ngram "${extra[@]}" 9>&-
done
