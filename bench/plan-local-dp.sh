#!/usr/bin/env bash
# Does `hardware: "local"` predict zili's own data-parallel run? In one run: `zili plan measure-ranks`
# (the communicator and the ranks' share of the cores, stored for the planner), then `rounds` times
# `zili plan estimate` for dp2 of the reference config (6 layers, d_model 384, 6 heads, SwiGLU 1024,
# vocab 4096, seq 256, global batch 8, f32; this machine measured afresh each time) followed by
# `mpirun -np 2 bin/zili train ... --dp 2` on the same config: the median of the slowest rank's step
# time over steps 2..STEPS (the first is skipped). Results go in bench/RESULTS.md and docs/planner.md.
#   usage: npx tsc -p . && bench/plan-local-dp.sh [rounds=2] [steps=4]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
STEPS=${2:-4}
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cat > "$out/input.json" <<'JSON'
{"model": {"name": "small", "layers": 6, "hidden": 384, "heads": 6, "ffnHidden": 1024, "ffnKind": "swiglu", "vocab": 4096, "seqLen": 256},
 "hardware": "local", "precision": "f32", "chips": 2, "layout": {"dp": 2, "microBatch": 4, "globalBatch": 8}}
JSON
echo "# $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, node $(node --version)"
echo "# measure-ranks (load $(cut -d' ' -f1-3 /proc/loadavg)):"
"${MPIRUN[@]}" node bin/zili plan measure-ranks | sed 's/^/#   /'
echo "| round | load (1 min) | predicted step s | GEMM / attention / elementwise+optimizer / dp s | measured step s (median of steps 2-$STEPS, slowest rank) | predicted / measured |"
echo "|---|---|---|---|---|---|"
for r in $(seq "$ROUNDS"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  node bin/zili plan estimate --input "$out/input.json" --json > "$out/estimate.log"
  tail -1 "$out/estimate.log" > "$out/estimate.json"
  grep '^step ' "$out/estimate.log" > "$out/estimate.txt"
  "${MPIRUN[@]}" node bin/zili train --preset small --seq 256 --global-batch 8 --dp 2 --steps "$STEPS" \
    --eval-every 0 --save-every 0 --warmup 1 --out "$out/run-$r" > "$out/train-$r.log" 2>&1
  node -e '
    const fs = require("node:fs");
    const [est, txt, metrics, r, load] = process.argv.slice(1);
    const e = JSON.parse(fs.readFileSync(est, "utf8"));
    const parts = fs.readFileSync(txt, "utf8").trim();
    const steps = fs.readFileSync(metrics, "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((m) => m.stepS !== undefined);
    const s = steps.slice(1).map((m) => m.stepS).sort((a, b) => a - b);
    const med = s[Math.floor(s.length / 2)];
    console.log(`| ${r} | ${load} | ${e.stepTimeS.toFixed(2)} | ${parts.replace(/^step \S+ s \(\d+ micro-batches\): /, "")} | ${med.toFixed(2)} (${s.map((x) => x.toFixed(1)).join(", ")}) | ${(e.stepTimeS / med).toFixed(2)} |`);
  ' "$out/estimate.json" "$out/estimate.txt" "$out/run-$r/metrics.jsonl" "$r" "$load"
done
