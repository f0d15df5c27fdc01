// Golden values of the learning-rate schedules (linear warmup + cosine decay to minLr; constant).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lrAt, validateSchedule } from '../src/optim/schedule.js';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) <= 1e-15 + 1e-12 * Math.abs(b), `${a} vs ${b}`);

test('warmup then cosine: golden values', () => {
  const s = { maxLr: 1e-3, minLr: 1e-4, warmupSteps: 10, totalSteps: 110 };
  close(lrAt(1, s), 1e-4);
  close(lrAt(5, s), 5e-4);
  close(lrAt(10, s), 1e-3);
  close(lrAt(35, s), 8.681980515339464e-4); // t = 1/4: 1e-4 + 4.5e-4 * (1 + cos(pi/4))
  close(lrAt(60, s), 5.5e-4); // t = 1/2
  close(lrAt(85, s), 2.318019484660536e-4); // t = 3/4
  assert.equal(lrAt(110, s), 1e-4);
  assert.equal(lrAt(500, s), 1e-4);
  for (let i = 11; i < 110; i++) assert.ok(lrAt(i + 1, s) < lrAt(i, s), `decreasing at ${i}`);
});

test('no warmup starts the cosine at (almost) maxLr; constant schedules', () => {
  const s = { kind: 'cosine' as const, maxLr: 2, minLr: 0, warmupSteps: 0, totalSteps: 4 };
  close(lrAt(1, s), 1 + Math.cos(Math.PI / 4));
  close(lrAt(2, s), 1);
  assert.equal(lrAt(4, s), 0);
  assert.equal(lrAt(1, { kind: 'constant', lr: 3e-4 }), 3e-4);
  assert.equal(lrAt(999, { kind: 'constant', lr: 3e-4 }), 3e-4);
  close(lrAt(2, { kind: 'constant', lr: 3e-4, warmupSteps: 4 }), 1.5e-4);
});

test('bad schedules and steps are rejected with the field named', () => {
  assert.throws(() => validateSchedule({ maxLr: 1e-3, minLr: 1e-4, warmupSteps: 200, totalSteps: 100 }), /warmupSteps 200 exceeds totalSteps 100/);
  assert.throws(() => validateSchedule({ maxLr: 1e-4, minLr: 1e-3, warmupSteps: 0, totalSteps: 100 }), /minLr .* above maxLr/);
  assert.throws(() => validateSchedule({ kind: 'constant', lr: -1 }), /lr must be/);
  assert.throws(() => lrAt(0, { kind: 'constant', lr: 1 }), /1-based/);
});
