// Feed-forward blocks: gated SwiGLU (w2 · (silu(w1 x) ⊙ w3 x), LLaMA) or GeGLU (w2 · (gelu(w1 x) ⊙
// w3 x)), or two-matrix GELU (w2 · gelu(w1 x), GPT) or ReLU. GELU is the tanh approximation.
import { type ModelConfig, isGatedFfn } from './config.js';
import { type ComputeDtype, linear } from './linear.js';
import { fusedProjections, projectMany } from './fused-projection.js';
import type { ParameterStore } from './parameters.js';
import * as T from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';

export function createMlpParams(ps: ParameterStore, c: ModelConfig, prefix: string, hidden: number): void {
  ps.create(`${prefix}.w1.weight`, [hidden, c.dModel], { kind: 'normal', std: 0.02 });
  if (isGatedFfn(c.ffnKind)) ps.create(`${prefix}.w3.weight`, [hidden, c.dModel], { kind: 'normal', std: 0.02 });
  ps.create(`${prefix}.w2.weight`, [c.dModel, hidden], { kind: 'normal', std: 0.02 / Math.sqrt(2 * c.layers) });
}

/** x [N, d] → [N, d] */
export function mlp(ps: ParameterStore, c: ModelConfig, prefix: string, x: Tensor, dtype: ComputeDtype): Tensor {
  const gated = c.ffnKind === 'swiglu' || c.ffnKind === 'geglu';
  if (c.ffnKind === 'swiglu' && fusedProjections()) {
    // gate and up in one GEMM, SwiGLU straight from its packed output (no split copies)
    const gu = T.linearPacked(x, [ps.get(`${prefix}.w1.weight`), ps.get(`${prefix}.w3.weight`)], dtype);
    const h = T.swigluPacked(gu);
    gu.dispose();
    const y = linear(h, ps.get(`${prefix}.w2.weight`), dtype);
    h.dispose();
    return y;
  }
  // gated: gate (w1) and up (w3) projections in one GEMM
  const [h1, h3] = gated ? (projectMany(x, [ps.get(`${prefix}.w1.weight`), ps.get(`${prefix}.w3.weight`)], dtype) as [Tensor, Tensor]) : [linear(x, ps.get(`${prefix}.w1.weight`), dtype), undefined];
  let h: Tensor;
  if (h3) {
    if (c.ffnKind === 'swiglu') h = T.swiglu(h1, h3);
    else {
      const g = T.gelu(h1);
      h = T.mul(g, h3);
      g.dispose();
    }
    h3.dispose();
  } else h = c.ffnKind === 'relu' ? T.relu(h1) : T.gelu(h1);
  h1.dispose();
  const y = linear(h, ps.get(`${prefix}.w2.weight`), dtype);
  h.dispose();
  return y;
}
