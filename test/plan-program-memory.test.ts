// The planner's memory of a real program (src/plan/program-memory.ts): phase totals worked out by
// hand for small configs (logits, gradients, buckets, gathered weights), and the prediction against
// what zili's own training step allocates, traced on the meta backend (one process, and dp2 ZeRO 0-3
// over in-process ranks, each rank on its own meta backend), without and with full recomputation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetaBackend } from '../src/backend/meta/meta-backend.js';
import type { TokenLoader } from '../src/data/loader.js';
import { DataParallel, type ZeroStage } from '../src/dist/data-parallel.js';
import { preset } from '../src/nn/presets.js';
import { countParams } from '../src/nn/param-count.js';
import { Transformer } from '../src/nn/transformer.js';
import { AdamW, defaultAdamW } from '../src/optim/adamw.js';
import type { Layout } from '../src/plan/layout.js';
import { F32_TRAINING_BYTES, memoryPerChip } from '../src/plan/memory.js';
import { planModel } from '../src/plan/model.js';
import { MEGATRON_PROGRAM, programMemoryPerChip, programMemoryPerStage, ziliProgram } from '../src/plan/program-memory.js';
import { trainStep } from '../src/train/step.js';
import * as T from '../src/tensor/ops.js';
import { loopbackGroup } from './dist-loopback.js';

const tiny = preset('tiny'); // 4 layers, h 128, 4 heads of 32 (2 KV), SwiGLU F 384, V 2048, tied
const B = 2, S = 128, N = B * S;
const P = countParams(tiny).total;
const one: Layout = { tp: 1, pp: 1, dp: 1, cp: 1, ep: 1, vpp: 1, sequenceParallel: false, zero: 0, microBatch: B, globalBatch: B, recompute: 'none', attention: 'flash' };
const f32 = planModel(tiny, false, 4);
const zili = (l: Layout, o: Partial<Parameters<typeof ziliProgram>[1]> = {}) => ziliProgram(l, { bucketBytes: 1 << 30, zero3Gather: 'all', ...o });

// one layer's stored activations in f32, counted by hand: the inputs of the two norms, of QKV and of
// the FFN (4 N h), Q (N a d), K and V (2 N kv d), the attention output (N a d), gate/up/product
// (3 N F), the attention's log-sum-exp (N a)
const layerBytes = 4 * N * (4 * 128 + 4 * 32 + 2 * 2 * 32 + 4 * 32 + 3 * 384 + 4);
const logitsBytes = 4 * N * 2048; // f32 logits of the micro-batch: 2 MiB

test('one process: the start of backward holds weights, moments, every layer, the logits and one logits-sized gradient', () => {
  const r = programMemoryPerChip(f32, one, zili(one), F32_TRAINING_BYTES);
  assert.equal(logitsBytes, 2 * 2 ** 20);
  assert.equal(r.phases.activation, 4 * P + 8 * P + 4 * layerBytes + 2 * logitsBytes);
  assert.equal(r.peakPhase, 'activation');
  // update: weights, moments, gradients and one scaled copy of the largest parameter (the tied embedding)
  assert.equal(r.phases.update, 16 * P + 4 * 2048 * 128);
  // Megatron's plain sum counts the logits once and the gradients all along
  const mega = programMemoryPerChip(f32, one, MEGATRON_PROGRAM, F32_TRAINING_BYTES);
  assert.equal(mega.peak, 16 * P + 4 * layerBytes + logitsBytes);
  const sum = memoryPerChip(f32, one, F32_TRAINING_BYTES);
  assert.equal(mega.peak, sum.weights + sum.grads + sum.optimizer + sum.activations);
});

