// Autograd over several live graphs (what pipeline schedules need): backward(loss) runs and frees
// only the graph reachable from loss, a stage's output takes a seed gradient and its input collects
// one as a leaf, and collectives are differentiable ops whose backward communicates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceBackend } from '../src/backend/reference/reference-backend.js';
import { preset } from '../src/nn/presets.js';
import { Transformer } from '../src/nn/transformer.js';
import * as T from '../src/tensor/ops.js';
import { backward, backwardAsync, detach, freeGraph, stageInput, tapeLength } from '../src/tensor/autograd.js';
import { tidy } from '../src/tensor/scope.js';
import { copyToGroup, gatherFromGroup, reduceFromGroup, scatterToGroup } from '../src/dist/differentiable.js';
import { loopbackGroup } from './dist-loopback.js';

const be = new ReferenceBackend();

function param(values: number[]) {
  const w = T.tensor(be, values);
  w.requiresGrad = true;
  return w;
}

test('forward A, forward B, backward A, backward B: both gradients accumulate (the issue case)', async () => {
  const w = param([1, 1, 1]);
  const a = T.sum(T.mulScalar(w, 1));
  const b = T.sum(T.mulScalar(w, 10));
  const liveBoth = tapeLength();
  backward(a);
  assert.deepEqual(await w.grad!.toArray(), [1, 1, 1]);
  assert.ok(tapeLength() > 0 && tapeLength() < liveBoth, "B's graph is still live after A's backward");
  backward(b);
  assert.deepEqual(await w.grad!.toArray(), [11, 11, 11]);
  assert.equal(tapeLength(), 0, 'every graph consumed');
  assert.throws(() => backward(b), /already run/);
});

test('a shared prefix: backward of one output leaves the other graph runnable until it is consumed', async () => {
  const w = param([2, 3]);
  const h = T.mul(w, w); // shared
  const a = T.sum(h);
  const b = T.sum(T.mulScalar(w, 5));
  backward(b); // b does not reach h: h's node survives
  assert.deepEqual(await w.grad!.toArray(), [5, 5]);
  backward(a);
  assert.deepEqual(await w.grad!.toArray(), [9, 11]);
});

test('stage boundary: detach + stageInput + a seed gradient give the gradients of the whole graph', async () => {
  const xs = [0.5, -1.5, 2, 0.25];
  const whole = param(xs);
  backward(T.sum(T.square(T.tanh(T.mulScalar(whole, 3)))));
  const want = await whole.grad!.toArray();

  const x = param(xs);
  const y = T.tanh(T.mulScalar(x, 3)); // stage 1's output
  const yIn = stageInput(detach(y)); // stage 2's input, as a receiver would see it
  const loss = T.sum(T.square(yIn));
  backward(loss); // stage 2
  assert.ok(yIn.grad, 'the stage input collected a gradient');
  assert.equal(x.grad, null, "stage 2's backward did not reach stage 1");
  backward(y, yIn.grad!); // stage 1, seeded with what stage 2 sent back
  const got = await x.grad!.toArray();
  got.forEach((g, i) => assert.ok(Math.abs(g - want[i]!) < 1e-6, `x.grad[${i}] ${g} vs ${want[i]}`));
  assert.throws(() => backward(y, T.zeros(be, [3])), /does not match the output/);
  const twice = T.mulScalar(x, 2);
  assert.throws(() => stageInput(twice), /detach it first/);
  freeGraph(twice); // an abandoned graph is dropped without running it
  assert.equal(tapeLength(), 0);
});

