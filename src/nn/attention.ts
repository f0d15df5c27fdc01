// Grouped-query self-attention block: Q/K/V projections in one GEMM (fused-projection.ts), RoPE, causal attention (fused or composed by the
// backend), output projection. Optional KV cache for generation.
import type { ModelConfig } from './config.js';
import { headDim } from './config.js';
import { type ComputeDtype, linear } from './linear.js';
import { projectMany } from './fused-projection.js';
import type { ParameterStore } from './parameters.js';
import * as T from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { KvCache } from '../infer/kv-cache.js';

export function createAttentionParams(ps: ParameterStore, c: ModelConfig, prefix: string): void {
  const hd = headDim(c);
  const std = 0.02;
  ps.create(`${prefix}.wq.weight`, [c.heads * hd, c.dModel], { kind: 'normal', std });
  ps.create(`${prefix}.wk.weight`, [c.kvHeads * hd, c.dModel], { kind: 'normal', std });
  ps.create(`${prefix}.wv.weight`, [c.kvHeads * hd, c.dModel], { kind: 'normal', std });
  ps.create(`${prefix}.wo.weight`, [c.dModel, c.heads * hd], { kind: 'normal', std: std / Math.sqrt(2 * c.layers) });
}

/**
 * The attention block's inputs: x [B·T, d] → q [B, T, heads, hd] and k, v [B, T, kvHeads, hd], RoPE
 * applied by `rotate` (default: positions pos, pos+1, … — context parallelism passes its chunks' global positions).
 */
export function attentionInputs(
  ps: ParameterStore, c: ModelConfig, prefix: string, x: Tensor, batch: number, seq: number, dtype: ComputeDtype,
  rotate: (t: Tensor) => Tensor = (t) => T.rope(t, c.ropeTheta, 0),
): { q: Tensor; k: Tensor; v: Tensor } {
  const hd = headDim(c);
  const [q0, k0, v0] = projectMany(x, [ps.get(`${prefix}.wq.weight`), ps.get(`${prefix}.wk.weight`), ps.get(`${prefix}.wv.weight`)], dtype) as [Tensor, Tensor, Tensor];
  const q1 = T.reshape(q0, [batch, seq, c.heads, hd]), k1 = T.reshape(k0, [batch, seq, c.kvHeads, hd]);
  const q = rotate(q1);
  const k = rotate(k1);
  const v = T.reshape(v0, [batch, seq, c.kvHeads, hd]);
  for (const t of [q0, k0, v0, q1, k1]) t.dispose();
  return { q, k, v };
}

/** The attention output o [B, T, heads, hd] through the output projection → [B·T, d]; takes ownership of o. */
export function attentionOutput(ps: ParameterStore, c: ModelConfig, prefix: string, o: Tensor, batch: number, seq: number, dtype: ComputeDtype): Tensor {
  const o2 = T.reshape(o, [batch * seq, c.heads * headDim(c)]);
  const y = linear(o2, ps.get(`${prefix}.wo.weight`), dtype);
  o.dispose();
  o2.dispose();
  return y;
}

/** x [B·T, d] → [B·T, d]. With a cache, x holds the new positions only. */
export function attentionBlock(
  ps: ParameterStore, c: ModelConfig, prefix: string, x: Tensor, batch: number, seq: number, dtype: ComputeDtype,
  cache?: { kv: KvCache; layer: number },
): Tensor {
  const pos = cache ? cache.kv.length : 0;
  // temporaries are disposed as soon as they are consumed: what backward needs, the tape keeps
  const { q, k, v } = attentionInputs(ps, c, prefix, x, batch, seq, dtype, (t) => T.rope(t, c.ropeTheta, pos));
  let o: Tensor;
  if (cache && pos > 0) {
    cache.kv.append(cache.layer, k, v);
    o = cache.kv.attend(cache.layer, q);
  } else {
    if (cache) cache.kv.append(cache.layer, k, v);
    o = T.attention(q, k, v, { causal: true });
  }
  q.dispose();
  k.dispose();
  v.dispose();
  return attentionOutput(ps, c, prefix, o, batch, seq, dtype);
}
