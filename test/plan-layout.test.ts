// Layout conventions: Megatron-Core's world = tp * cp * dp * pp with expert parallelism folded inside
// dp * cp (DeepSeek-V3 writes dp128 ep64 on 2,048 chips), and the groups that follow from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expertDp, type Layout, layoutChips, layoutProblems, microBatches } from '../src/plan/layout.js';
import { stageLayers, stageParams } from '../src/plan/memory.js';
import { DEFAULT_EFFICIENCY } from '../src/plan/efficiency.js';
import { catalogChip, resolveChip } from '../src/plan/hardware.js';
import type { Stack } from '../src/plan/stack.js';
import { stepTime, zero3Exposed } from '../src/plan/step-time.js';
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

test('uneven pipelines: Llama 3 runs 126 layers on pp16 x vpp8 with embedding-only and loss-only chunks', () => {
  const llama = planModel({ ...preset('70b'), layers: 126 });
  const first = stageLayers(llama.config, 16, 8, 0), mid = stageLayers(llama.config, 16, 8, 5), last = stageLayers(llama.config, 16, 8, 15);
  assert.deepEqual([first.dense, mid.dense, last.dense], [7, 8, 7]);
  assert.equal(first.chunks, 8); // the embedding-only chunk still is a pipeline hop
  let total = 0;
  for (let s = 0; s < 16; s++) total += stageLayers(llama.config, 16, 8, s).dense;
  assert.equal(total, 126);
  const l: Layout = { ...dsv3, ep: 1, pp: 16, vpp: 8, dp: 64, tp: 8, globalBatch: 2048 };
  assert.deepEqual(layoutProblems(llama.config, l, 8192), []);
  assert.match(layoutProblems(llama.config, { ...l, vpp: 9, globalBatch: 2048 }, 8192).join(), /pp\*vpp = 144 exceeds the 126 layers \+ 2/);
});

test('software stacks: overlapped hides TP and p2p, deepspeed-legacy exposes the DP reduction', () => {
  const m = planModel(preset('70b'));
  const chip = resolveChip(catalogChip('h100-sxm'));
  const l: Layout = { ...dsv3, ep: 1, tp: 8, pp: 4, dp: 8, globalBatch: 64, sequenceParallel: true };
  const t = (stack: Stack) => stepTime(m, l, chip, DEFAULT_EFFICIENCY, undefined, stack);
  const mega = t('megatron'), over = t('overlapped'), ds = t('deepspeed-legacy');
  assert.ok(over.parts.tp < 0.25 * mega.parts.tp && over.parts.p2p === 0 && mega.parts.p2p > 0);
  assert.ok(ds.parts.dp > mega.parts.dp);
  assert.ok(over.total < mega.total && mega.total < ds.total);
});

test('ZeRO-3 per layer and phase: hidden when gathers are short, exposed layer by layer when they are not', () => {
  const e = DEFAULT_EFFICIENCY;
  // 10 layers, compute 3 s per micro-batch (0.1 s per layer-pass): gathers of 0.01 s per layer hide
  const hidden = zero3Exposed(0.1, 0.1, 3, 10, false, e);
  assert.ok(Math.abs(hidden - (0.3 + 0.01 + 0.01)) < 1e-9, `${hidden}`); // 10% slow-down + first gather + last reduce-scatter
  // gathers of 1 s per layer dominate: forward 10 x 1 + 1, backward 10 x (1 + 1) + 1
  const bound = zero3Exposed(10, 10, 3, 10, false, e);
  assert.ok(Math.abs(bound - (11 + 21 - 3)) < 1e-9, `${bound}`);
});