test('a transformer: two micro-batches in flight, backward in either order = one after the other', async () => {
  const cfg = { ...preset('tiny'), layers: 2, dModel: 16, heads: 4, kvHeads: 2, ffnHidden: 24, vocab: 40, seqLen: 8 };
  const m = new Transformer(cfg, be, { seed: 3 });
  const batch = (k: number) => ({
    ids: T.tensor(be, Int32Array.from({ length: 16 }, (_, i) => (i * 7 + k * 5) % 40), [2, 8], 'i32'),
    tg: T.tensor(be, Int32Array.from({ length: 16 }, (_, i) => (i * 3 + k) % 40), [16], 'i32'),
  });
  const grads = () => [...m.params.tensors.values()].map((p) => p.grad!.dataSync().slice());
  for (const k of [0, 1]) tidy(() => backward(m.loss(batch(k).ids, batch(k).tg).loss));
  const sequential = grads();
  m.params.zeroGrad();
  tidy(() => {
    const l0 = m.loss(batch(0).ids, batch(0).tg).loss;
    const l1 = m.loss(batch(1).ids, batch(1).tg).loss;
    backward(l0); // the first micro-batch's backward must not free the second's graph
    backward(l1);
  });
  const interleaved = grads();
  sequential.forEach((g, i) => g.forEach((v, j) => assert.ok(Math.abs(v - interleaved[i]![j]!) <= 1e-5 * (1 + Math.abs(v)), `param ${i}[${j}]: ${interleaved[i]![j]} vs ${v}`)));
  assert.equal(tapeLength(), 0);
  m.dispose();
});

test('differentiable collectives over a group of 2: forward values and adjoint gradients', async () => {
  const group = loopbackGroup(2);
  const xsOf = (r: number) => [1 + r, 2 * (r + 1), -r, 0.5];
  const run = async (r: number) => {
    const comm = group[r]!;
    const x = param(xsOf(r));
    const w = T.tensor(be, [1, 2, 3, 4 + r]); // a per-rank weight so gradients differ by rank
    const s = await reduceFromGroup(x, comm); // Σ_r x_r
    const c = await copyToGroup(x, comm); // x, gradient summed in backward
    const g = await gatherFromGroup(T.reshape(x, [2, 2]), comm); // [4, 2]
    const sc = await scatterToGroup(T.reshape(x, [2, 2]), comm); // this rank's row of Σ_r x_r
    const loss = T.add(T.add(T.sum(T.mul(s, w)), T.sum(T.mul(c, w))), T.add(T.sum(T.mulScalar(g, r + 1)), T.sum(T.mulScalar(sc, 10))));
    assert.throws(() => backward(loss), /use backwardAsync/);
    return { x, s: await s.toArray(), g: await g.toArray(), sc: await sc.toArray() };
  };
  const outs = await Promise.all([0, 1].map(run));
  const sum = xsOf(0).map((v, i) => v + xsOf(1)[i]!);
  for (const o of outs) {
    assert.deepEqual(o.s, sum);
    assert.deepEqual(o.g, [...xsOf(0), ...xsOf(1)]);
  }
  assert.deepEqual(outs[0]!.sc, sum.slice(0, 2));
  assert.deepEqual(outs[1]!.sc, sum.slice(2));

  // gradients, done again with backwardAsync on both ranks concurrently
  const grads = await Promise.all(
    [0, 1].map(async (r) => {
      const comm = group[r]!;
      const x = param(xsOf(r));
      const w = T.tensor(be, [1, 2, 3, 4 + r]);
      const s = await reduceFromGroup(x, comm);
      const c = await copyToGroup(x, comm);
      const g = await gatherFromGroup(T.reshape(x, [2, 2]), comm);
      const sc = await scatterToGroup(T.reshape(x, [2, 2]), comm);
      const loss = T.add(T.add(T.sum(T.mul(s, w)), T.sum(T.mul(c, w))), T.add(T.sum(T.mulScalar(g, r + 1)), T.sum(T.mulScalar(sc, 10))));
      await backwardAsync(loss);
      return x.grad!.toArray();
    }),
  );
  // d/dx_r: reduce → w_r (identity backward); copy → Σ_q w_q; gather → Σ_q (q+1) over x_r's rows; scatter → 10 everywhere
  const wOf = (r: number) => [1, 2, 3, 4 + r];
  for (const r of [0, 1]) {
    const want = wOf(r).map((v, i) => v + wOf(0)[i]! + wOf(1)[i]! + (1 + 2) + 10);
    assert.deepEqual(grads[r], want, `rank ${r}`);
  }
});
