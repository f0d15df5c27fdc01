// Backward outside any tidy scope frees everything it made: for every differentiable op of the
// conformance cases (fused and composed paths, and the cpu backend's fused routines), the forward
// runs in a scope (its temporaries belong to the case), backward runs outside one, and after the
// output, the inputs and their gradients are disposed no buffer may remain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../src/backend/contract.js';
import { ReferenceBackend } from '../src/backend/reference/reference-backend.js';
import { OP_CASES, caseData } from '../src/backend/conformance/cases.js';
import * as T from '../src/tensor/ops.js';
import { backward } from '../src/tensor/autograd.js';
import { tidy } from '../src/tensor/scope.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { nativeAvailable } from '../src/backend/cpu/native.js';

async function backends(): Promise<[string, Backend, 'f64' | 'f32'][]> {
  const list: [string, Backend, 'f64' | 'f32'][] = [
    ['reference fused', new ReferenceBackend({ fused: true }), 'f64'],
    ['reference composed', new ReferenceBackend({ fused: false }), 'f64'],
  ];
  if (nativeAvailable()) list.push(['cpu', new (await import('../src/backend/cpu/cpu-backend.js')).CpuBackend(), 'f32']);
  return list;
}

test('backward outside tidy leaks no buffer (every differentiable op case)', async () => {
  const leaks: string[] = [];
  for (const [name, be, dt] of await backends()) {
    for (const c of OP_CASES) {
      if (c.differentiable === false) continue;
      const live = be.memory().liveBuffers;
      const xs = c.inputs.map((inp) => {
        const d = caseData(inp);
        return d instanceof Int32Array ? T.tensor(be, d, inp.shape, 'i32') : T.tensor(be, dt === 'f64' ? d : Float32Array.from(d), inp.shape, dt);
      });
      xs.forEach((x) => (x.requiresGrad = x.dtype !== 'i32'));
      let y: Tensor;
      try {
        y = tidy(() => c.f(xs));
      } catch {
        for (const x of xs) x.dispose();
        continue; // an op this backend does not take in this dtype; conformance tests cover it
      }
      const loss = T.sum(y);
      backward(loss);
      loss.dispose();
      y.dispose();
      for (const x of xs) {
        x.grad?.dispose();
        x.dispose();
      }
      const d = be.memory().liveBuffers - live;
      if (d !== 0) leaks.push(`${name}: ${c.name} leaves ${d} buffer(s)`);
    }
  }
  assert.deepEqual(leaks, []);
});