test('full recompute: the start of backward holds each block input and the logits; one layer comes back only in its own backward', () => {
  const l: Layout = { ...one, recompute: 'full' };
  const r = programMemoryPerChip(f32, l, zili(l), F32_TRAINING_BYTES);
  const blockInput = 4 * N * 128;
  // the recomputed layer (its whole working set plus the backward's gate/up gradients and two h rows)
  // is smaller than the logits and their gradient, so it does not raise the peak
  const layerWorking = layerBytes + 4 * N * (2 * 384 + 2 * 128);
  assert.ok(layerWorking < 2 * logitsBytes);
  assert.equal(r.activations, 4 * blockInput + 2 * logitsBytes);
  assert.equal(r.phases.activation, 12 * P + 4 * blockInput + 2 * logitsBytes);
  // a stage without the logits (pipeline stage 0) peaks in a layer's recomputed backward
  const pp: Layout = { ...l, pp: 2, globalBatch: 2 * B };
  const s0 = programMemoryPerStage(f32, pp, zili(pp), F32_TRAINING_BYTES)[0]!;
  // (four micro-batches: the first backward runs before the most are in flight; the gradients and the
  // FFN matrix's fresh one, [F, h], before it is added into the accumulated one, are live)
  const pp4: Layout = { ...pp, globalBatch: 4 * B };
  const a0 = programMemoryPerStage(f32, pp4, zili(pp4), F32_TRAINING_BYTES)[0]!;
  assert.equal(a0.activations, 2 * 2 * blockInput + layerWorking + 4 * 384 * 128);
  assert.equal(a0.phases.activation, a0.weights + a0.optimizer + a0.grads + a0.activations);
  // two micro-batches, both in flight before the first backward: the peak comes right after that
  // backward, one micro-batch in flight beside the gradients (block inputs weigh less than the gradients)
  assert.equal(s0.activations, 1 * 2 * blockInput + layerWorking + 4 * 384 * 128);
  assert.equal(s0.phases.activation, s0.weights + s0.optimizer + s0.grads + s0.activations);
  // Megatron's plain sum keeps the recomputed layer beside the logits, as memory.ts counts it
  const mega = programMemoryPerChip(f32, l, MEGATRON_PROGRAM, F32_TRAINING_BYTES);
  const sum = memoryPerChip(f32, l, F32_TRAINING_BYTES);
  assert.equal(mega.peak, sum.weights + sum.grads + sum.optimizer + sum.activations);
});

test('dp2: ZeRO-0 stages whole buckets, ZeRO-1/2 all-gather into whole staging, ZeRO-3 gathers all weights or two layers', () => {
  const dp = (zero: ZeroStage, gb = 4): Layout => ({ ...one, dp: 2, zero, globalBatch: gb });
  const G = 4 * P, W = 4 * P, O = 8 * P;
  const z0 = programMemoryPerChip(f32, dp(0), zili(dp(0)), F32_TRAINING_BYTES);
  assert.equal(z0.phases.update, W + O + 2 * G);
  const z1 = programMemoryPerChip(f32, dp(1), zili(dp(1)), F32_TRAINING_BYTES);
  assert.equal(z1.phases.update, W + O / 2 + Math.max(G + G / 2, W * 2));
  const z2 = programMemoryPerChip(f32, dp(2), zili(dp(2), { bucketBytes: 1 << 20 }), F32_TRAINING_BYTES);
  assert.equal(z2.phases.update, W + O / 2 + Math.max(G / 2 + (1 << 20), W * 2));
  // ZeRO-3 with one micro-batch per rank: no gradient lives through the forward
  const all = programMemoryPerChip(f32, dp(3), zili(dp(3)), F32_TRAINING_BYTES);
  assert.equal(all.phases.activation, W / 2 + O / 2 + W + 4 * layerBytes + 2 * logitsBytes);
  const layer = programMemoryPerChip(f32, dp(3), zili(dp(3), { zero3Gather: 'layer' }), F32_TRAINING_BYTES);
  // the largest gathered unit is the tied embedding (V h), twice: the one in use and the prefetched one
  assert.equal(layer.gathered, 2 * 4 * 2048 * 128);
  assert.equal(layer.phases.gather, 0);
  assert.ok(layer.peak < all.peak);
  // two micro-batches per rank: the first one's gradients (whole) live through the second's forward
  const acc = programMemoryPerChip(f32, dp(3, 8), zili(dp(3, 8)), F32_TRAINING_BYTES);
  assert.equal(acc.phases.activation - all.phases.activation, G);
});

