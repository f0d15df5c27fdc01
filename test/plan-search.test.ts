// Layout search: moe-1t and dense-1t on Ascend 910B at 4,096-16,384 chips, the < 2 s bound at 16,384,
// the winner's reason, and what an impossible request is told.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { catalogChip, resolveChip } from '../src/plan/hardware.js';
import { layoutChips } from '../src/plan/layout.js';
import { GiB } from '../src/plan/memory.js';
import { loadModel } from '../src/plan/model.js';
import { impossibleError, searchLayouts } from '../src/plan/search.js';

const chip = resolveChip(catalogChip('ascend-910b'));

for (const name of ['moe-1t', 'dense-1t']) {
  test(`${name} on 4,096 to 16,384 Ascend 910B: a best layout that fits, days, interruptions, checkpoint interval`, () => {
    const model = loadModel(name);
    let lastDays = Infinity;
    for (const chips of [4096, 8192, 16384]) {
      const r = searchLayouts({ model, chip, chips, globalBatch: 4096, tokens: 10e12 });
      const best = r.ranked[0]!;
      assert.ok(best, `${name} ${chips}: nothing fits`);
      assert.equal(layoutChips(best.layout), chips);
      assert.ok(best.fits && best.memory.total <= 55 * GiB);
      assert.ok(best.days > 5 && best.days < 2000, `${best.days} days`);
      assert.ok(best.days < lastDays, 'more chips train faster');
      lastDays = best.days;
      assert.ok(best.mfu > 0.1 && best.mfu < 0.75, `MFU ${best.mfu}`);
      assert.ok(best.reliability.interruptionsPerWeek > 1);
      assert.ok(best.reliability.checkpointIntervalS > 60 && best.reliability.checkpointIntervalS < 86400);
      assert.match(r.reason, / wins: .* faster per step than the next shape/);
      for (let i = 1; i < r.ranked.length; i++) assert.ok(r.ranked[i]!.stepTimeS >= r.ranked[i - 1]!.stepTimeS);
    }
  });
}

test('search on 16,384 chips considers thousands of layouts for dense-1t and moe-1t (timing: bench/plan-search.ts)', () => {
  for (const name of ['dense-1t', 'moe-1t']) {
    const model = loadModel(name);
    const r = searchLayouts({ model, chip, chips: 16384, globalBatch: 4096 });
    assert.ok(r.considered > 1000, `${name}: only ${r.considered} layouts`);
  }
});

test('too large for the chips at any layout: says the least memory needed and the chip count that works', () => {
  const o = { model: loadModel('dense-1t'), chip, chips: 64, globalBatch: 512 };
  const r = searchLayouts(o);
  assert.equal(r.ranked.length, 0);
  const e = impossibleError(o, r);
  assert.match(e.message, /does not fit on 64 x ascend-910b .* needs \d+\.\d GiB per chip\. It becomes possible with \d+ chips/);
  assert.equal((e as unknown as { userFacing: boolean }).userFacing, true);
});

test('a global batch no layout can split gets told which batch to use', () => {
  const o = { model: loadModel('dense-1t'), chip, chips: 8192, globalBatch: 7, fixed: { tp: 8, pp: 8 } };
  const r = searchLayouts(o);
  assert.equal(r.ranked.length, 0);
  assert.match(impossibleError(o, r).message, /global batch 7.*multiple of/);
});

test('the reason names the runner-up even when only the best layout is kept', () => {
  const r = searchLayouts({ model: loadModel('dense-1t'), chip, chips: 4096, globalBatch: 8192, tokens: 1e13, keep: 1 });
  assert.equal(r.ranked.length, 1);
  assert.match(r.reason, /wins: .* faster per step than the next shape/);
});
