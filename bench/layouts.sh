#!/bin/sh
# Every layout zili runs, on this machine: tokens/s, the step split into compute / exposed
# communication / pipeline bubble, and the peak memory per rank against the planner's prediction
# (bench/layouts-summary.ts explains the columns). Each layout trains `tiny` for S steps of global
# batch 8, micro-batch 2, seed 1, 1 thread per rank, under mpirun (--oversubscribe: all ranks share
# this machine's cores); the best measured step counts. Then the pipeline bubble against the
# planner's formula, on `small`'s layer shape (bench/pipeline-bubble.ts). About 6-8 minutes on the
# 2-core dev VM under load.
# usage: bench/layouts.sh [steps] [preset]   (defaults: 5 tiny)
set -eu
cd "$(dirname "$0")/.."
STEPS=${1:-5}; PRESET=${2:-tiny}; GB=8; MB=2
npx tsc -p tsconfig.json
OUT=$(mktemp -d); trap 'rm -rf "$OUT"' EXIT
MPI="mpirun --allow-run-as-root --oversubscribe --bind-to none"
ARGS="train --preset $PRESET --steps $STEPS --global-batch $GB --micro-batch $MB --eval-every 0 --save-every 0 --seed 1 --threads 1"
echo "== $PRESET, $STEPS steps, global batch $GB, micro-batch $MB; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u '+%F %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
run() { # label ranks flags...
  L=$1; N=$2; shift 2
  D="$OUT/$(echo "$L" | tr -c 'a-zA-Z0-9\n' '_')"
  if [ "$N" = 1 ]; then node bin/zili $ARGS "$@" --out "$D" >"$D.log" 2>&1 || echo "$L failed (log: $D.log)"
  else $MPI -np "$N" node bin/zili $ARGS "$@" --out "$D" >"$D.log" 2>&1 || echo "$L failed (log: $D.log)"; fi
  echo "$L=$D=$*" >>"$OUT/specs"
}
run "one process" 1
for Z in 0 1 2 3; do run "dp2 ZeRO-$Z" 2 --dp 2 --zero "$Z"; done
run "tp2" 2 --tp 2
run "tp2+sp" 2 --tp 2 --sp
run "pp2 1f1b" 2 --pp 2 --schedule 1f1b
run "pp2 gpipe" 2 --pp 2 --schedule gpipe
run "pp2 x vpp2 interleaved" 2 --pp 2 --vpp 2
run "tp2 x dp2" 4 --tp 2 --dp 2
run "cp2" 2 --cp 2
run "tiny-moe dp2 x ep2" 2 --preset tiny-moe --dp 2 --ep 2
run "cp2 x tp2+sp" 4 --cp 2 --tp 2 --sp
run "tiny-moe tp2 x dp2 x ep2" 4 --preset tiny-moe --tp 2 --dp 2 --ep 2
run "tiny-moe cp2 x dp2 x ep2 ZeRO-1" 4 --preset tiny-moe --cp 2 --dp 2 --ep 2 --zero 1
node dist/bench/layouts-summary.js "$PRESET" "$GB" "$MB" "$OUT/specs"
echo
echo "== pipeline bubble, measured vs the planner's formula (pp 2; each rank bound to a core of its own)"
if [ "$(nproc)" -ge 2 ]; then BIND="--bind-to core --map-by core"; else BIND="--oversubscribe --bind-to none"; fi
mpirun --allow-run-as-root $BIND -np 2 node dist/bench/pipeline-bubble.js
