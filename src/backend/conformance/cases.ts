// The op cases of the conformance kit and of gradcheck: one entry per op or routine (and per
// interesting variant: broadcasting, transposes, GQA, ignore-index), with seeded inputs.
import { UNARY_OPS } from '../contract.js';
import * as T from '../../tensor/ops.js';
import type { Tensor } from '../../tensor/tensor.js';

export interface CaseInput {
  /** float inputs are generated in [lo, hi); integer inputs are given */
  shape: number[];
  seed?: number;
  lo?: number;
  hi?: number;
  ints?: number[];
}

export interface OpCase {
  name: string;
  f: (xs: Tensor[]) => Tensor;
  inputs: CaseInput[];
  /** false for ops without a gradient (comparisons) */
  differentiable?: boolean;
}

/** Deterministic inputs (Park–Miller), identical for every backend and dtype. */
export function caseData(inp: CaseInput): Float64Array | Int32Array {
  if (inp.ints) return Int32Array.from(inp.ints);
  const n = inp.shape.reduce((a, b) => a * b, 1);
  const lo = inp.lo ?? -1, hi = inp.hi ?? 1;
  const a = new Float64Array(n);
  let s = inp.seed ?? 1;
  for (let i = 0; i < n; i++) {
    s = (s * 16807) % 2147483647;
    a[i] = lo + ((hi - lo) * s) / 2147483647;
  }
  return a;
}

const f = (shape: number[], seed: number, lo = -1, hi = 1): CaseInput => ({ shape, seed, lo, hi });
const ids = (values: number[]): CaseInput => ({ shape: [values.length], ints: values });
const unaryFns = T as unknown as Record<string, (x: Tensor) => Tensor>;

