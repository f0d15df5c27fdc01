// The planner's bytes per step per dimension (src/plan/comm-volume.ts), which a dry run is set
// beside, against values worked out by hand for small layouts of tiny and tiny-moe (f32 words).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { preset } from '../src/nn/presets.js';
import { commBytesPerStep } from '../src/plan/comm-volume.js';
import type { Layout } from '../src/plan/layout.js';
import { planModel } from '../src/plan/model.js';

const base: Layout = { tp: 1, pp: 1, dp: 1, cp: 1, ep: 1, vpp: 1, sequenceParallel: false, zero: 0, microBatch: 1, globalBatch: 8, recompute: 'none', attention: 'flash' };

test('tiny tp2 pp2 dp2, stage 0: tp all-reduces, pp boundary sends, dp gradient reduction under ZeRO 0 and 3', () => {
  const m = planModel(preset('tiny'), false, 4); // d 128, 4 heads of 32, 2 KV heads, FFN 384, vocab 2048, seq 128
  const l = { ...base, tp: 2, pp: 2, dp: 2 };
  // 8 / (1 · 2) = 4 micro-batches of 128 tokens; stage 0 holds layers 0-1 and the embedding
  const act = 128 * 128 * 4;
  // 4 micro-batches · 2 layers · 2 passes · 2 all-reduces · 2·(1/2) · activation
  const tp = 4 * 2 * 2 * 2 * 1 * act;
  // 4 micro-batches · activation forward (the first stage sends no gradient back) · activation / tp, and
  // the tied embedding's gradient (its vocabulary half) all-reduced with the last stage's copy: 2·(1/2)·bytes
  const tied = (2048 * 128 * 4) / 2;
  const pp = 4 * 1 * (act / 2) + tied;
  // per layer: (Q, O 128·128 each + K, V 128·64 each) / 2 + two norms + 3 FFN matrices 128·384 / 2; embedding 2048·128 / 2
  const params = 2 * ((2 * 128 * 128 + 2 * 128 * 64) / 2 + 2 * 128 + (3 * 128 * 384) / 2) + (2048 * 128) / 2;
  assert.deepEqual(commBytesPerStep(m, l, 0), { tp, pp, dp: 2 * (1 / 2) * 4 * params, ep: 0, cp: 0 });
  // the last stage sends only gradients back; a middle stage of pp4 both ways, and under vpp2 each of its two chunk positions
  assert.equal(commBytesPerStep(m, { ...l, dp: 1 }, 1).pp, 8 * 1 * (act / 2) + tied);
  assert.equal(commBytesPerStep(m, { ...l, pp: 4, dp: 1, tp: 1 }, 1).pp, 8 * 2 * act);
  assert.equal(commBytesPerStep(m, { ...l, pp: 2, vpp: 2, dp: 1, tp: 1 }, 0).pp, 8 * 3 * act + 2 * tied);
  // sequence parallelism: the same four collectives per layer and pass, and two all-gathers again in backward
  assert.equal(commBytesPerStep(m, { ...l, sequenceParallel: true }, 0).tp, tp + 4 * 2 * 2 * (1 / 2) * act);
  // ZeRO 3: two all-gathers and a reduce-scatter of the stage's weights per micro-batch
  assert.equal(commBytesPerStep(m, { ...l, zero: 3 }, 0).dp, 4 * 3 * (1 / 2) * 4 * params);
  // full recompute: a third pass of tensor-parallel all-reduces
  assert.equal(commBytesPerStep(m, { ...l, recompute: 'full' }, 0).tp, (tp * 3) / 2);
});

test('tiny cp2: K and V around the ring; tiny-moe ep2: dispatch and combine all-to-alls of its MoE layers', () => {
  const m = planModel(preset('tiny'), false, 4);
  // 2 micro-batches of 128 / 2 = 64 tokens; K and V of 2 KV heads of 32: 2 · 64 · 2 · 32 · 4 bytes, 4 layers;
  // K, V one hop forward and one backward, dK, dV one hop backward (home to their owner): 3 hops
  assert.equal(commBytesPerStep(m, { ...base, cp: 2, globalBatch: 2 }, 0).cp, 2 * 4 * 3 * (2 * 64 * 2 * 32 * 4));
  // cp4 under full recompute: K, V 3 hops in each forward and 3 backward, dK, dV 3: 12 hops of 32-token blocks
  assert.equal(commBytesPerStep(m, { ...base, cp: 4, globalBatch: 2, recompute: 'full' }, 0).cp, 2 * 4 * 12 * (2 * 32 * 2 * 32 * 4));
  const moe = planModel(preset('tiny-moe'), false, 4); // 3 MoE layers (the first is dense), top-2
  // 4 / 2 = 2 micro-batches · 3 layers · 2 passes · 2 all-to-alls · (1/2) of 128 tokens · 2 copies · 128 · 4 bytes
  assert.equal(commBytesPerStep(moe, { ...base, dp: 2, ep: 2, globalBatch: 4 }, 0).ep, 2 * 3 * 2 * 2 * (1 / 2) * (128 * 2 * 128 * 4));
});
