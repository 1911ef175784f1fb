#!/usr/bin/env bash
# Times the README's main job as a new user runs it: a fresh clone, installed into a fresh virtual
# environment (pip install not timed), then the README's command after its `pip install -e . &&`.
# Usage: [OMP_NUM_THREADS=N] bash benchmarks/main_job.sh [quiet|busy]   (OMP_NUM_THREADS forces a thread count)
#   busy: one CPU-bound process runs beside the job the whole time (a browser tab, a second job, CI).
# Prints the wall time of the whole job and of each command. The clone goes next to this checkout
# (so that --download finds ../shared/data on this project's machines) and is removed afterwards.
set -euo pipefail
mode=${1:-quiet}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "$(dirname "$repo")/mainjob-XXXXXX")
busy_pid=""
cleanup() { [ -n "$busy_pid" ] && kill "$busy_pid" 2>/dev/null; rm -rf "$work" "$work.venv"; }
trap cleanup EXIT
git clone -q "$repo" "$work"
python -m venv --system-site-packages "$work.venv"
"$work.venv/bin/pip" install -q --no-deps -e "$work" >/dev/null
cd "$work"
line=$(grep -m1 '^pip install -e \. && ann2snn train-ann' README.md)
job=${line#pip install -e . && }
echo "main job: $job"
if [ "$mode" = quiet ]; then  # the 1-minute load average lags: wait for it to show a quiet machine
  for _ in $(seq 36); do awk '{exit !($1 < 0.5)}' /proc/loadavg && break; sleep 5; done
fi
echo "machine: $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg) before start, mode $mode"
if [ "$mode" = busy ]; then
  python -c "while True: pass" & busy_pid=$!
  sleep 2
fi
export PATH="$work.venv/bin:$PATH"
start=$(date +%s.%N)
mapfile -t parts < <(printf '%s\n' "$job" | sed 's/ && /\n/g')
for part in "${parts[@]}"; do
  t0=$(date +%s.%N)
  eval "$part" > "$work/log.txt" 2>&1 || { cat "$work/log.txt"; exit 1; }
  grep -h "^note:" "$work/log.txt" || true
  printf '%6.1f s  %s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" "$(echo $part | cut -c1-90)..."
done
printf 'total: %.1f s wall (%s)\n' "$(echo "$(date +%s.%N) - $start" | bc)" "$mode"