export const OP_CASES: OpCase[] = [
  ...UNARY_OPS.map((op): OpCase => {
    const positive = op === 'log' || op === 'sqrt' || op === 'rsqrt' || op === 'recip';
    // relu/abs stay away from their kink at 0
    return { name: op, f: ([x]) => unaryFns[op]!(x!), inputs: [positive ? f([3, 4], 11, 0.5, 2) : f([3, 4], 11, 0.1, 1.5)] };
  }),
  { name: 'relu+abs negative side', f: ([x]) => T.add(T.relu(x!), T.abs(x!)), inputs: [f([5], 3, -2, -0.1)] },
  { name: 'add broadcast', f: ([a, b]) => T.add(a!, b!), inputs: [f([2, 3, 4], 1), f([3, 1], 2)] },
  { name: 'sub broadcast', f: ([a, b]) => T.sub(a!, b!), inputs: [f([4], 1), f([2, 4], 2)] },
  { name: 'mul broadcast', f: ([a, b]) => T.mul(a!, b!), inputs: [f([2, 3], 1), f([1, 3], 2)] },
  { name: 'div broadcast', f: ([a, b]) => T.div(a!, b!), inputs: [f([2, 3], 1), f([3], 2, 0.5, 2)] },
  { name: 'maximum', f: ([a, b]) => T.maximum(a!, b!), inputs: [f([6], 1), f([6], 2)] },
  { name: 'minimum', f: ([a, b]) => T.minimum(a!, b!), inputs: [f([6], 1), f([6], 2)] },
  { name: 'pow', f: ([a]) => T.pow(a!, 2.5), inputs: [f([5], 1, 0.5, 2)] },
  { name: 'eq/lt/gt', f: ([a, b]) => T.add(T.add(T.eq(a!, a!), T.lt(a!, b!)), T.gt(a!, b!)), inputs: [f([7], 1), f([7], 2)], differentiable: false },
  { name: 'sum axis', f: ([x]) => T.sum(x!, 1), inputs: [f([2, 3, 4], 5)] },
  { name: 'sum keepdim', f: ([x]) => T.sum(x!, -1, true), inputs: [f([2, 3, 4], 5)] },
  { name: 'mean all', f: ([x]) => T.mean(x!), inputs: [f([2, 3], 5)] },
  { name: 'max axis', f: ([x]) => T.max(x!, 1), inputs: [f([3, 5], 6)] },
  { name: 'reshape', f: ([x]) => T.mul(T.reshape(x!, [3, -1]), T.reshape(x!, [3, 4])), inputs: [f([2, 6], 7)] },
  { name: 'permute', f: ([x]) => T.permute(x!, [2, 0, 1]), inputs: [f([2, 3, 4], 8)] },
  { name: 'transpose', f: ([x]) => T.transpose(x!), inputs: [f([3, 2], 8)] },
  { name: 'slice', f: ([x]) => T.slice(x!, 1, 1, 3), inputs: [f([2, 4, 3], 9)] },
  { name: 'concat', f: ([a, b]) => T.concat([a!, b!], 1), inputs: [f([2, 1, 3], 9), f([2, 2, 3], 10)] },
  // column blocks at odd offsets and widths, both directions of the strided write (split backward, concat forward)
  { name: 'splitColumns', f: ([x]) => { const [a, b, c] = T.splitColumns(x!, [1, 3, 2]); return T.concat([c!, T.mul(a!, b!), a!], 1); }, inputs: [f([5, 6], 11)] },
  { name: 'expand', f: ([x]) => T.expand(x!, [2, 3, 4]), inputs: [f([3, 1], 9)] },
  { name: 'matmul', f: ([a, b]) => T.matmul(a!, b!), inputs: [f([3, 4], 1), f([4, 5], 2)] },
  { name: 'matmul transA', f: ([a, b]) => T.matmul(a!, b!, { transA: true }), inputs: [f([4, 3], 1), f([4, 5], 2)] },
  { name: 'matmul transB', f: ([a, b]) => T.matmul(a!, b!, { transB: true }), inputs: [f([3, 4], 1), f([5, 4], 2)] },
  { name: 'matmul transA transB', f: ([a, b]) => T.matmul(a!, b!, { transA: true, transB: true }), inputs: [f([4, 3], 1), f([5, 4], 2)] },
  { name: 'matmul batched', f: ([a, b]) => T.matmul(a!, b!), inputs: [f([2, 3, 4], 1), f([2, 4, 2], 2)] },
  { name: 'matmul shared weight', f: ([a, b]) => T.matmul(a!, b!, { transB: true }), inputs: [f([2, 3, 4], 1), f([5, 4], 2)] },
  { name: 'matmul shared left', f: ([a, b]) => T.matmul(a!, b!), inputs: [f([3, 4], 1), f([2, 4, 2], 2)] },
  { name: 'matmul large odd', f: ([a, b]) => T.matmul(a!, b!, { transB: true }), inputs: [f([37, 70], 1), f([29, 70], 2)] },
  { name: 'embedding', f: ([t, i]) => T.embedding(t!, i!), inputs: [f([5, 3], 1), ids([4, 0, 4, 2])] },
  { name: 'scatterAddRows', f: ([s, i]) => T.scatterAddRows(s!, i!, 4), inputs: [f([3, 2], 1), ids([1, 3, 1])] },
  { name: 'softmax', f: ([x]) => T.softmax(x!, -1), inputs: [f([3, 5], 4)] },
  { name: 'logSoftmax', f: ([x]) => T.logSoftmax(x!, 0), inputs: [f([3, 5], 4)] },
  { name: 'rmsnorm', f: ([x, w]) => T.rmsnorm(x!, w!, 1e-5), inputs: [f([3, 8], 1), f([8], 2, 0.5, 1.5)] },
  { name: 'rmsnorm wide', f: ([x, w]) => T.rmsnorm(x!, w!, 1e-6), inputs: [f([5, 67], 1), f([67], 2, 0.5, 1.5)] },
  { name: 'rope', f: ([x]) => T.rope(x!, 10000, 3), inputs: [f([2, 3, 2, 4], 1)] },
  { name: 'rope long', f: ([x]) => T.rope(x!, 500000, 0), inputs: [f([1, 33, 3, 16], 1)] },
  { name: 'swiglu', f: ([g, u]) => T.swiglu(g!, u!), inputs: [f([3, 4], 1), f([3, 4], 2)] },
  { name: 'swigluPacked', f: ([gu]) => T.swigluPacked(gu!), inputs: [f([5, 14], 3, -3, 3)] },
  { name: 'attention causal GQA', f: ([q, k, v]) => T.attention(q!, k!, v!), inputs: [f([1, 4, 4, 2], 1), f([1, 4, 2, 2], 2), f([1, 4, 2, 2], 3)] },
  { name: 'attention full MHA', f: ([q, k, v]) => T.attention(q!, k!, v!, { causal: false }), inputs: [f([2, 3, 2, 2], 1), f([2, 3, 2, 2], 2), f([2, 3, 2, 2], 3)] },
  { name: 'attention causal long GQA 4:1', f: ([q, k, v]) => T.attention(q!, k!, v!), inputs: [f([2, 70, 4, 16], 1), f([2, 70, 1, 16], 2), f([2, 70, 1, 16], 3)] },
  { name: 'crossEntropy with ignore', f: ([l, t]) => T.crossEntropy(l!, t!), inputs: [f([4, 6], 1, -2, 2), ids([5, -1, 0, 3])] },
  { name: 'crossEntropy wide', f: ([l, t]) => T.crossEntropy(l!, t!), inputs: [f([3, 300], 1, -4, 4), ids([299, 7, 150])] },
];
