#!/usr/bin/env bash
# One-command check of the webgpu backend on a machine with a real GPU (or lavapipe): conformance
# kit, the webgpu test file, and GEMM throughput of both kernels at 1024³ and 4096³ (SIZES="1024" on
# lavapipe, where 4096³ takes minutes). Results go to
# $OUT (or ./webgpu-check/) as text and JSON lines. Needs Node 20 and `npm ci` done (Dawn ships in
# the npm package; the GPU needs its vendor's Vulkan driver on Linux).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-webgpu-check}"
mkdir -p "$out"
[ -d dist ] || npx tsc -p tsconfig.json
{
  echo "## $(date -u +%FT%TZ) $(uname -srm)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  timeout 300 bin/zili selftest --backend webgpu --json
  timeout 300 node --test dist/test/backend-webgpu.test.js 2>&1 | grep -E '^(not )?ok|^# (pass|fail|skip)'
  for kind in tiled direct; do
    for s in ${SIZES:-1024 4096}; do
      ZILI_WEBGPU_MATMUL=$kind timeout 120 bin/zili bench gemm --backend webgpu --m $s --n $s --k $s --repeat 3 --json | tail -1 | sed "s/^{/{\"kernel\":\"$kind\",/"
    done
  done
} 2>&1 | grep -v '^Warning: maxDynamic' | tee "$out/webgpu-check.txt"
