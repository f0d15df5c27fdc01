// Exact FLOP and parameter counts: the planner's per-part count equals Megatron's closed forms for the
// published GPT runs, and gated/non-gated FFN kinds count the right number of matrices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forwardFlopsPerToken, hardwareFlopsPerToken, layerFlopsPerToken, megatronFlopsPerStep, modelFlopsPerToken } from '../src/plan/flops.js';
import { PUBLISHED_RUNS, runModel } from '../src/plan/published-runs.js';
import { modelFromJson } from '../src/plan/model.js';
import { countParams } from '../src/nn/param-count.js';
import { preset } from '../src/nn/presets.js';

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

test('model FLOPs equal 72 B s l h^2 (1 + s/6h + V/12hl) on every published GPT run', () => {
  for (const r of PUBLISHED_RUNS.filter((x) => x.model['ffnKind'] === 'gelu' && x.model['vocab'] === 51200)) {
    const m = runModel(r).config;
    const tokens = r.layout.globalBatch * m.seqLen;
    const ours = modelFlopsPerToken(m) * tokens;
    const theirs = megatronFlopsPerStep(r.layout.globalBatch, m.seqLen, m.layers, m.dModel, m.vocab, false);
    assert.ok(rel(ours, theirs) < 1e-12, `${r.id}: ${ours} vs ${theirs}`);
  }
});

test('hardware FLOPs with full recompute equal Narayanan Eq. 3 (96 B s l h^2 ...)', () => {
  for (const r of PUBLISHED_RUNS.filter((x) => x.source === 'narayanan2021')) {
    const m = runModel(r).config;
    const ours = hardwareFlopsPerToken(m, 'full', 'standard') * r.layout.globalBatch * m.seqLen;
    const theirs = megatronFlopsPerStep(r.layout.globalBatch, m.seqLen, m.layers, m.dModel, m.vocab, true);
    assert.ok(rel(ours, theirs) < 1e-12, `${r.id}`);
  }
});

test('selective recompute adds exactly the attention core; flash adds half of it', () => {
  const m = preset('7b');
  const core = m.layers * layerFlopsPerToken(m, false).attnCore;
  assert.equal(hardwareFlopsPerToken(m, 'selective', 'standard') - modelFlopsPerToken(m), core);
  assert.equal(hardwareFlopsPerToken(m, 'none', 'flash') - modelFlopsPerToken(m), 0.5 * core);
  assert.equal(hardwareFlopsPerToken(m, 'none', 'standard'), modelFlopsPerToken(m));
});

test('MoE forward FLOPs count the top-k plus shared experts and the router', () => {
  const m = preset('moe-1t');
  const f = layerFlopsPerToken(m, true);
  assert.equal(f.ffn, (8 + 1) * 2 * 3 * 7168 * 2048);
  assert.equal(f.router, 2 * 7168 * 384);
  // about 6 x active parameters (attention core and router aside)
  const active = countParams(m).active - countParams(m).embedding / 2;
  const approx = 2 * active;
  assert.ok(rel(forwardFlopsPerToken(m) - m.layers * f.attnCore, approx) < 0.01);
});

test('ffnKind: geglu/swiglu have three matrices, gelu/relu two', () => {
  const base = { layers: 2, hidden: 64, heads: 4, ffnHidden: 256, vocab: 100, seqLen: 32 };
  const p = (k: string) => countParams(modelFromJson({ ...base, ffnKind: k }).config).ffnDense;
  assert.equal(p('gelu'), 2 * 2 * 64 * 256);
  assert.equal(p('relu'), 2 * 2 * 64 * 256);
  assert.equal(p('swiglu'), 2 * 3 * 64 * 256);
  assert.equal(p('geglu'), 2 * 3 * 64 * 256);
  assert.throws(() => modelFromJson({ ...base, ffnKind: 'silu' }), /ffnKind must be/);
});