test('tensor parallel: the vocab-parallel loss keeps eight logits shards, SP gathers the projection inputs again in backward', () => {
  const tp: Layout = { ...one, tp: 2, sequenceParallel: true };
  const r = programMemoryPerChip(f32, tp, zili(tp), F32_TRAINING_BYTES);
  const mega = programMemoryPerChip(f32, tp, MEGATRON_PROGRAM, F32_TRAINING_BYTES);
  // per layer zili keeps, in h-wide f32 rows: 2 pre-reduction outputs + 4 / t split ones (not the gathered
  // inputs: gathered again in backward); Megatron counts one [N, V/2] logits shard, zili eight (the loss
  // composed of ops, then three gradients)
  const extra = 4 * 4 * N * 128 * (2 + 4 / 2);
  assert.equal(r.activations - mega.activations, extra + 7 * 4 * N * (2048 / 2));
  assert.equal(r.peakPhase, 'activation');
});

test('pipeline: gpipe holds every micro-batch on stage 0, 1F1B pp of them; the last stage holds the logits', () => {
  const pp: Layout = { ...one, pp: 2, globalBatch: 8 * B }; // 8 micro-batches, 2 layers per stage
  const f1 = programMemoryPerStage(f32, pp, zili(pp, { schedule: '1f1b' }), F32_TRAINING_BYTES);
  const gp = programMemoryPerStage(f32, pp, zili(pp, { schedule: 'gpipe' }), F32_TRAINING_BYTES);
  // (gpipe runs every forward before the first backward: no gradient accumulated at its peak, no fresh one beside it)
  assert.equal(gp[0]!.activations - f1[0]!.activations, (8 - 2) * 2 * layerBytes - 4 * 384 * 128);
  assert.equal(gp[0]!.phases.activation, gp[0]!.weights + gp[0]!.optimizer + gp[0]!.activations);
  // ... and the last stage also the logits of the 7 micro-batches waiting for their backward
  assert.equal(gp[1]!.activations - f1[1]!.activations, (8 - 1) * (2 * layerBytes + logitsBytes));
  // 1F1B: stage 0 holds 2 micro-batches of its 2 layers plus one layer's backward working set (gate and
  // up gradients, two h-wide rows); the last stage 1 micro-batch plus the logits and their gradient
  // up gradients, two h-wide rows, and with 8 micro-batches to accumulate the fresh gradient of its largest matrix, [F, h])
  assert.equal(f1[0]!.activations, 2 * 2 * layerBytes + 4 * N * (2 * 384 + 2 * 128) + 4 * 384 * 128);
  assert.equal(f1[1]!.activations, 1 * 2 * layerBytes + 2 * logitsBytes);
});

test("accumulating micro-batches: the output layer's fresh gradient lives beside the logits' gradient on the last stage", () => {
  // a stage of only the output layer (as moe-1t's last stage, 61 layers on pp 32): 2 layers on pp 4 leave the
  // first stage the embedding and the last the loss; few tokens, a large vocabulary
  const head = { ...tiny, layers: 2, vocab: 32768, seqLen: 64 };
  const m = planModel(head, false, 4);
  const l = (gb: number): Layout => ({ ...one, pp: 4, microBatch: 1, globalBatch: gb });
  const last = (gb: number) => programMemoryPerStage(m, l(gb), zili(l(gb)), F32_TRAINING_BYTES)[3]!;
  const logits = 4 * 64 * 32768, headGrad = 4 * 32768 * 128;
  assert.ok(headGrad > logits);
  // one micro-batch: the logits and their gradient; several: the logits' gradient, the accumulated
  // gradients (every one of the stage's) and the output layer's fresh one
  assert.equal(last(1).activations, 2 * logits);
  assert.equal(last(4).activations, logits + headGrad);
  assert.equal(last(4).phases.activation - last(1).phases.activation, 4 * (32768 * 128 + 128) + headGrad - logits);
});

