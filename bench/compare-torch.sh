#!/usr/bin/env bash
# Training throughput of zili against PyTorch eager on the same model, measured in the same run:
# `bin/zili bench train` (OpenBLAS tuning variables unset for the benchmark only, see DESIGN.md)
# and bench/torch_train.py (torch 2 CPU from scripts/setup-venv: MKL + oneDNN, scaled_dot_product_attention,
# bf16 by CPU autocast; PY=... picks another python) are run alternately REPEAT times with the same
# flags; the best tokens/s of each and their ratio are printed, the ratio also as a last JSON line.
# PyTorch runs twice per round, with libgomp's default spin-waiting and with OMP_WAIT_POLICY=PASSIVE
# (on a shared machine spinning OpenMP threads lose their core and a step can take 2-4x longer);
# its best is the baseline, so the ratio is conservative.
#
# Usage: bench/compare-torch.sh [--repeat N] [bench train flags...]
#   default flags: the reference config (6 layers, d_model 384, 6 heads, 6 kv-heads, ffn 1024,
#   vocab 4096, seq 256, batch 8, f32, 5 timed steps). Flags given replace the defaults one by one,
#   e.g. bench/compare-torch.sh --repeat 3 --dtype bf16
# Needs `npm run build` (dist/) and the native addon built.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-$(scripts/setup-venv)}"
repeat=1
declare -A flag=(
  [--layers]=6 [--d-model]=384 [--heads]=6 [--kv-heads]=6 [--ffn-hidden]=1024
  [--vocab]=4096 [--seq]=256 [--batch]=8 [--steps]=5 [--dtype]=f32
)
order=(--layers --d-model --heads --kv-heads --ffn-hidden --vocab --seq --batch --steps --dtype)
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) repeat="$2"; shift 2 ;;
    --help|-h) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*)
      [ $# -ge 2 ] || { echo "compare-torch: $1 needs a value" >&2; exit 2; }
      [ -n "${flag[$1]+x}" ] || order+=("$1")
      flag[$1]="$2"; shift 2 ;;
    *) echo "compare-torch: unexpected argument '$1'" >&2; exit 2 ;;
  esac
done
args=()
for k in "${order[@]}"; do args+=("$k" "${flag[$k]}"); done

"$PY" -c 'import torch' 2>/dev/null || { echo "compare-torch: $PY cannot import torch (run scripts/setup-venv, or set PY to a python with torch)" >&2; exit 2; }

# tokensPerSec from a command's last output line
tps() { tail -n 1 | "$PY" -c 'import json, sys; print(json.loads(sys.stdin.read())["tokensPerSec"])'; }
best() { "$PY" -c 'import sys; print(max(float(x) for x in sys.argv[1:]))' "$@"; }

zili_all=() torch_all=()
echo "config: ${args[*]}; torch $("$PY" -c 'import torch; print(torch.__version__)'); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
for ((i = 1; i <= repeat; i++)); do
  z=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE bin/zili bench train "${args[@]}" --json | tps)
  t=$("$PY" bench/torch_train.py "${args[@]}" --threads 2 --json | tps)
  tp=$(OMP_WAIT_POLICY=PASSIVE "$PY" bench/torch_train.py "${args[@]}" --threads 2 --json | tps)
  echo "run $i: zili $z tokens/s, torch $t tokens/s (OMP passive: $tp) (load $(cut -d' ' -f1-3 /proc/loadavg))"
  zili_all+=("$z") torch_all+=("$t" "$tp")
done
zb=$(best "${zili_all[@]}") tb=$(best "${torch_all[@]}")
ratio=$("$PY" -c "print(round($zb / $tb, 3))")
echo "best of $repeat: zili $zb tokens/s, PyTorch eager $tb tokens/s, ratio ${ratio}x"
echo "{\"zili\": $zb, \"torch\": $tb, \"ratio\": $ratio, \"repeat\": $repeat}"
