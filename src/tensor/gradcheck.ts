// Gradient check: compares autograd gradients with central finite differences in float64.
// Used by the test suite for every differentiable op, on the fused and the composed paths.
import type { Backend } from '../backend/contract.js';
import { backward, noGrad } from './autograd.js';
import * as T from './ops.js';
import { tidy } from './scope.js';
import type { Tensor } from './tensor.js';

export interface GradcheckResult {
  /** largest |analytic - numeric| / max(1, |numeric|) over all checked entries */
  maxError: number;
  worst: string;
}

/**
 * f maps f64 input tensors to an f64 output; the check contracts the output with fixed random
 * weights so every output element contributes. `inputs` are host arrays with shapes; entries with
 * `grad: false` (e.g. integer ids) are passed through unchanged.
 */
export function gradcheck(
  backend: Backend,
  f: (xs: Tensor[]) => Tensor,
  inputs: { data: Float64Array | Int32Array; shape: number[]; grad?: boolean }[],
  opts: { eps?: number; seed?: number; maxPerInput?: number } = {},
): GradcheckResult {
  const eps = opts.eps ?? 1e-6;
  const make = () => inputs.map((inp) => T.tensor(backend, inp.data, inp.shape, inp.data instanceof Int32Array ? 'i32' : 'f64'));
  let weights: Float64Array | null = null;
  const lossOf = (xs: Tensor[]): Tensor => {
    const y = f(xs);
    if (!weights) {
      weights = new Float64Array(y.numel);
      let s = opts.seed ?? 7;
      for (let i = 0; i < weights.length; i++) {
        s = (s * 1103515245 + 12345) % 2147483648;
        weights[i] = s / 2147483648 - 0.5;
      }
    }
    const w = T.tensor(backend, weights, y.shape, 'f64');
    return T.sum(T.mul(y, w));
  };
  // analytic
  const xs = make();
  xs.forEach((x, i) => (x.requiresGrad = inputs[i]!.grad !== false && inputs[i]!.data instanceof Float64Array));
  tidy(() => backward(lossOf(xs)));
  let maxError = 0;
  let worst = '';
  for (let i = 0; i < inputs.length; i++) {
    const inp = inputs[i]!;
    if (!xs[i]!.requiresGrad) continue;
    const analytic = xs[i]!.grad ? (xs[i]!.grad!.dataSync() as Float64Array) : new Float64Array(inp.data.length);
    const data = inp.data as Float64Array;
    // every element of small inputs; an evenly spaced sample (first and last included) of large ones
    const limit = opts.maxPerInput ?? 24;
    const picks = data.length <= limit ? data.map((_, j) => j) : Array.from({ length: limit }, (_, t) => Math.round((t * (data.length - 1)) / (limit - 1)));
    for (const j of picks) {
      const orig = data[j]!;
      const evalAt = (v: number) => {
        data[j] = v;
        return noGrad(() =>
          tidy(() => {
            const ys = make();
            return lossOf(ys).dataSync()[0]! as number;
          }),
        );
      };
      const numeric = (evalAt(orig + eps) - evalAt(orig - eps)) / (2 * eps);
      data[j] = orig;
      const err = Math.abs(analytic[j]! - numeric) / Math.max(1, Math.abs(numeric));
      if (err > maxError) {
        maxError = err;
        worst = `input ${i} element ${j}: analytic ${analytic[j]} vs numeric ${numeric}`;
      }
    }
  }
  for (const x of xs) {
    x.grad?.dispose();
    x.dispose();
  }
  return { maxError, worst };
}