test('expert parallelism reduces gradients in place: no full-size buckets in the update (tiny-moe dp2 x ep2)', () => {
  const m = planModel(preset('tiny-moe'), false, 4);
  const l: Layout = { ...one, dp: 2, ep: 2, globalBatch: 2 * B };
  const ep = programMemoryPerChip(m, l, zili(l), F32_TRAINING_BYTES);
  const dp = programMemoryPerChip(m, { ...l, ep: 1 }, zili({ ...l, ep: 1 }), F32_TRAINING_BYTES);
  // plain dp2 stages every gradient in a whole bucket beside it; under ep the update holds the gradients and one scaled copy
  assert.ok(dp.phases.update > ep.phases.update + ep.grads - 1);
  assert.ok(ep.phases.update < ep.weights + ep.optimizer + 1.5 * ep.grads);
});

function loader(cfg: typeof tiny): TokenLoader {
  const ids = new Int32Array(B * S);
  return { batch: B, seqLen: S, next: () => ({ input: ids, target: ids }) } as unknown as TokenLoader;
}

for (const recompute of ['none', 'full'] as const)
  test(`one process, recompute ${recompute}: the planner's peak is within 10% of what a training step allocates (meta backend)`, async () => {
    const be = new MetaBackend();
    const model = new Transformer(tiny, be, { seed: 0, recompute });
    const opt = new AdamW(model.params, defaultAdamW());
    await trainStep(model, opt, loader(tiny), 1, 1e-3);
    const measured = be.memory().peakBytes;
    const l: Layout = { ...one, recompute };
    const planned = programMemoryPerChip(f32, l, zili(l), F32_TRAINING_BYTES).peak;
    assert.ok(Math.abs(measured / planned - 1) <= 0.1, `recompute ${recompute}: measured ${measured} vs planner ${planned}`);
    opt.dispose();
    model.dispose();
  });

// ZeRO 0-3 without recomputation on dp2; ZeRO-3 under full recompute on dp2 and dp4 (the loopback
// communicator cannot wait synchronously, so its ZeRO-3 gathers all weights at the start of the step)
const dpCases: [number, ZeroStage, 'none' | 'full'][] = [[2, 0, 'none'], [2, 1, 'none'], [2, 2, 'none'], [2, 3, 'none'], [2, 3, 'full'], [4, 3, 'full']];
for (const [np, zero, recompute] of dpCases)
  test(`dp${np} ZeRO-${zero}, recompute ${recompute}: the planner's peak is within 10% of what each rank's step allocates (meta backends, in-process ranks)`, async () => {
    const comms = loopbackGroup(np);
    const ranks = comms.map((comm) => {
      const be = new MetaBackend();
      const model = new Transformer(tiny, be, { seed: 0, recompute });
      return { be, model, dp: new DataParallel(model, comm, { zero, bucketBytes: 1 << 20, adamw: defaultAdamW() }) };
    });
    await Promise.all(ranks.map((r) => r.dp.runStep(loader(tiny), 1, 1e-3)));
    const l: Layout = { ...one, dp: np, zero, globalBatch: np * B, recompute };
    // the loopback communicator has no blocking reduce-scatter: ZeRO-2/3 buckets wait for the end of backward
    const planned = programMemoryPerChip(f32, l, zili(l, { bucketBytes: 1 << 20, blockingReduceScatter: false }), F32_TRAINING_BYTES).peak;
    for (const r of ranks) {
      const measured = r.be.memory().peakBytes;
      assert.ok(Math.abs(measured / planned - 1) <= 0.1, `ZeRO-${zero}: measured ${measured} vs planner ${planned}`);
      r.dp.dispose();
      r.model.dispose();
    }
  });

test('AdamW.update holds one scaled gradient beyond weights, gradients and moments (the norm frees each square at once)', async () => {
  const be = new MetaBackend();
  const model = new Transformer(tiny, be, { seed: 0 });
  const opt = new AdamW(model.params, { ...defaultAdamW(), clipNorm: 1e-9 }); // clipping on: every gradient scaled
  for (const p of model.params.tensors.values()) p.grad = T.zerosLike(p);
  be.resetPeak();
  await opt.update(1e-3, 0.5);
  const largest = Math.max(...[...model.params.tensors.values()].map((p) => 4 * p.numel));
  assert.ok(be.memory().peakBytes <= 16 * P + largest + 4096, `update peak ${be.memory().peakBytes} vs ${16 * P + largest}`);
  opt.dispose();
  model.dispose();
});
