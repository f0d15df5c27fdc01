// Tensor ops on the reference backend: values, broadcasting, shape errors and autograd basics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceBackend } from '../src/backend/reference/reference-backend.js';
import * as T from '../src/tensor/ops.js';
import { backward, noGrad, tapeLength } from '../src/tensor/autograd.js';
import { tidy } from '../src/tensor/scope.js';

const be = new ReferenceBackend();

test('add broadcasts and matmul multiplies', async () => {
  tidy(() => {
    const a = T.tensor(be, [1, 2, 3, 4, 5, 6], [2, 3]);
    const b = T.tensor(be, [10, 20, 30], [3]);
    assert.deepEqual(T.add(a, b).dataSync(), Float32Array.from([11, 22, 33, 14, 25, 36]));
    const w = T.tensor(be, [1, 0, 0, 1, 1, 1], [3, 2]);
    assert.deepEqual(T.matmul(a, w).dataSync(), Float32Array.from([4, 5, 10, 11]));
    assert.deepEqual(T.matmul(a, a, { transB: true }).dataSync(), Float32Array.from([14, 32, 32, 77]));
  });
});

test('shape and dtype errors name the op, the shapes and the fix', () => {
  tidy(() => {
    const a = T.zeros(be, [2, 3]);
    const b = T.zeros(be, [4, 5]);
    assert.throws(() => T.matmul(a, b), /matmul: inner dimensions differ: \[2, 3\] @ \[4, 5\] \(k = 3 vs 4\)/);
    assert.throws(() => T.add(a, b), /add: shapes \[2, 3\] and \[4, 5\] do not broadcast/);
    const i = T.zeros(be, [2, 3], 'i32');
    assert.throws(() => T.add(a, i), /add: dtype mismatch, f32 \[2, 3\] vs i32 \[2, 3\]; cast one operand/);
  });
});

test('backward of a small expression matches hand-derived gradients', () => {
  const x = T.tensor(be, [1, 2, 3], [3]);
  x.requiresGrad = true;
  tidy(() => {
    // y = sum(x^2 * 3 + x)  → dy/dx = 6x + 1
    const y = T.sum(T.add(T.mulScalar(T.square(x), 3), x));
    backward(y);
  });
  assert.deepEqual(x.grad!.dataSync(), Float32Array.from([7, 13, 19]));
  assert.equal(tapeLength(), 0);
  x.grad!.dispose();
  x.dispose();
});

test('tidy frees temporaries and backward frees the tape: no leaked buffers', () => {
  const before = be.memory().liveBuffers;
  const w = T.random(be, [4, 3], { seed: 1 });
  w.requiresGrad = true;
  for (let step = 0; step < 3; step++)
    tidy(() => {
      const x = T.random(be, [5, 4], { seed: 2, offset: step * 20 });
      const y = T.softmax(T.matmul(x, w));
      backward(T.mean(T.square(y)));
    });
  assert.equal(tapeLength(), 0);
  assert.equal(be.memory().liveBuffers, before + 2, 'only w and w.grad stay alive');
  noGrad(() => tidy(() => T.matmul(w, w, { transB: true }))).dispose();
  w.grad!.dispose();
  w.dispose();
  assert.equal(be.memory().liveBuffers, before);
});
