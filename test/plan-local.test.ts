// hardware "local": the planner's view of this machine comes from measurements (GEMM throughput per
// shape, bandwidth, attention speed), not from a catalog figure; the wiring is checked with fixed
// measurements so the expected step time follows from the FLOP counts alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { estimate } from '../src/plan/estimate.js';
import { forwardFlopsPerToken, layerFlopsPerToken, logitFlopsPerToken } from '../src/plan/flops.js';
import { estimateInputFromJson } from '../src/plan/io.js';
import { type LocalMeasurements, localChip, measureLocal } from '../src/plan/local-chip.js';
import { CAUSAL_FRACTION } from '../src/plan/step-time.js';

const fake: LocalMeasurements = {
  gemmFlops: () => 1e10, memoryBandwidth: 1e10, attentionFlops: () => 1e9, peakFlops: 2e10, threads: 2,
};
const reference = {
  model: { layers: 6, hidden: 384, heads: 6, ffnHidden: 1024, ffnKind: 'swiglu', vocab: 4096, seqLen: 256 },
  hardware: 'local', precision: 'f32', chips: 1, layout: { microBatch: 8, globalBatch: 8 },
};
const opts = { local: (p: string) => localChip(p, fake) };

test('GEMM and attention time come from the measured rates at the model shapes', () => {
  const inp = estimateInputFromJson(reference, 'ref', opts);
  const e = estimate(inp);
  const c = inp.model.config;
  const T = 8 * 256;
  const core = c.layers * layerFlopsPerToken(c, false).attnCore;
  const gemmFlops = 3 * T * (forwardFlopsPerToken(c) - core);
  assert.ok(Math.abs(e.time.parts.compute - gemmFlops / 1e10) / (gemmFlops / 1e10) < 1e-9, `${e.time.parts.compute}`);
  const attn = 3.5 * CAUSAL_FRACTION * T * core;
  assert.ok(Math.abs(e.time.parts.attention - attn / 1e9) / (attn / 1e9) < 1e-9, `${e.time.parts.attention}`);
  assert.ok(logitFlopsPerToken(c) > 0 && e.memory.weights === 4 * inp.model.params.total, 'f32: 4-byte weights');
  assert.equal(e.time.parts.tp + e.time.parts.dp + e.time.parts.p2p, 0);
});

test('local needs f32, and the communicator\'s measured links beyond one rank', () => {
  assert.throws(() => estimateInputFromJson({ ...reference, precision: 'bf16' }, 'ref', opts), /measures f32 GEMMs.*"precision": "f32"/);
  const two = { ...reference, chips: 2, layout: { dp: 2, microBatch: 4, globalBatch: 8 } };
  assert.throws(() => estimateInputFromJson(two, 'ref', opts), /on 2 ranks needs the communicator's measured bandwidth and latency.*plan measure-ranks.*linkGBs/);
  const inp = estimateInputFromJson({ ...two, hardware: { base: 'local', linkGBs: 2, linkLatencyUs: 40 } }, 'ref', opts);
  const e = estimate(inp);
  assert.equal(inp.chip.intraNodeGBs, 2);
  assert.ok(e.time.parts.dp > 0 || e.stepTimeS > 0);
  assert.throws(() => estimateInputFromJson({ ...reference }, 'ref'), /needs this machine's measurements/);
});

test('the real measurement reads the native addon', () => {
  const m = measureLocal();
  assert.ok(m.gemmFlops(64, 64, 64) > 1e6 && m.memoryBandwidth > 1e6 && m.peakFlops > 1e8);
});
