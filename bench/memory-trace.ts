// Where a training run's peak memory goes: runs `zili train ...` (any layout, under mpirun too) with
// the CPU backend's allocations traced, and prints on each rank the buffers live at its peak, grouped
// by size (largest totals first), so the planner's memory model (src/plan/program-memory.ts) can be
// checked piece by piece: weights, AdamW moments, gradients, buckets, activations, logits.
//   npx tsc -p . && mpirun -np 2 node dist/bench/memory-trace.js train --preset tiny --tp 2 --sp ...
import type { DeviceBuffer } from '../src/backend/contract.js';
import { getBackend } from '../src/backend/registry.js';
import { main } from '../src/cli/main.js';

const be = await getBackend('cpu');
const live = new Map<DeviceBuffer, number>();
let cur = 0, peak = 0, allocs = 0, peakAt = 0;
let atPeak = new Map<number, number>();
const alloc = be.alloc.bind(be), free = be.free.bind(be);
be.alloc = (dt, n) => {
  const b = alloc(dt, n);
  live.set(b, b.bytes);
  cur += b.bytes;
  allocs++;
  if (cur > peak) {
    peak = cur;
    peakAt = allocs;
    atPeak = new Map();
    for (const x of live.values()) atPeak.set(x, (atPeak.get(x) ?? 0) + 1);
  }
  return b;
};
be.free = (b) => {
  cur -= live.get(b) ?? 0;
  live.delete(b);
  free(b);
};
const code = await main(process.argv.slice(2));
const rank = process.env['OMPI_COMM_WORLD_RANK'] ?? '0';
const MiB = (b: number) => (b / 2 ** 20).toFixed(2);
const rows = [...atPeak].map(([size, n]) => ({ size, n, total: size * n })).sort((a, b) => b.total - a.total);
const lines = rows.slice(0, 14).map((r) => `  ${r.n} x ${r.size} B = ${MiB(r.total)} MiB`);
process.stderr.write(`rank ${rank}: peak ${MiB(peak)} MiB at allocation ${peakAt} of ${allocs}\n${lines.join('\n')}\n`);
process.exitCode = code;
