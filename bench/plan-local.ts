// Does `hardware: "local"` predict zili's own training step? Alternates, several times, the planner's
// prediction (this machine measured afresh each round) with `zili bench train`'s measured step for the
// reference config (6 layers, d_model 384, 6 heads, SwiGLU 1024, vocab 4096, seq 256, batch 8, f32),
// so both see the same load. Run: npx tsc -p . && node dist/bench/plan-local.js [--rounds 3]
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { estimate } from '../src/plan/estimate.js';
import { estimateInputFromJson } from '../src/plan/io.js';
import { localChip, measureLocal } from '../src/plan/local-chip.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const i = process.argv.indexOf('--rounds');
const rounds = i > 0 ? Number(process.argv[i + 1]) : 3;

export const REFERENCE_INPUT = {
  model: { name: 'small', layers: 6, hidden: 384, heads: 6, ffnHidden: 1024, ffnKind: 'swiglu', vocab: 4096, seqLen: 256 },
  hardware: 'local', precision: 'f32', chips: 1, layout: { microBatch: 8, globalBatch: 8 },
};

console.log(`machine: ${cpus()[0]?.model} x ${cpus().length}, node ${process.version}, ${new Date().toISOString()}`);
console.log('| round | load (1 min) | predicted step s | GEMM / attention / elementwise+optimizer s | measured step s (bench train, median of 5) | predicted / measured |');
console.log('|---|---|---|---|---|---|');
for (let r = 1; r <= rounds; r++) {
  const load = loadavg()[0]!.toFixed(1);
  const inp = estimateInputFromJson(REFERENCE_INPUT, 'reference', { local: (p) => localChip(p, measureLocal()) });
  const e = estimate(inp);
  const b = spawnSync(process.execPath, [join(root, 'bin', 'zili'), 'bench', 'train', '--preset', 'small', '--batch', '8', '--json'], { encoding: 'utf8' });
  if (b.status !== 0) throw new Error(`bench train failed: ${b.stderr}`);
  const measured = JSON.parse(b.stdout.trim().split('\n').pop()!).stepTimeS as number;
  const p = e.time.parts;
  console.log(`| ${r} | ${load} | ${e.stepTimeS.toFixed(3)} | ${p.compute.toFixed(3)} / ${p.attention.toFixed(3)} / ${(p.elementwise + p.optimizer).toFixed(3)} | ${measured.toFixed(3)} | ${(e.stepTimeS / measured).toFixed(2)} |`);
}
