// Exact FLOP counts of the model: forward matmul FLOPs per token for each part of a layer, model FLOPs
// per step (forward + backward, no recomputation) and hardware FLOPs (with recomputation).
// Conventions (Megatron-LM's, so the published MFUs compare): a multiply-add is 2 FLOPs; only matmuls
// count (norms, softmax, activations, biases, embeddings lookups are ignored); attention scores and
// attention-times-values count the full s x s square (no causal halving); backward = 2 x forward.
import { type ModelConfig, headDim, isMoeLayer } from '../nn/config.js';
import type { AttentionKernel, Recompute } from './layout.js';
import { ffnMatrices } from './model.js';

/** Forward FLOPs per token of one layer, split by part. */
export interface LayerFlops {
  /** Q, K, V and output projections: 2 h (a d + 2 kv d) + 2 a d h */
  attnLinear: number;
  /** Q K^T and P V over the full sequence: 4 s a d */
  attnCore: number;
  /** dense FFN (2 or 3 matrices of h x F), or the k routed + shared experts of a MoE layer */
  ffn: number;
  /** MoE router: 2 h E */
  router: number;
}

export function layerFlopsPerToken(c: ModelConfig, moeLayer: boolean, seqLen = c.seqLen): LayerFlops {
  const h = c.dModel;
  const d = headDim(c);
  const attnLinear = 2 * h * (c.heads * d + 2 * c.kvHeads * d) + 2 * c.heads * d * h;
  const attnCore = 4 * seqLen * c.heads * d;
  const nm = ffnMatrices(c.ffnKind);
  let ffn: number, router = 0;
  if (moeLayer && c.moe) {
    ffn = (c.moe.topK + c.moe.sharedExperts) * 2 * nm * h * c.moe.expertFfnHidden;
    router = 2 * h * c.moe.experts;
  } else {
    ffn = 2 * nm * h * c.ffnHidden;
  }
  return { attnLinear, attnCore, ffn, router };
}

export function layerTotal(f: LayerFlops): number {
  return f.attnLinear + f.attnCore + f.ffn + f.router;
}

/** Output layer (logits) forward FLOPs per token: 2 h V. */
export function logitFlopsPerToken(c: ModelConfig): number {
  return 2 * c.dModel * c.vocab;
}

const forwardMemo = new WeakMap<ModelConfig, number>();

/** Forward FLOPs per token of the whole model (all layers plus logits). */
export function forwardFlopsPerToken(c: ModelConfig): number {
  const hit = forwardMemo.get(c);
  if (hit !== undefined) return hit;
  const dense = layerTotal(layerFlopsPerToken(c, false));
  const moe = c.moe ? layerTotal(layerFlopsPerToken(c, true)) : 0;
  let total = 0;
  for (let i = 0; i < c.layers; i++) total += isMoeLayer(c, i) ? moe : dense;
  total += logitFlopsPerToken(c);
  forwardMemo.set(c, total);
  return total;
}

/** Model FLOPs per token: forward + backward (3 x forward), no recomputation. */
export function modelFlopsPerToken(c: ModelConfig): number {
  return 3 * forwardFlopsPerToken(c);
}

/**
 * Model FLOPs per token under the causal convention some publishers use (NVIDIA's NeMo / Megatron-Bridge
 * recipes; the Llama 3 paper by the evidence in docs/published-runs.md): the attention core counts only
 * the half of the s x s square a causal mask keeps. Used only to convert such published MFUs to this
 * planner's convention (full square), never for predictions.
 */
export function causalHalfModelFlopsPerToken(c: ModelConfig): number {
  return modelFlopsPerToken(c) - 3 * 0.5 * c.layers * layerFlopsPerToken(c, false).attnCore;
}

/**
 * Hardware FLOPs per token: model FLOPs plus what recomputation and the attention kernel add.
 * full: every layer's forward again (not the logits); selective: the attention core again (standard
 * attention only; with flash there is nothing left to recompute selectively); flash attention's backward
 * recomputes Q K^T, adding half the forward attention core.
 */
export function hardwareFlopsPerToken(c: ModelConfig, recompute: Recompute, attention: AttentionKernel): number {
  const layersFwd = forwardFlopsPerToken(c) - logitFlopsPerToken(c);
  const coreFwd = c.layers * layerFlopsPerToken(c, false).attnCore;
  let extra = 0;
  if (recompute === 'full') extra += layersFwd;
  else if (recompute === 'selective' && attention === 'standard') extra += coreFwd;
  if (attention === 'flash') extra += 0.5 * coreFwd;
  return modelFlopsPerToken(c) + extra;
}

/** Megatron-LM's closed form for GPT models (Narayanan 2021 with full recompute = 96, model FLOPs = 72). */
export function megatronFlopsPerStep(B: number, s: number, l: number, h: number, V: number, recomputeFull: boolean): number {
  return recomputeFull ? 96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h)) : 72 * B * s * l * h * h * (1 + s / (6 * h) + V / (12 * h * l));
}
