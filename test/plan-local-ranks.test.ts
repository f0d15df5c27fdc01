// hardware "local" on 2 ranks (dp2): the planner uses the stored measurement of the communicator and
// of the ranks' share of the cores (src/plan/local-ranks.ts). Checked with fixed measured numbers, so
// the expected step parts follow from the FLOP counts and the ring formula alone (nothing timed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_EFFICIENCY } from '../src/plan/efficiency.js';
import { estimate } from '../src/plan/estimate.js';
import { forwardFlopsPerToken, layerFlopsPerToken } from '../src/plan/flops.js';
import { estimateInputFromJson } from '../src/plan/io.js';
import { type LocalMeasurements, localChip } from '../src/plan/local-chip.js';
import { fitAllReduce, type LocalRanks, loadLocalRanks, saveLocalRanks } from '../src/plan/local-ranks.js';
import { CAUSAL_FRACTION } from '../src/plan/step-time.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const single: LocalMeasurements = { gemmFlops: () => 1e10, memoryBandwidth: 1e10, attentionFlops: () => 1e9, peakFlops: 2e10, threads: 2 };
// measured on the 2-core VM (plan measure-ranks, 2026-12-01), rounded; linkGBs small enough that the reduction is exposed
const ranks: LocalRanks = {
  cpu: 'test-cpu', ranks: 2, threads: 2, allReduce: [], linkGBs: 0.001, latencyUs: 7, gemmShares: [], gemmShare: 0.54, bandwidthShare: 0.51,
  load: 0, measuredAt: '2026-12-01T21:33:47Z',
};
const dp2 = {
  model: { layers: 6, hidden: 384, heads: 6, ffnHidden: 1024, ffnKind: 'swiglu', vocab: 4096, seqLen: 256 },
  hardware: 'local', precision: 'f32', chips: 2, layout: { dp: 2, microBatch: 4, globalBatch: 8 },
};
const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-9 * Math.abs(b), `${what}: ${a} vs ${b}`);

test('dp2 on local: each rank computes its 4 sequences at the measured share, the gradients cross the measured links', () => {
  const inp = estimateInputFromJson(dp2, 'ref', { local: (p, n) => localChip(p, single, n > 1 ? ranks : undefined) });
  const e = estimate(inp);
  const c = inp.model.config;
  const T = 4 * 256; // tokens per rank
  const core = c.layers * layerFlopsPerToken(c, false).attnCore;
  close(e.time.parts.compute, (3 * T * (forwardFlopsPerToken(c) - core)) / (1e10 * 0.54), 'GEMM s');
  close(e.time.parts.attention, (3.5 * CAUSAL_FRACTION * T * core) / (1e9 * 0.54), 'attention s');
  assert.equal(inp.chip.memoryBandwidthTBs, (1e10 * 0.51) / 1e12);
  assert.equal(inp.chip.chipsPerNode, 2);
  // ring all-reduce of the f32 gradients on 2 ranks, minus what hides behind the last backward
  const grads = 4 * inp.model.params.total;
  const ar = 2 * ((0.5 * grads) / (0.001 * 1e9) + 7e-6);
  const bwd = ((e.time.parts.compute + e.time.parts.attention + e.time.parts.elementwise) * 2) / 3;
  close(e.time.parts.dp, ar - bwd / DEFAULT_EFFICIENCY.overlapSlowdown, 'exposed dp s');
  // hand-given links override the measured ones
  const byHand = estimateInputFromJson({ ...dp2, hardware: { base: 'local', linkGBs: 3, linkLatencyUs: 1 } }, 'ref', { local: (p, n) => localChip(p, single, n > 1 ? ranks : undefined) });
  assert.equal(byHand.chip.intraNodeGBs, 3);
  assert.equal(byHand.efficiency?.latencyUs, 1);
});

test('the all-reduce fit recovers bandwidth and latency from the ring formula', () => {
  for (const P of [2, 4]) {
    const GBs = 2.5, latUs = 12;
    const t = (b: number) => 2 * (P - 1) * latUs * 1e-6 + ((2 * (P - 1)) / P) * b / (GBs * 1e9);
    const f = fitAllReduce([4096, 1 << 20, 32 << 20].map((bytes) => ({ bytes, seconds: t(bytes) })), P);
    assert.ok(Math.abs(f.linkGBs - GBs) < 1e-9 && Math.abs(f.latencyUs - latUs) < 1e-6, `${P} ranks: ${JSON.stringify(f)}`);
  }
});

test('the measurement is stored per CPU, ranks and threads; missing, the error names the command', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zili-ranks-'));
  assert.throws(() => loadLocalRanks(dir, 'test-cpu', 2, 2), /on 2 ranks needs.*mpirun --oversubscribe -np 2 bin\/zili plan measure-ranks/);
  saveLocalRanks(dir, ranks);
  saveLocalRanks(dir, { ...ranks, threads: 1, gemmShare: 0.9 });
  assert.equal(loadLocalRanks(dir, 'test-cpu', 2, 2).gemmShare, 0.54);
  assert.equal(loadLocalRanks(dir, 'test-cpu', 2, 1).gemmShare, 0.9);
  assert.throws(() => loadLocalRanks(dir, 'test-cpu', 4, 2), /on 4 ranks/);
  // the CLI reads the cache from ZILI_CACHE and refuses before measuring anything
  const input = join(dir, 'dp2.json');
  writeFileSync(input, JSON.stringify(dp2));
  const r = spawnSync(process.execPath, [join(root, 'bin', 'zili'), 'plan', 'estimate', '--input', input], { encoding: 'utf8', env: { ...process.env, ZILI_CACHE: dir } });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /on 2 ranks needs this machine's measured communicator.*plan measure-ranks/);
});
