// Reliability: interruptions from a per-chip failure rate, Young/Daly checkpoint interval, goodput.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkpointBytes, daly, reliability } from '../src/plan/reliability.js';
import { DEFAULT_CLUSTER } from '../src/plan/cluster.js';

test('default failure rate reproduces Llama 3: ~54 interruptions/week on 16,384 chips', () => {
  const r = reliability(16384, 405e9, DEFAULT_CLUSTER);
  // 419 unexpected interruptions in 54 days = 54.3 per week
  assert.ok(Math.abs(r.interruptionsPerWeek - (419 / 54) * 7) < 1.5, `${r.interruptionsPerWeek}`);
  // the Chinese operator's 1.5/week on 10,000 chips corresponds to a much lower rate
  const low = reliability(10000, 1e12, { ...DEFAULT_CLUSTER, failuresPerChipYear: 1.5 * 52.18 / 10000 });
  assert.ok(Math.abs(low.interruptionsPerWeek - 1.5) < 0.01);
});

test('Young/Daly interval: sqrt(2 delta M) to first order, Daly correction below it', () => {
  const delta = 120, M = 6 * 3600;
  const young = Math.sqrt(2 * delta * M);
  const d = daly(delta, M);
  assert.ok(d < young + 0.05 * young && d > 0.9 * young);
  assert.equal(daly(100, 10), 10); // delta >= 2M: checkpoint every MTBF
  const r = reliability(8192, 1e12, { ...DEFAULT_CLUSTER, storageWriteGBs: 140 });
  assert.equal(r.checkpointGB, checkpointBytes(1e12) / 1e9);
  assert.ok(Math.abs(r.checkpointWriteS - 100) < 1e-9);
  assert.ok(Math.abs(r.youngIntervalS - Math.sqrt(2 * 100 * r.mtbfHours * 3600)) < 1e-6);
  assert.ok(r.goodput > 0.7 && r.goodput < 1);
});

test('no failures: goodput 1 and no checkpoint pressure', () => {
  const r = reliability(1024, 1e9, { ...DEFAULT_CLUSTER, failuresPerChipYear: 0 });
  assert.equal(r.interruptionsPerWeek, 0);
  assert.equal(r.goodput, 1);
});
