#!/bin/sh
# Data-parallel training throughput and memory per rank: one process (all cores) against dp2 under
# mpirun (half the cores each) at ZeRO 0-3, same preset, batch and seed. Prints tokens/s (median of
# steps 2..S, the slowest rank's time) and the trainer's memory line (the planner's prediction for
# the layout beside the measured peak per rank).
# usage: bench/dist-train.sh [preset] [steps] [global-batch] [threads] [seq] [extra train flags]   (defaults: small 8 16 2, the model's context)
# The dp lines also give the median exposed communication per step (rank 0 blocked on collectives).
set -eu
cd "$(dirname "$0")/.."
PRESET=${1:-small}; STEPS=${2:-8}; GB=${3:-16}; THREADS=${4:-2}; SEQ=${5:-}; EXTRA=${6:-}
OUT=$(mktemp -d); trap 'rm -rf "$OUT"' EXIT
HALF=$((THREADS / 2)); [ "$HALF" -ge 1 ] || HALF=1
ARGS="train --preset $PRESET --steps $STEPS --global-batch $GB --eval-every 0 --save-every 0 --seed 1${SEQ:+ --seq $SEQ}${EXTRA:+ $EXTRA}"
median() { node -e '
  const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse).filter((r) => typeof r.tokensPerSec === "number").slice(1);
  const t = rows.map((r) => r.tokensPerSec).sort((a, b) => a - b);
  const l = rows[rows.length - 1];
  const w = rows.filter((r) => typeof r.commWaitS === "number").sort((a, b) => a.commWaitS - b.commWaitS);
  const m = w[w.length >> 1];
  const exposed = m ? `, exposed communication ${m.commWaitS.toFixed(3)} s/step (${(100 * m.commWaitS / m.stepS).toFixed(1)}%)` : "";
  console.log(`${Math.round(t[t.length >> 1])} tok/s (last loss ${l.loss.toFixed(4)})${exposed}`);' "$1/metrics.jsonl"; }
echo "== $PRESET, $STEPS steps, global batch $GB${SEQ:+, seq $SEQ}, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%F)"
node bin/zili $ARGS --threads "$THREADS" --out "$OUT/one" 2>"$OUT/one.log"
echo "one process, $THREADS threads: $(median "$OUT/one")"
for Z in 0 1 2 3; do
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 node bin/zili $ARGS --threads "$HALF" --dp 2 --zero "$Z" --out "$OUT/z$Z" 2>"$OUT/z$Z.log"
  echo "dp2 ZeRO-$Z, $HALF thread(s) per rank: $(median "$OUT/z$Z")"
  grep 'memory per rank' "$OUT/z$Z.log" | sed 's/^train: /  /'
done
