// Memory per chip: weights, gradients and optimizer states under ZeRO 0-3, activations after
// Korthikanti et al. 2022 (sequence parallelism, selective/full recomputation) generalised to GQA,
// gated FFNs and MoE, the micro-batches in flight of 1F1B/interleaved pipelines, and overheads.
import { type ModelConfig, headDim, isGatedFfn, isMoeLayer } from '../nn/config.js';
import type { AttentionKernel, Layout, Recompute } from './layout.js';
import { expertDp, microBatches } from './layout.js';
import { ffnMatrices, type PlanModel } from './model.js';

export const GiB = 1024 ** 3;
/** bf16/fp16 weights and gradients, fp32 master weights + Adam moments (ZeRO paper's 2 + 2 + 12) */
export const BYTES: StateBytes = { weight: 2, grad: 2, optimizer: 12 };
/**
 * f32 training as zili runs it, in f32 and in its bf16 mode alike (bf16 GEMM operands are cast on
 * the fly): f32 weights that are their own master copy, f32 gradients, two f32 AdamW moments.
 */
export const F32_TRAINING_BYTES: StateBytes = { weight: 4, grad: 4, optimizer: 8 };

/** Bytes per parameter of the training state: the weights, their gradients, the optimizer (master copy included). */
export interface StateBytes {
  weight: number;
  grad: number;
  optimizer: number;
}
/** runtime context, communication buffers and workspace per chip */
export const RUNTIME_RESERVE_GIB = 1.5;
/** allocator fragmentation, as a fraction of activation memory */
export const FRAGMENTATION = 0.05;

export interface ActivationOptions {
  microBatch: number;
  /** full sequence length (the chip holds seqLen / cp of it) */
  seqLen: number;
  tp: number;
  cp: number;
  sequenceParallel: boolean;
  recompute: Recompute;
  attention: AttentionKernel;
  dropout: boolean;
}

export interface LayerActivations {
  /** bytes one layer keeps for backward per micro-batch (per chip) */
  stored: number;
  /** bytes of one layer with nothing recomputed: the working set while recomputing (full recompute) */
  full: number;
  /** parts of `full`: replicated (split by tp only under SP), tensor-parallel, attention core */
  parts: { replicated: number; tensorParallel: number; attentionCore: number };
}

/** Bytes of FFN activations per token for an FFN of width F: gated keeps gate, up and product (6F), others 4F. */
function ffnActBytes(c: ModelConfig, F: number): number {
  return (isGatedFfn(c.ffnKind) ? 6 : 4) * F;
}

/**
 * Activation memory of one layer per chip and micro-batch (bytes). Without parallelism a GPT layer
 * with dropout gives Korthikanti's 34 s b h + 5 a s^2 b; with tensor parallelism t and SP, s b h 34/t +
 * 5 a s^2 b / t. Selective recompute drops the attention-core term, full recompute keeps only the
 * layer input (2 s b h, split by t under SP). This is the function to compare with the engine's meta backend.
 */
export function layerActivationBytes(c: ModelConfig, moeLayer: boolean, o: ActivationOptions): LayerActivations {
  const t = o.tp;
  const h = c.dModel;
  const d = headDim(c);
  const sl = o.seqLen / o.cp;
  const sb = sl * o.microBatch;
  const repDiv = o.sequenceParallel ? t : 1;
  const kvPerChip = c.kvHeads % t === 0 ? c.kvHeads / t : 1;
  // inputs of the two norms (2 + 2), of the QKV projection (2) and of the FFN (2); two dropout masks (1 + 1)
  let replicated = sb * h * (8 + (o.dropout ? 2 : 0));
  // Q, K, V, the attention output (input of the output projection)
  let tensorParallel = sb * (2 * (c.heads / t) * d + 4 * kvPerChip * d + 2 * (c.heads / t) * d);
  if (moeLayer && c.moe) {
    const m = c.moe;
    // routed copies of the tokens and the experts' outputs (kept for the gate gradient), fp32 router probabilities
    replicated += 2 * m.topK * sb * 2 * h + 4 * sb * m.experts;
    tensorParallel += (m.topK * sb * ffnActBytes(c, m.expertFfnHidden) + sb * ffnActBytes(c, m.sharedExperts * m.expertFfnHidden)) / t;
  } else {
    tensorParallel += (sb * ffnActBytes(c, c.ffnHidden)) / t;
  }
  replicated /= repDiv;
  const headsPerChip = c.heads / t;
  const attentionCore = o.attention === 'standard'
    ? (o.dropout ? 5 : 2) * headsPerChip * sl * o.seqLen * o.microBatch
    : 4 * headsPerChip * sb; // flash keeps the fp32 log-sum-exp per row
  const full = replicated + tensorParallel + attentionCore;
  let stored = full;
  if (o.recompute === 'selective' && o.attention === 'standard') stored = replicated + tensorParallel;
  else if (o.recompute === 'full') stored = (2 * sb * h) / repDiv;
  return { stored, full, parts: { replicated, tensorParallel, attentionCore } };
}

