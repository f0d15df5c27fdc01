// Q/K/V and gate/up in one GEMM (src/nn/fused-projection.ts, splitColumns in src/tensor/ops.ts):
// gradients against finite differences in float64 when every part is used and when some are not
// (the gradient assembly must then leave zeros for them), no leaked buffers, and on the cpu backend
// in bf16 the same outputs and gradients as one linear per weight.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceBackend } from '../src/backend/reference/reference-backend.js';
import { gradcheck } from '../src/tensor/gradcheck.js';
import * as T from '../src/tensor/ops.js';
import { backward } from '../src/tensor/autograd.js';
import { tidy } from '../src/tensor/scope.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { projectMany } from '../src/nn/fused-projection.js';
import { linear } from '../src/nn/linear.js';
import { nativeAvailable } from '../src/backend/cpu/native.js';

const data = (n: number, seed: number) => Float64Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 1.3));

test('projectMany: gradients match finite differences whichever parts are used', () => {
  const be = new ReferenceBackend();
  const inputs = [
    { data: data(4 * 5, 1), shape: [4, 5] },
    { data: data(3 * 5, 2), shape: [3, 5] },
    { data: data(2 * 5, 3), shape: [2, 5] },
    { data: data(2 * 5, 4), shape: [2, 5] },
  ];
  const uses: [string, (p: Tensor[]) => Tensor][] = [
    ['all', (p) => T.concat([T.mul(p[0]!, p[0]!), T.mul(p[1]!, p[2]!)], 1)],
    ['first unused', (p) => T.mul(p[1]!, p[2]!)],
    ['middle unused', (p) => T.concat([p[0]!, p[2]!], 1)],
    ['last only', (p) => T.mul(p[2]!, p[2]!)],
  ];
  for (const [name, use] of uses) {
    const live = be.memory().liveBuffers;
    const r = gradcheck(be, ([x, a, b, c]) => use(projectMany(x!, [a!, b!, c!], 'f32')), inputs);
    assert.ok(r.maxError < 1e-6, `${name}: max error ${r.maxError.toExponential(2)} at ${r.worst}`);
    assert.equal(be.memory().liveBuffers, live, `${name}: no buffer may outlive the check`);
  }
});

test('splitColumns rejects sizes that do not add up', () => {
  const be = new ReferenceBackend();
  const x = T.tensor(be, new Float32Array(12), [3, 4]);
  assert.throws(() => T.splitColumns(x, [1, 2]), /sizes 1\+2 must be positive and add up to the 4 columns of \[3, 4\]/);
  x.dispose();
});

test('cpu bf16: one GEMM for three weights equals three linears (outputs and gradients)', { skip: !nativeAvailable() && 'native addon not built' }, async () => {
  const { CpuBackend } = await import('../src/backend/cpu/cpu-backend.js');
  const be = new CpuBackend();
  const mk = (n: number, seed: number, shape: number[]) => {
    const t = T.tensor(be, Float32Array.from(data(n, seed)), shape);
    t.requiresGrad = true;
    return t;
  };
  const run = (fused: boolean) => {
    const x = mk(64 * 32, 1, [64, 32]), ws = [mk(48 * 32, 2, [48, 32]), mk(16 * 32, 3, [16, 32]), mk(16 * 32, 4, [16, 32])];
    const outs: Float32Array[] = [];
    tidy(() => {
      const parts = fused ? projectMany(x, ws, 'bf16') : ws.map((w) => linear(x, w, 'bf16'));
      outs.push(...parts.map((p) => p.dataSync() as Float32Array));
      backward(T.add(T.sum(T.mul(parts[0]!, parts[0]!)), T.sum(T.mul(parts[1]!, parts[2]!))));
    });
    const grads = [x, ...ws].map((t) => t.grad!.dataSync() as Float32Array);
    for (const t of [x, ...ws]) {
      t.grad!.dispose();
      t.dispose();
    }
    return { outs, grads };
  };
  const live = be.memory().liveBuffers;
  const a = run(true), b = run(false);
  assert.equal(be.memory().liveBuffers, live);
  // same bf16 roundings and f32 accumulation: equal up to summation order
  const close = (p: Float32Array, q: Float32Array, what: string) => p.forEach((v, i) => assert.ok(Math.abs(v - q[i]!) <= 1e-4 * (1 + Math.abs(q[i]!)), `${what}[${i}]: ${v} vs ${q[i]}`));
  a.outs.forEach((o, i) => close(o, b.outs[i]!, `output ${i}`));
  a.grads.forEach((g, i) => close(g, b.grads[i]!, `gradient ${i}`));
});
