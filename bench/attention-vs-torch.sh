#!/usr/bin/env bash
# zili's fused attention kernel against PyTorch's scaled_dot_product_attention (torch 2 CPU from
# scripts/setup-venv; PY=... picks another python), causal forward + backward in f32 on the shapes
# of `bin/zili bench kernels --only attention` (B=8 T=256 H=6 D=64; B=1 T=1024; GQA 8:2 and 6:2),
# run alternately REPEAT times in the same run, each side best of --inner runs per round. Prints
# the best milliseconds of each side per shape and zili's speed-up, and a last JSON line.
# PyTorch runs with OMP_WAIT_POLICY=PASSIVE and with libgomp's default spinning; its best counts.
#
# Usage: bench/attention-vs-torch.sh [--repeat 3] [--inner 10] [--attention-kernel avx2|portable|avx512]
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-$(scripts/setup-venv)}"
repeat=3 inner=10 kernel=()
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) repeat="$2"; shift 2 ;;
    --inner) inner="$2"; shift 2 ;;
    --attention-kernel) kernel=(--attention-kernel "$2"); shift 2 ;;
    --help|-h) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "attention-vs-torch: unexpected argument '$1'" >&2; exit 2 ;;
  esac
done
"$PY" -c 'import torch' 2>/dev/null || { echo "attention-vs-torch: $PY cannot import torch (run scripts/setup-venv, or set PY to a python with torch)" >&2; exit 2; }

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-); torch $("$PY" -c 'import torch; print(torch.__version__)')"
# one round's JSON line -> "name=ms ..." (argv[1]: the field holding the milliseconds)
show='import json, sys
d = json.load(sys.stdin)
print(d.get("attentionKernel", "SDPA"), " ".join("%s=%s" % (k["name"], k[sys.argv[1]]) for k in d["kernels"]))'
zili=() torch=()
for ((i = 1; i <= repeat; i++)); do
  z=$(bin/zili bench kernels --only attention --repeat "$inner" "${kernel[@]}" --json | tail -n 1)
  t=$("$PY" bench/torch_attention.py --repeat "$inner" --json | tail -n 1)
  tp=$(OMP_WAIT_POLICY=PASSIVE "$PY" bench/torch_attention.py --repeat "$inner" --json | tail -n 1)
  echo "round $i (load $(cut -d' ' -f1-3 /proc/loadavg)): zili $(echo "$z" | "$PY" -c "$show" fusedMs); torch $(echo "$t" | "$PY" -c "$show" ms)"
  zili+=("$z") torch+=("$t" "$tp")
done
"$PY" - "${#zili[@]}" "${zili[@]}" "${torch[@]}" <<'PYEOF'
import json, sys
n = int(sys.argv[1]); zs = [json.loads(x) for x in sys.argv[2:2 + n]]; ts = [json.loads(x) for x in sys.argv[2 + n:]]
kernel = zs[0]["attentionKernel"]
best = lambda runs, key: {k["name"]: min(r2[key] for r in runs for r2 in r["kernels"] if r2["name"] == k["name"]) for k in runs[0]["kernels"]}
bz, bt = best(zs, "fusedMs"), best(ts, "ms")
print(f"best of {n} rounds, milliseconds (causal fwd+bwd, f32, 2 threads)")
print(f"{'shape':16s}{'zili ' + kernel:>14s}{'torch SDPA':>12s}{'speed-up':>10s}")
for name in bz:
    print(f"{name:16s}{bz[name]:14.2f}{bt[name]:12.2f}{bt[name] / bz[name]:9.2f}x")
print(json.dumps({"attentionKernel": kernel, "rounds": n, "zili": bz, "torch": bt}))
PYEOF
