// AdamW: the fused routine (cpu, reference) equals the composition of primitives and a scalar
// hand computation; clipping scales by clipNorm / norm; norms get no weight decay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceBackend } from '../src/backend/reference/reference-backend.js';
import { ParameterStore } from '../src/nn/parameters.js';
import { AdamW } from '../src/optim/adamw.js';
import * as T from '../src/tensor/ops.js';
import { keep } from '../src/tensor/scope.js';

async function run(fused: boolean, clipNorm: number): Promise<number[][]> {
  const be = new ReferenceBackend({ fused });
  const ps = new ParameterStore(be, 1);
  const w = ps.create('w', [3], { kind: 'normal', std: 1 });
  ps.create('norm.weight', [2], { kind: 'ones' }, { decay: false });
  const opt = new AdamW(ps, { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, clipNorm });
  const out: number[][] = [];
  for (let s = 0; s < 3; s++) {
    for (const p of ps.tensors.values()) p.grad = keep(T.tensor(be, p.numel === 3 ? [0.5, -1, 2] : [3, -4]));
    await opt.update(0.01);
    ps.zeroGrad();
    out.push([...Array.from(w.dataSync()), ...Array.from(ps.get('norm.weight').dataSync())]);
  }
  return out;
}

test('fused AdamW equals the composition and a hand computation', async () => {
  const a = await run(true, 0), b = await run(false, 0);
  for (let s = 0; s < a.length; s++) for (let i = 0; i < a[s]!.length; i++) assert.ok(Math.abs(a[s]![i]! - b[s]![i]!) < 1e-6);
  // norm weight: no decay; constant gradient g → m̂ = g, v̂ = g², update = lr·sign(g) (1 - tiny eps effect)
  assert.ok(Math.abs(a[0]![3]! - (1 - 0.01)) < 1e-6 && Math.abs(a[0]![4]! - (1 + 0.01)) < 1e-6);
  assert.ok(Math.abs(a[2]![3]! - (1 - 0.03)) < 1e-6);
});

// beta1 = beta2 = 0 makes the update g / (|g| + eps) per element; eps = 1 keeps it sensitive to the
// scale of g, so a wrong clip factor changes the weights (with eps ~ 0 any factor would give sign(g)).
async function clipped(clipNorm: number, grad: number[]): Promise<{ norm: number; w: number[] }> {
  const be = new ReferenceBackend();
  const ps = new ParameterStore(be, 1);
  const w = ps.create('w', [grad.length], { kind: 'zeros' });
  const opt = new AdamW(ps, { beta1: 0, beta2: 0, eps: 1, weightDecay: 0, clipNorm });
  w.grad = keep(T.tensor(be, grad));
  const norm = await opt.update(1);
  return { norm, w: Array.from(w.dataSync()) };
}

test('clipping scales gradients to the clip norm', async () => {
  const g = [3, 4]; // norm 5
  for (const clip of [1, 2.5]) {
    const r = await clipped(clip, g);
    assert.ok(Math.abs(r.norm - 5) < 1e-6, 'returns the norm before clipping');
    r.w.forEach((wi, i) => {
      const gc = (g[i]! * clip) / 5;
      assert.ok(Math.abs(wi - -gc / (Math.abs(gc) + 1)) < 1e-5, `clip ${clip}: w[${i}] = ${wi}, expected ${-gc / (Math.abs(gc) + 1)}`);
    });
  }
  // a clip norm above the gradient norm leaves the gradient as it is
  const r = await clipped(10, g);
  r.w.forEach((wi, i) => assert.ok(Math.abs(wi - -g[i]! / (g[i]! + 1)) < 1e-5));
});
