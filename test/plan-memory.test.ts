// Memory model: Korthikanti et al.'s activation formulas, ZeRO sharding, pipeline in-flight micro-batches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { activationBytesPerLayer, BYTES, inFlightChunks, layerActivationBytes, memoryPerChip, stageLayers, stageParams } from '../src/plan/memory.js';
import { modelFromJson, planModel } from '../src/plan/model.js';
import type { Layout } from '../src/plan/layout.js';
import { preset } from '../src/nn/presets.js';

// GPT-3 175B shape from Korthikanti et al.
const gpt = modelFromJson({ layers: 96, hidden: 12288, heads: 96, ffnHidden: 4 * 12288, ffnKind: 'gelu', vocab: 51200, seqLen: 2048, tiedEmbeddings: true });
const s = 2048, b = 1, h = 12288, a = 96;
const opts = { microBatch: b, seqLen: s, cp: 1, attention: 'standard' as const, dropout: true };

test('no parallelism: 34 s b h + 5 a s^2 b per layer', () => {
  const x = layerActivationBytes(gpt.config, false, { ...opts, tp: 1, sequenceParallel: false, recompute: 'none' });
  assert.equal(x.stored, 34 * s * b * h + 5 * a * s * s * b);
});

test('tensor parallel t: s b h (10 + 24/t) + 5 a s^2 b / t; with SP: s b h 34/t + 5 a s^2 b / t', () => {
  const t = 8;
  const tpOnly = layerActivationBytes(gpt.config, false, { ...opts, tp: t, sequenceParallel: false, recompute: 'none' });
  assert.equal(tpOnly.stored, s * b * h * (10 + 24 / t) + (5 * a * s * s * b) / t);
  const sp = layerActivationBytes(gpt.config, false, { ...opts, tp: t, sequenceParallel: true, recompute: 'none' });
  assert.equal(sp.stored, (s * b * h * 34) / t + (5 * a * s * s * b) / t);
  const sel = layerActivationBytes(gpt.config, false, { ...opts, tp: t, sequenceParallel: true, recompute: 'selective' });
  assert.equal(sel.stored, (s * b * h * 34) / t);
  const full = layerActivationBytes(gpt.config, false, { ...opts, tp: t, sequenceParallel: true, recompute: 'full' });
  assert.equal(full.stored, (2 * s * b * h) / t);
  const fullNoSp = layerActivationBytes(gpt.config, false, { ...opts, tp: t, sequenceParallel: false, recompute: 'full' });
  assert.equal(fullNoSp.stored, 2 * s * b * h);
});

test('LLaMA-style layer (no dropout, GQA, SwiGLU, flash) and the per-layer cross-check function', () => {
  const c = preset('tiny');
  const per = activationBytesPerLayer(c, { microBatch: 2, attention: 'flash' });
  assert.equal(per.length, c.layers);
  const sb = 2 * c.seqLen, d = 32;
  // norms/QKV/FFN inputs 8 sbh + Q 2 sb a d + K,V 4 sb kv d + attention out 2 sb a d + SwiGLU 6 sb F + lse 4 sb a
  const expected = sb * (8 * 128 + 2 * 4 * d + 4 * 2 * d + 2 * 4 * d + 6 * 384 + 4 * 4);
  assert.equal(per[0]!.bytes, expected);
  const moe = activationBytesPerLayer(preset('tiny-moe'), { microBatch: 1 });
  assert.equal(moe[0]!.moe, false);
  assert.equal(moe[1]!.moe, true);
  assert.ok(moe[1]!.bytes > moe[0]!.bytes * 0.5);
});

const base: Layout = { tp: 8, pp: 8, dp: 16, cp: 1, ep: 1, vpp: 1, sequenceParallel: true, zero: 0, microBatch: 1, globalBatch: 1024, recompute: 'selective', attention: 'standard' };

test('ZeRO 0-3 shard optimizer, then gradients, then weights over the data-parallel group', () => {
  const m0 = memoryPerChip(gpt, base);
  const m1 = memoryPerChip(gpt, { ...base, zero: 1 });
  const m2 = memoryPerChip(gpt, { ...base, zero: 2 });
  const m3 = memoryPerChip(gpt, { ...base, zero: 3 });
  const p = stageParams(gpt, base, m0.stage);
  assert.equal(m0.weights, p.dense * BYTES.weight);
  assert.equal(m0.optimizer, p.dense * BYTES.optimizer);
  assert.equal(m1.optimizer, m0.optimizer / 16);
  assert.equal(m1.grads, m0.grads);
  assert.equal(m2.grads, m0.grads / 16);
  assert.equal(m3.weights, m0.weights / 16);
  assert.ok(m3.total < m2.total && m2.total < m1.total && m1.total < m0.total);
});

test('1F1B keeps pp micro-batches on stage 0; interleaving keeps 1 + (p-1)/(p v) times more', () => {
  assert.equal(inFlightChunks(base, 0), 8);
  assert.equal(inFlightChunks(base, 7), 1);
  const il = { ...base, vpp: 4 };
  // chunks of L/(p v) layers: (v p + p - 1) chunks = L (1 + (p-1)/(p v)) layers
  assert.equal(inFlightChunks(il, 0), 4 * 8 + 8 - 1);
  const layersHeld = (inFlightChunks(il, 0) * 96) / 32;
  assert.equal(layersHeld, 96 * (1 + 7 / 32));
  // few micro-batches cap what is in flight
  assert.equal(inFlightChunks({ ...base, globalBatch: 64 }, 0), 4);
});

test('uneven pipelines and MoE expert placement', () => {
  const m = planModel(preset('moe-1t'));
  const st0 = stageLayers(m.config, 16, 1, 0);
  const last = stageLayers(m.config, 16, 1, 15);
  assert.deepEqual(st0, { dense: 1, moe: 3, chunks: 1 });
  assert.deepEqual(last, { dense: 0, moe: 1, chunks: 1 });
  const l: Layout = { ...base, tp: 1, pp: 16, dp: 512, ep: 64, globalBatch: 4096, attention: 'flash', recompute: 'full' };
  const p = stageParams(m, l, 1); // four MoE layers
  const oneExpert = 3 * 7168 * 2048;
  assert.equal(p.expert, 4 * (384 / 64) * oneExpert);
});
