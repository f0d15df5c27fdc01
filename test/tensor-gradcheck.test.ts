// Gradcheck of every differentiable op against central finite differences in float64, on the
// reference backend with fused routines and without them (the compositions a new chip falls back to).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceBackend } from '../src/backend/reference/reference-backend.js';
import { UNARY_OPS } from '../src/backend/contract.js';
import * as T from '../src/tensor/ops.js';
import { gradcheck } from '../src/tensor/gradcheck.js';
import type { Tensor } from '../src/tensor/tensor.js';

function rand(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const a = new Float64Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 16807) % 2147483647;
    a[i] = lo + ((hi - lo) * s) / 2147483647;
  }
  return a;
}
const inp = (shape: number[], seed: number, lo = -1, hi = 1) => ({ data: rand(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape });
const ids = (values: number[]) => ({ data: Int32Array.from(values), shape: [values.length] });

type Case = [string, (xs: Tensor[]) => Tensor, ReturnType<typeof inp | typeof ids>[]];

const cases: Case[] = [
  ...UNARY_OPS.map((op): Case => {
    const positive = op === 'log' || op === 'sqrt' || op === 'rsqrt' || op === 'recip';
    const fn = (T as unknown as Record<string, (x: Tensor) => Tensor>)[op]!;
    // keep relu/abs away from their kink at 0
    return [op, ([x]) => fn(x!), [positive ? inp([3, 4], 11, 0.5, 2) : inp([3, 4], 11, 0.1, 1.5)]];
  }),
  ['neg-side relu/abs', ([x]) => T.add(T.relu(x!), T.abs(x!)), [inp([5], 3, -2, -0.1)]],
  ['add broadcast', ([a, b]) => T.add(a!, b!), [inp([2, 3, 4], 1), inp([3, 1], 2)]],
  ['sub broadcast', ([a, b]) => T.sub(a!, b!), [inp([4], 1), inp([2, 4], 2)]],
  ['mul broadcast', ([a, b]) => T.mul(a!, b!), [inp([2, 3], 1), inp([1, 3], 2)]],
  ['div broadcast', ([a, b]) => T.div(a!, b!), [inp([2, 3], 1), inp([3], 2, 0.5, 2)]],
  ['maximum', ([a, b]) => T.maximum(a!, b!), [inp([6], 1), inp([6], 2)]],
  ['minimum', ([a, b]) => T.minimum(a!, b!), [inp([6], 1), inp([6], 2)]],
  ['pow', ([a]) => T.pow(a!, 2.5), [inp([5], 1, 0.5, 2)]],
  ['sum axis', ([x]) => T.sum(x!, 1), [inp([2, 3, 4], 5)]],
  ['sum keepdim', ([x]) => T.sum(x!, -1, true), [inp([2, 3, 4], 5)]],
  ['mean all', ([x]) => T.mean(x!), [inp([2, 3], 5)]],
  ['max axis', ([x]) => T.max(x!, 1), [inp([3, 5], 6)]],
  ['reshape', ([x]) => T.mul(T.reshape(x!, [3, -1]), T.reshape(x!, [3, 4])), [inp([2, 6], 7)]],
  ['permute', ([x]) => T.permute(x!, [2, 0, 1]), [inp([2, 3, 4], 8)]],
  ['transpose', ([x]) => T.transpose(x!), [inp([3, 2], 8)]],
  ['slice', ([x]) => T.slice(x!, 1, 1, 3), [inp([2, 4, 3], 9)]],
  ['concat', ([a, b]) => T.concat([a!, b!], 1), [inp([2, 1, 3], 9), inp([2, 2, 3], 10)]],
  ['expand', ([x]) => T.expand(x!, [2, 3, 4]), [inp([3, 1], 9)]],
  ['matmul', ([a, b]) => T.matmul(a!, b!), [inp([3, 4], 1), inp([4, 5], 2)]],
  ['matmul transA', ([a, b]) => T.matmul(a!, b!, { transA: true }), [inp([4, 3], 1), inp([4, 5], 2)]],
  ['matmul transB', ([a, b]) => T.matmul(a!, b!, { transB: true }), [inp([3, 4], 1), inp([5, 4], 2)]],
  ['matmul transA transB', ([a, b]) => T.matmul(a!, b!, { transA: true, transB: true }), [inp([4, 3], 1), inp([5, 4], 2)]],
  ['matmul batched', ([a, b]) => T.matmul(a!, b!), [inp([2, 3, 4], 1), inp([2, 4, 2], 2)]],
  ['matmul shared weight', ([a, b]) => T.matmul(a!, b!, { transB: true }), [inp([2, 3, 4], 1), inp([5, 4], 2)]],
  ['matmul shared left', ([a, b]) => T.matmul(a!, b!), [inp([3, 4], 1), inp([2, 4, 2], 2)]],
  ['embedding', ([t, i]) => T.embedding(t!, i!), [inp([5, 3], 1), ids([4, 0, 4, 2])]],
  ['scatterAddRows', ([s, i]) => T.scatterAddRows(s!, i!, 4), [inp([3, 2], 1), ids([1, 3, 1])]],
  ['softmax', ([x]) => T.softmax(x!, -1), [inp([3, 5], 4)]],
  ['logSoftmax', ([x]) => T.logSoftmax(x!, 0), [inp([3, 5], 4)]],
  ['rmsnorm', ([x, w]) => T.rmsnorm(x!, w!, 1e-5), [inp([3, 8], 1), inp([8], 2, 0.5, 1.5)]],
  ['rope', ([x]) => T.rope(x!, 10000, 3), [inp([2, 3, 2, 4], 1)]],
  ['swiglu', ([g, u]) => T.swiglu(g!, u!), [inp([3, 4], 1), inp([3, 4], 2)]],
  ['attention causal GQA', ([q, k, v]) => T.attention(q!, k!, v!), [inp([1, 4, 4, 2], 1), inp([1, 4, 2, 2], 2), inp([1, 4, 2, 2], 3)]],
  ['attention full MHA', ([q, k, v]) => T.attention(q!, k!, v!, { causal: false }), [inp([2, 3, 2, 2], 1), inp([2, 3, 2, 2], 2), inp([2, 3, 2, 2], 3)]],
  ['crossEntropy with ignore', ([l, t]) => T.crossEntropy(l!, t!), [inp([4, 6], 1, -2, 2), ids([5, -1, 0, 3])]],
];

for (const fused of [true, false]) {
  const be = new ReferenceBackend({ fused });
  for (const [name, f, inputs] of cases) {
    test(`gradcheck ${name} (${fused ? 'fused' : 'composed'})`, () => {
      const live = be.memory().liveBuffers;
      const r = gradcheck(be, f, inputs.map((x) => ({ ...x, data: x.data.slice() })));
      assert.ok(r.maxError < 1e-6, `max error ${r.maxError.toExponential(2)} at ${r.worst}`);
      assert.ok(be.memory().liveBuffers <= live + 4, `leaked ${be.memory().liveBuffers - live} buffers`);
    });
  }
}