/**
 * Layers held by pipeline stage `stage`: pp * vpp chunks, chunk j on stage j mod pp. When pp * vpp
 * exceeds the layers by 1 or 2 (Llama 3: 126 layers on pp 16 x vpp 8), the first chunk holds only the
 * embedding and (by 2) the last only the output layer and loss; the layers fill the other chunks,
 * ceil(L / chunks) each.
 */
export function stageLayers(c: ModelConfig, pp: number, vpp: number, stage: number): { dense: number; moe: number; chunks: number } {
  const chunks = pp * vpp;
  const extra = Math.max(0, Math.min(2, chunks - c.layers));
  const first = extra >= 1 ? 1 : 0; // embedding-only chunk
  const body = chunks - extra;
  const size = Math.ceil(c.layers / body);
  let dense = 0, moe = 0, held = 0;
  for (let j = stage; j < chunks; j += pp) {
    const k = j - first;
    if (k < 0 || k >= body) {
      held++; // embedding-only or loss-only chunk: no layers, still a pipeline hop
      continue;
    }
    const lo = k * size, hi = Math.min(c.layers, lo + size);
    if (hi <= lo) continue;
    held++;
    const firstMoe = c.moe ? Math.min(Math.max(c.moe.denseLayers, lo), hi) : hi;
    dense += firstMoe - lo;
    moe += hi - firstMoe;
  }
  return { dense, moe, chunks: held };
}

export interface ParamsPerChip {
  /** replicated over cp * dp */
  dense: number;
  /** replicated over dp * cp / ep */
  expert: number;
}

/** Parameters one chip of a stage holds (before ZeRO sharding). */
export function stageParams(m: PlanModel, l: Layout, stage: number): ParamsPerChip {
  const c = m.config;
  const t = l.tp;
  const h = c.dModel;
  const d = headDim(c);
  const { dense, moe } = stageLayers(c, l.pp, l.vpp, stage);
  const attn = (h * c.heads * d * 2 + 2 * h * c.kvHeads * d) / t + 2 * h;
  const nm = ffnMatrices(c.ffnKind);
  let denseP = dense * (attn + (nm * h * c.ffnHidden) / t);
  let expertP = 0;
  if (c.moe && moe > 0) {
    const one = nm * h * c.moe.expertFfnHidden;
    denseP += moe * (attn + (c.moe.sharedExperts * one) / t + h * c.moe.experts);
    expertP = (moe * (c.moe.experts / l.ep) * one) / t;
  }
  const emb = (c.vocab * h) / t;
  const last = stage === l.pp - 1;
  if (stage === 0) denseP += emb;
  if (last && (!c.tiedEmbeddings || l.pp > 1)) denseP += emb;
  if (last) denseP += h;
  return { dense: denseP, expert: expertP };
}

export interface MemoryBreakdown {
  weights: number;
  grads: number;
  optimizer: number;
  activations: number;
  other: number;
  total: number;
  /** the stage that needs the most memory */
  stage: number;
}

/** Micro-batch-layers of activations a stage keeps at its peak under 1F1B (vpp = 1) or interleaved 1F1B. */
export function inFlightChunks(l: Layout, stage: number): number {
  const m = microBatches(l);
  if (l.vpp === 1) return Math.min(m, l.pp - stage);
  return Math.min(m * l.vpp, l.vpp * l.pp + l.pp - 1 - 2 * stage);
}

