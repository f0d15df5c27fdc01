// The transformer on the cpu/reference backends: exact parameter counts, recomputation gives the
// same loss and gradients, MoE routing and balancing, KV-cache decoding equals a full forward.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceBackend } from '../src/backend/reference/reference-backend.js';
import { preset } from '../src/nn/presets.js';
import { countParams } from '../src/nn/param-count.js';
import { Transformer } from '../src/nn/transformer.js';
import { route, updateBias } from '../src/nn/moe.js';
import type { ModelConfig } from '../src/nn/config.js';
import { KvCache } from '../src/infer/kv-cache.js';
import * as T from '../src/tensor/ops.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { tidy } from '../src/tensor/scope.js';

const be = new ReferenceBackend();
const micro = (moe: boolean): ModelConfig => ({
  ...preset(moe ? 'tiny-moe' : 'tiny'), name: moe ? 'micro-moe' : 'micro', layers: 2, dModel: 16, heads: 4, kvHeads: 2, ffnHidden: 24, vocab: 40, seqLen: 8,
  ...(moe ? { moe: { ...preset('tiny-moe').moe!, experts: 4, topK: 2, expertFfnHidden: 8, denseLayers: 1 } } : {}),
});

function step(m: Transformer, seed: number): { loss: number; grads: Map<string, number[]> } {
  const c = m.config;
  const ids = Int32Array.from({ length: 2 * c.seqLen }, (_, i) => (i * 13 + seed) % c.vocab);
  const tg = Int32Array.from({ length: 2 * c.seqLen }, (_, i) => (i * 13 + seed + 5) % c.vocab);
  const loss = tidy(() => {
    const { loss } = m.loss(T.tensor(be, ids, [2, c.seqLen]), T.tensor(be, tg));
    backward(loss);
    return loss.dataSync()[0]!;
  });
  const grads = new Map<string, number[]>();
  for (const [n, p] of m.params.tensors) grads.set(n, Array.from(p.grad!.dataSync()));
  m.params.zeroGrad();
  return { loss, grads };
}

test('every FFN kind builds the matrices countParams counts (gated kinds have w3)', () => {
  for (const ffnKind of ['swiglu', 'geglu', 'gelu', 'relu'] as const) {
    const m = new Transformer({ ...micro(true), ffnKind }, be, { seed: 1 });
    assert.equal(m.params.count(), countParams(m.config).total, ffnKind);
    assert.equal(m.params.tensors.has('layers.0.feed_forward.w3.weight'), ffnKind === 'swiglu' || ffnKind === 'geglu', ffnKind);
    m.dispose();
  }
});

for (const moe of [false, true]) {
  test(`parameter count equals countParams (${moe ? 'MoE' : 'dense'})`, () => {
    const m = new Transformer(micro(moe), be, { seed: 1 });
    assert.equal(m.params.count(), countParams(m.config).total);
    m.dispose();
  });

  test(`full recomputation gives bit-identical loss and gradients (${moe ? 'MoE' : 'dense'})`, () => {
    const a = new Transformer(micro(moe), be, { seed: 3 });
    const b = new Transformer(micro(moe), be, { seed: 3, recompute: 'full' });
    const ra = step(a, 1), rb = step(b, 1);
    assert.equal(ra.loss, rb.loss);
    for (const [n, g] of ra.grads) assert.deepEqual(rb.grads.get(n), g, n);
    a.dispose();
    b.dispose();
  });
}

test('KV-cache decoding gives the logits of a full forward', () => {
  const m = new Transformer(micro(false), be, { seed: 5 });
  const ids = Int32Array.from([3, 9, 27, 1, 14, 7]);
  noGrad(() =>
    tidy(() => {
      const full = m.forward(T.tensor(be, ids, [1, 6])).logits.dataSync();
      const cache = new KvCache(be, m.config, 1, 8);
      const pre = m.forward(T.tensor(be, ids.slice(0, 4), [1, 4]), { cache }).logits.dataSync();
      cache.advance(4);
      const l4 = m.forward(T.tensor(be, ids.slice(4, 5), [1, 1]), { cache }).logits.dataSync();
      cache.advance(1);
      const l5 = m.forward(T.tensor(be, ids.slice(5, 6), [1, 1]), { cache }).logits.dataSync();
      cache.dispose();
      const V = m.config.vocab;
      const close = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).every((x, i) => Math.abs(x - b[i]!) < 1e-5);
      assert.ok(close(pre, full.slice(0, 4 * V)), 'prefill');
      assert.ok(close(l4, full.slice(4 * V, 5 * V)), 'position 4');
      assert.ok(close(l5, full.slice(5 * V, 6 * V)), 'position 5');
    }),
  );
  m.dispose();
});

test('routing picks the top-k of probability + bias, ties to the lower expert', () => {
  const m = { experts: 4, topK: 2, expertFfnHidden: 1, sharedExperts: 0, denseLayers: 0, balance: 'bias' as const, auxLossCoef: 0, biasUpdateRate: 0.1 };
  const probs = Float32Array.from([0.1, 0.4, 0.4, 0.1, 0.7, 0.1, 0.1, 0.1]);
  const r = route(probs, 2, m, null);
  assert.deepEqual(Array.from(r.experts), [1, 2, 0, 1]);
  assert.deepEqual(r.loads, [1, 2, 1, 0]);
  const bias = new Float64Array(4);
  updateBias(bias, r.loads, 0.1);
  assert.deepEqual(Array.from(bias), [0, -0.1, 0, 0.1]);
  const r2 = route(probs, 2, m, Float64Array.from([0, 0, 0, 0.35]));
  assert.deepEqual(Array.from(r2.experts.slice(0, 2)), [3, 1]);
});
