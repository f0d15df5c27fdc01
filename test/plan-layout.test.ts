// Layout conventions: Megatron-Core's world = tp * cp * dp * pp with expert parallelism folded inside
// dp * cp (DeepSeek-V3 writes dp128 ep64 on 2,048 chips), and the groups that follow from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expertDp, type Layout, layoutChips, layoutProblems, microBatches } from '../src/plan/layout.js';
import { stageParams } from '../src/plan/memory.js';
import { planModel } from '../src/plan/model.js';
import { preset } from '../src/nn/presets.js';

const moe = planModel(preset('moe-1t'));
const dsv3: Layout = {
  tp: 1, pp: 16, dp: 128, cp: 1, ep: 64, vpp: 1, sequenceParallel: false, zero: 1, microBatch: 1, globalBatch: 15360,
  recompute: 'none', attention: 'flash',
};

test('Megatron-Core convention: chips = tp*cp*dp*pp, ep folded inside dp*cp', () => {
  assert.equal(layoutChips(dsv3), 2048);
  assert.deepEqual(layoutProblems(moe.config, dsv3, 2048), []);
  assert.equal(expertDp(dsv3), 2);
  assert.equal(microBatches(dsv3), 15360 / 128);
  // the old convention (ep as a separate factor) no longer adds up
  const old = layoutProblems(moe.config, { ...dsv3, dp: 2 }, 2048);
  assert.match(old.join('; '), /tp\*pp\*cp\*dp = 1\*16\*1\*2 = 32 does not equal the 2048 chips.*use dp 128/);
  const tooWide = layoutProblems(moe.config, { ...dsv3, dp: 32, pp: 64, ep: 64 }, 2048);
  assert.match(tooWide.join('; '), /ep 64 must divide dp\*cp = 32/);
});

test('expert weights are split over ep and replicated over dp*cp/ep', () => {
  const p = stageParams(moe, dsv3, 1);
  const p2 = stageParams(moe, { ...dsv3, ep: 32 }, 1);
  assert.equal(p2.expert, 2 * p.expert);
  assert.equal(p2.dense, p.dense);
});