/** What one chip of a stage holds, before a program decides what lives at the same time (bytes). */
export interface StageComponents {
  stage: number;
  /** weights, gradients and optimizer state this chip keeps (ZeRO-sharded as the layout says) */
  weights: number;
  grads: number;
  optimizer: number;
  /** the same three unsharded (the stage's whole parameters on this chip, ZeRO ignored) */
  fullWeights: number;
  fullGrads: number;
  /** the data-parallel group the dense state is sharded over (cp * dp) */
  shardGroup: number;
  /** weights of the stage's largest gatherable unit: one layer, or the embedding / output layer */
  unitWeights: number;
  /** activations kept for backward by the micro-batches in flight (logits excluded) */
  activations: number;
  /** the part of `activations` that is one layer's whole working set while it is recomputed (full recompute), else 0 */
  recomputeWorkingSet: number;
  /** the part of `activations` one in-flight chunk (micro-batch x chunk) keeps, and how many are in flight */
  chunkActivations: number;
  inFlight: number;
  /** layers whose activations are in flight at the peak (layers per chunk x chunks in flight) */
  layersInFlight: number;
  /** tokens of one micro-batch on this chip (s / cp x b) */
  tokens: number;
  /** the fp32 logits of one micro-batch on the last stage (4 s_c b V / t), else 0 */
  logits: number;
  /** gradient bytes of the output layer's weight on the last stage (else 0), of the stage's largest layer matrix, and of its largest weight */
  headGrad: number;
  layerMatrixGrad: number;
  largestGrad: number;
}

export function stageComponents(m: PlanModel, l: Layout, stage: number, bytes: StateBytes): StageComponents {
  const c = m.config;
  const p = stageParams(m, l, stage);
  const dz = l.cp * l.dp;
  const ez = expertDp(l);
  const shard = (bytes: number, on: boolean, group: number) => (on ? bytes / group : bytes);
  // f32 training (precision f32): 4-byte weights that are their own master copy, 4-byte gradients, two f32 moments
  const b = m.wordBytes === 4 ? F32_TRAINING_BYTES : bytes;
  const weights = shard(p.dense * b.weight, l.zero >= 3, dz) + shard(p.expert * b.weight, l.zero >= 3, ez);
  const grads = shard(p.dense * b.grad, l.zero >= 2, dz) + shard(p.expert * b.grad, l.zero >= 2, ez);
  const optimizer = shard(p.dense * b.optimizer, l.zero >= 1, dz) + shard(p.expert * b.optimizer, l.zero >= 1, ez);

  const o: ActivationOptions = {
    microBatch: l.microBatch, seqLen: c.seqLen, tp: l.tp, cp: l.cp, sequenceParallel: l.sequenceParallel && l.tp > 1,
    recompute: l.recompute, attention: l.attention, dropout: m.dropout,
  };
  const sl = stageLayers(c, l.pp, l.vpp, stage);
  const held = sl.dense + sl.moe;
  const dA = sl.dense ? layerActivationBytes(c, false, o) : null;
  const mA = sl.moe ? layerActivationBytes(c, true, o) : null;
  const word = m.wordBytes === 4 ? 2 : 1; // the 16-bit accounting, in 4-byte words under f32
  // a layer's stored bytes at this precision: flash's log-sum-exp is fp32 under either (not doubled)
  const lse = (a: LayerActivations | null) => (a && o.attention === 'flash' ? a.parts.attentionCore : 0);
  const storedAt = (a: LayerActivations | null) => (a ? word * a.stored - (word - 1) * (l.recompute !== 'full' ? lse(a) : 0) : 0);
  // one layer's whole working set while full recompute runs it again, at this precision
  const fullAt = (a: LayerActivations | null) => (a ? word * a.full - (word - 1) * lse(a) : 0);
  const perLayer = held ? (storedAt(dA) * sl.dense + storedAt(mA) * sl.moe) / held : 0;
  const chunkLayers = sl.chunks ? held / sl.chunks : 0;
  const inFlight = inFlightChunks(l, stage);
  const chunkActivations = perLayer * chunkLayers;
  const recomputed = l.recompute === 'full' ? Math.max(fullAt(dA), fullAt(mA)) : 0;
  let extra = 0;
  const sb = (c.seqLen / l.cp) * l.microBatch;
  if (stage === 0 && m.dropout) extra += (sb * c.dModel) / (o.sequenceParallel ? l.tp : 1); // embedding dropout mask
  const activations = chunkActivations * inFlight + recomputed + word * extra;
  // fp32 logits of one micro-batch (4 bytes under either precision)
  const logits = stage === l.pp - 1 ? (4 * sb * c.vocab) / l.tp : 0;
  const layerP = held ? (p.dense + p.expert - (stage === 0 ? c.vocab * c.dModel / l.tp : 0) - (stage === l.pp - 1 ? stageEmbeddingParams(c, l) : 0)) / held : 0;
  const unitWeights = Math.max(layerP, (c.vocab * c.dModel) / l.tp) * b.weight;
  const ffnWidth = Math.max(sl.dense ? c.ffnHidden : 0, sl.moe && c.moe ? c.moe.expertFfnHidden : 0);
  const layerMatrix = held ? Math.max(c.heads * headDim(c) * c.dModel / l.tp, ffnWidth * c.dModel / l.tp, sl.moe && c.moe ? c.moe.experts * c.dModel : 0) : 0;
  const embedding = stage === 0 || stage === l.pp - 1 ? (c.vocab * c.dModel) / l.tp : 0;
  return {
    headGrad: stage === l.pp - 1 ? ((c.vocab * c.dModel) / l.tp) * b.grad : 0, layerMatrixGrad: layerMatrix * b.grad, largestGrad: Math.max(layerMatrix, embedding) * b.grad,
    stage, weights, grads, optimizer, fullWeights: (p.dense + p.expert) * b.weight, fullGrads: (p.dense + p.expert) * b.grad,
    shardGroup: dz, unitWeights, activations, recomputeWorkingSet: recomputed, chunkActivations, inFlight, layersInFlight: chunkLayers * inFlight, tokens: sb, logits,
  };
}

