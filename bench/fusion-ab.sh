#!/usr/bin/env bash
# Before/after of the fused Q/K/V and gate/up projections (src/nn/fused-projection.ts) on the
# reference config, in one run: `bin/zili bench train` alternately with ZILI_UNFUSED_PROJECTIONS=1
# (one GEMM per weight, the old path) and without (one GEMM per group), REPEAT rounds per dtype.
# Prints each run's tokens/s, CPU seconds per step (steadier than wall time on a shared machine),
# load average and step profile, then the best of each side.
#
# Usage: bench/fusion-ab.sh [--repeat N] [--steps N] [--dtypes "f32 bf16"]
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=2 steps=4 dtypes="bf16 f32"
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) repeat="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --dtypes) dtypes="$2"; shift 2 ;;
    --help|-h) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fusion-ab: unexpected argument '$1'" >&2; exit 2 ;;
  esac
done
ARGS=(--layers 6 --d-model 384 --heads 6 --kv-heads 6 --ffn-hidden 1024 --vocab 4096 --seq 256 --batch 8 --steps "$steps" --warmup 1)
field() { node -e 'const j = JSON.parse(require("fs").readFileSync(0, "utf8").trim().split("\n").pop()); console.log(j[process.argv[1]])' "$1"; }
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(date -u +%FT%TZ)"
for dt in $dtypes; do
  best_u=0 best_f=0 cpu_u=999999 cpu_f=999999
  for ((i = 1; i <= repeat; i++)); do
    for side in unfused fused; do
      if [ "$side" = unfused ]; then export ZILI_UNFUSED_PROJECTIONS=1; else unset ZILI_UNFUSED_PROJECTIONS; fi
      out=$(env -u OPENBLAS_L2_SIZE bin/zili bench train "${ARGS[@]}" --dtype "$dt")
      tps=$(echo "$out" | field tokensPerSec) cpu=$(echo "$out" | field stepCpuS) load=$(echo "$out" | field loadAverage)
      echo "$dt $side round $i: $tps tokens/s, $cpu CPU s/step, load $load"
      echo "$out" | grep '^step profile' | sed 's/^/    /'
      if [ "$side" = unfused ]; then
        best_u=$(node -p "Math.max($best_u, $tps)"); cpu_u=$(node -p "Math.min($cpu_u, $cpu)")
      else
        best_f=$(node -p "Math.max($best_f, $tps)"); cpu_f=$(node -p "Math.min($cpu_f, $cpu)")
      fi
    done
  done
  unset ZILI_UNFUSED_PROJECTIONS
  echo "$dt best: unfused $best_u tokens/s ($cpu_u CPU s/step), fused $best_f tokens/s ($cpu_f CPU s/step): $(node -p "($best_f / $best_u).toFixed(2)")x tokens/s, $(node -p "($cpu_u / $cpu_f).toFixed(2)")x less CPU time"
done