/** Output-layer parameters on the last stage (its own copy unless tied on one stage) plus the final norm. */
function stageEmbeddingParams(c: ModelConfig, l: Layout): number {
  return (!c.tiedEmbeddings || l.pp > 1 ? (c.vocab * c.dModel) / l.tp : 0) + c.dModel;
}

export function stageMemory(m: PlanModel, l: Layout, stage: number, bytes: StateBytes): MemoryBreakdown {
  const s = stageComponents(m, l, stage, bytes);
  const activations = s.activations + s.logits;
  let other = RUNTIME_RESERVE_GIB * GiB + FRAGMENTATION * activations;
  if (l.zero >= 3) other += 2 * s.unitWeights; // two gathered layers (current + prefetch)
  const total = s.weights + s.grads + s.optimizer + activations + other;
  return { weights: s.weights, grads: s.grads, optimizer: s.optimizer, activations, other, total, stage };
}

/** Peak memory per chip over the pipeline stages (bytes); `bytes`: the training state's precision (default bf16 mixed precision). */
export function memoryPerChip(m: PlanModel, l: Layout, bytes: StateBytes = BYTES): MemoryBreakdown {
  let best = stageMemory(m, l, 0, bytes);
  if (l.pp > 1) {
    const last = stageMemory(m, l, l.pp - 1, bytes);
    if (last.total > best.total) best = last;
  }
  return best;
}

/** Per-layer activation prediction for the engine cross-check (issue 4, item 6): one chip, no parallelism by default. */
export function activationBytesPerLayer(
  c: ModelConfig,
  opts: { microBatch: number; seqLen?: number; recompute?: Recompute; attention?: AttentionKernel; dropout?: boolean; tp?: number; sequenceParallel?: boolean },
): { layer: number; moe: boolean; bytes: number }[] {
  const o: ActivationOptions = {
    microBatch: opts.microBatch, seqLen: opts.seqLen ?? c.seqLen, tp: opts.tp ?? 1, cp: 1, sequenceParallel: opts.sequenceParallel ?? false,
    recompute: opts.recompute ?? 'none', attention: opts.attention ?? 'standard', dropout: opts.dropout ?? false,
  };
  const out: { layer: number; moe: boolean; bytes: number }[] = [];
  for (let i = 0; i < c.layers; i++) {
    const moe = isMoeLayer(c, i);
    out.push({ layer: i, moe, bytes: layerActivationBytes(c, moe, o).stored });
  }
  return out;
}
