// Step time of a layout: per-chip compute at the achievable GEMM efficiency, memory-bound elementwise
// work, TP/SP, CP and EP communication, pipeline p2p and bubble (1F1B or interleaved), DP gradient
// reduction overlapped with the last backward, ZeRO-2/3 traffic, and the optimizer update.
import { type ModelConfig, headDim } from '../nn/config.js';
import { allGatherSeconds, allReduceSeconds, allToAllSeconds, groupOf, p2pSeconds, reduceScatterSeconds } from './collectives.js';
import { type Efficiency, gemmMaxFor, gemmSeconds, stackRel } from './efficiency.js';
import type { ResolvedChip } from './hardware.js';
import { expertDp, type Layout, microBatches } from './layout.js';
import { stageLayers, stageParams } from './memory.js';
import { ffnMatrices, type PlanModel } from './model.js';
import { type Stack, STACK_PROFILES } from './stack.js';

/** Seconds of one layer's forward + backward (+ recompute) on one chip, split by cause. */
interface LayerTime {
  gemm: number;
  attention: number;
  elementwise: number;
  tp: number;
  cp: number;
  ep: number;
}

/** Seconds per micro-batch on one chip: its layers' times, plus pipeline sends, and the total. */
export interface MicroBatchTime extends LayerTime {
  p2p: number;
  total: number;
}

export interface StepTime {
  /** seconds per optimizer step */
  total: number;
  /** per-step seconds by cause (the micro-batch parts are multiplied by the micro-batches run) */
  parts: {
    compute: number;
    attention: number;
    elementwise: number;
    tp: number;
    cp: number;
    ep: number;
    p2p: number;
    bubble: number;
    dp: number;
    zero: number;
    optimizer: number;
  };
  microBatch: MicroBatchTime;
  bubbleFraction: number;
  microBatches: number;
}


const ZERO_LAYER: LayerTime = { gemm: 0, attention: 0, elementwise: 0, tp: 0, cp: 0, ep: 0 };

/** One layer's forward-equivalent passes: fwd (1) + bwd (2) + recompute forward (1 under full). */
function layerTime(m: PlanModel, moeLayer: boolean, l: Layout, chip: ResolvedChip, e: Efficiency, stack: Stack): LayerTime {
  const prof = STACK_PROFILES[stack];
  const speed = stackRel(stack, e);
  const c: ModelConfig = m.config;
  const t = l.tp;
  const h = c.dModel;
  const d = headDim(c);
  const s = c.seqLen;
  const sl = s / l.cp;
  const T = l.microBatch * sl; // tokens per chip per micro-batch
  const aChip = c.heads / t;
  const kvChip = c.kvHeads % t === 0 ? c.kvHeads / t : 1;
  const nm = ffnMatrices(c.ffnKind);
  const sp = l.sequenceParallel && t > 1;

  // forward GEMMs (seconds)
  let gemm = gemmSeconds(T, (aChip + 2 * kvChip) * d, h, chip, e) + gemmSeconds(T, h, aChip * d, chip, e);
  let moeBytes = 0;
  if (moeLayer && c.moe) {
    const mo = c.moe;
    const local = mo.experts / l.ep;
    const Te = (T * mo.topK * l.ep) / mo.experts;
    const Fe = mo.expertFfnHidden / t;
    gemm += gemmSeconds(Te, (nm - 1) * Fe, h, chip, e, local) + gemmSeconds(Te, h, Fe, chip, e, local);
    if (mo.sharedExperts > 0) {
      const Fs = (mo.sharedExperts * mo.expertFfnHidden) / t;
      gemm += gemmSeconds(T, (nm - 1) * Fs, h, chip, e) + gemmSeconds(T, h, Fs, chip, e);
    }
    gemm += gemmSeconds(sp ? T / t : T, mo.experts, h, chip, e);
    moeBytes = 8 * mo.topK * T * h / (sp ? t : 1); // permute and un-permute copies
  } else {
    const F = c.ffnHidden / t;
    gemm += gemmSeconds(T, (nm - 1) * F, h, chip, e) + gemmSeconds(T, h, F, chip, e);
  }

  // attention core (scores and P V), forward; a causal flash kernel skips the masked half of the square
  let attention: number;
  const coreFlops = 4 * l.microBatch * sl * s * aChip * d;
  if (l.attention === 'flash' && chip.measuredAttention) attention = (CAUSAL_FRACTION * coreFlops) / chip.measuredAttention(l.microBatch, s, aChip, d);
  else if (l.attention === 'flash') attention = (CAUSAL_FRACTION * coreFlops) / (chip.peakTflops * 1e12 * gemmMaxFor(chip, e) * e.flashRel);
  else attention = gemmSeconds(sl, s, d, chip, e, l.microBatch * aChip) + gemmSeconds(sl, d, s, chip, e, l.microBatch * aChip);

  // memory-bound elementwise traffic, forward (bytes)
  const drop = m.dropout;
  const perTokenRep = h * (drop ? 22 : 20) / (sp ? t : 1);
  const ffnAct = moeLayer && c.moe
    ? (c.moe.topK + c.moe.sharedExperts) * c.moe.expertFfnHidden
    : c.ffnHidden;
  const perTokenTp = ((nm === 3 ? 6 : 4) * ffnAct) / t + 4 * (aChip + kvChip) * d;
  let bytes = (T * (perTokenRep + perTokenTp) + moeBytes) * (m.wordBytes / 2);
  const coreBytes = l.attention === 'standard' ? (drop ? 9 : 4) * aChip * sl * s * l.microBatch : 0;
  const bw = chip.memoryBandwidthTBs * 1e12 * (chip.measuredGemm ? 1 : e.memEff); // a measured bandwidth is already the achieved one

  // passes: forward 1, backward 2 (same efficiency), recompute
  const full = l.recompute === 'full';
  const sel = l.recompute === 'selective' && l.attention === 'standard';
  const linPasses = 3 + (full ? 1 : 0);
  const corePasses = 3 + (full || sel ? 1 : 0) + (l.attention === 'flash' ? 0.5 : 0);
  bytes *= linPasses;
  const elementwise = (bytes + coreBytes * (3 + (full || sel ? 1 : 0))) / bw;

  // tensor parallel: 2 all-reduces (or 2 all-gathers + 2 reduce-scatters under SP) per pass
  const tpGroup = groupOf([{ size: t, stride: 1 }], chip.chipsPerNode);
  const actBytes = T * h * m.wordBytes;
  const tpPass = 2 * allReduceSeconds(actBytes, tpGroup, chip, e);
  const tp = t > 1 ? tpPass * (2 + (full ? 1 : 0)) * (1 - prof.tpOverlap) : 0; // forward, backward, recomputed forward

  // context parallel: ring exchange of K and V, overlapped with the attention core
  let cp = 0;
  if (l.cp > 1) {
    const cpCross = t * l.cp > chip.chipsPerNode;
    const kvBytes = 2 * l.microBatch * sl * kvChip * d * 2;
    const fwd = (l.cp - 1) * p2pSeconds(kvBytes, cpCross, chip, e);
    const coreFwd = attention;
    cp = Math.max(0, fwd - coreFwd) * (1 + (full ? 1 : 0)) + Math.max(0, 2 * fwd - 2 * coreFwd);
  }

  // expert parallel: dispatch + combine all-to-alls per pass
  let ep = 0;
  if (moeLayer && c.moe && l.ep > 1) {
    const g = groupOf([{ size: l.ep, stride: t }], chip.chipsPerNode); // ep folded inside cp * dp, tp-strided
    const a2a = allToAllSeconds((T * c.moe.topK * h * 2) / (sp ? t : 1), g, chip, e);
    ep = 2 * a2a * (2 + (full ? 1 : 0)) * (1 - prof.epOverlap);
  }
  return { gemm: (gemm * linPasses) / speed, attention: (attention * corePasses) / speed, elementwise: elementwise / speed, tp, cp, ep };
}

function add(a: LayerTime, b: LayerTime, k: number): LayerTime {
  return {
    gemm: a.gemm + k * b.gemm, attention: a.attention + k * b.attention, elementwise: a.elementwise + k * b.elementwise,
    tp: a.tp + k * b.tp, cp: a.cp + k * b.cp, ep: a.ep + k * b.ep,
  };
}

/**
 * Per-layer times depend only on (tp, cp, ep, micro-batch, SP, recompute, attention): a search passes a
 * cache (for one model, chip and efficiency) so pipeline/data-parallel variants reuse them.
 */
export type LayerTimeCache = Map<string, { dense: LayerTime; moe: LayerTime }>;

/** Share of the s x s attention square a causal kernel computes (the diagonal blocks are full). */
export const CAUSAL_FRACTION = 0.5;

function layerTimes(m: PlanModel, l: Layout, chip: ResolvedChip, e: Efficiency, stack: Stack, cache?: LayerTimeCache): { dense: LayerTime; moe: LayerTime } {
  const key = cache ? `${l.tp},${l.cp},${l.ep},${l.microBatch},${l.sequenceParallel},${l.recompute},${l.attention},${stack}` : '';
  const hit = cache?.get(key);
  if (hit) return hit;
  const v = { dense: layerTime(m, false, l, chip, e, stack), moe: m.config.moe ? layerTime(m, true, l, chip, e, stack) : ZERO_LAYER };
  cache?.set(key, v);
  return v;
}

/** Time of one micro-batch (fwd + bwd) on the slowest pipeline stage. */
function microBatchTime(m: PlanModel, l: Layout, chip: ResolvedChip, e: Efficiency, stack: Stack, cache?: LayerTimeCache): { time: MicroBatchTime; stage: number } {
  const c = m.config;
  const { dense, moe } = layerTimes(m, l, chip, e, stack, cache);
  const T = l.microBatch * (c.seqLen / l.cp);
  const logits = (3 * gemmSeconds(T, c.vocab / l.tp, c.dModel, chip, e)) / stackRel(stack, e);
  // pipeline p2p: one activation per chunk boundary each way (split by tp: scatter-gather or SP)
  const ppStride = l.tp * l.cp * l.dp;
  const p2pOne = l.pp > 1 ? p2pSeconds((T * c.dModel * 2) / l.tp, ppStride >= chip.chipsPerNode, chip, e) : 0;
  let best: { time: MicroBatchTime; stage: number } | null = null;
  // first and last stages carry the embedding and the output layer; a middle one carries the most layers when the first/last chunks are embedding- or loss-only
  const stages = l.pp > 2 ? [0, 1, l.pp - 1] : l.pp > 1 ? [0, l.pp - 1] : [0];
  for (const st of stages) {
    const sl = stageLayers(c, l.pp, l.vpp, st);
    let lt = add(add(ZERO_LAYER, dense, sl.dense), moe, sl.moe);
    if (st === l.pp - 1) lt = { ...lt, gemm: lt.gemm + logits };
    const p2p = STACK_PROFILES[stack].ppOverlap ? 0 : 2 * p2pOne * sl.chunks;
    const total = lt.gemm + lt.attention + lt.elementwise + lt.tp + lt.cp + lt.ep + p2p;
    if (!best || total > best.time.total) best = { time: { ...lt, p2p, total }, stage: st };
  }
  return best!;
}

export function stepTime(m: PlanModel, l: Layout, chip: ResolvedChip, e: Efficiency, cache?: LayerTimeCache, stack: Stack = 'megatron'): StepTime {
  const mbs = microBatches(l);
  const prof = STACK_PROFILES[stack];
  const { time: mb, stage } = microBatchTime(m, l, chip, e, stack, cache);
  const bubbleMbs = (l.pp - 1) / l.vpp;
  const pipeline = (mbs + bubbleMbs) * mb.total;
  const bubble = bubbleMbs * mb.total;
  // collectives overlap with computation only (other communication competes for the same links)
  const computeOne = mb.gemm + mb.attention + mb.elementwise;
  const bwdOne = (computeOne * 2) / 3;

  // data-parallel gradient reduction (dense over cp*dp, experts over their dp*cp/ep replicas)
  const p = stageParams(m, l, stage);
  const cpn = chip.chipsPerNode;
  const denseG = groupOf([{ size: l.cp * l.dp, stride: l.tp }], cpn);
  const expertG = groupOf([{ size: expertDp(l), stride: l.tp * l.ep }], cpn);
  const gradBytesD = p.dense * m.wordBytes, gradBytesE = p.expert * m.wordBytes;
  let dp = 0, zero = 0;
  if (l.zero <= 1) {
    const ar = allReduceSeconds(gradBytesD, denseG, chip, e) + allReduceSeconds(gradBytesE, expertG, chip, e);
    dp = prof.dpOverlap ? Math.max(0, ar - bwdOne / e.overlapSlowdown) : ar;
  } else {
    const rs = reduceScatterSeconds(gradBytesD, denseG, chip, e) + reduceScatterSeconds(gradBytesE, expertG, chip, e);
    const ag = allGatherSeconds(gradBytesD, denseG, chip, e) + allGatherSeconds(gradBytesE, expertG, chip, e);
    if (l.zero === 2) {
      zero = mbs * Math.max(0, rs - bwdOne / e.overlapSlowdown) + ag;
    } else {
      zero = mbs * zero3Exposed(rs, ag, computeOne, stageLayersHeld(m, l, stage), l.recompute === 'full', e);
    }
  }

  // optimizer: AdamW reads and writes ~28 bytes per (sharded) parameter
  const shardD = l.zero >= 1 ? l.cp * l.dp : 1;
  const shardE = l.zero >= 1 ? expertDp(l) : 1;
  const optimizer = (28 * (p.dense / shardD + p.expert / shardE)) / (chip.memoryBandwidthTBs * 1e12 * e.memEff);

  const total = pipeline + dp + zero + optimizer;
  const k = mbs;
  return {
    total,
    parts: {
      compute: mb.gemm * k, attention: mb.attention * k, elementwise: mb.elementwise * k, tp: mb.tp * k, cp: mb.cp * k, ep: mb.ep * k,
      p2p: mb.p2p * k, bubble, dp, zero, optimizer,
    },
    microBatch: mb,
    bubbleFraction: bubble / total,
    microBatches: mbs,
  };
}

function stageLayersHeld(m: PlanModel, l: Layout, stage: number): number {
  const sl = stageLayers(m.config, l.pp, l.vpp, stage);
  return Math.max(1, sl.dense + sl.moe);
}

/**
 * ZeRO-3 / FSDP per micro-batch, layer by layer and phase by phase: each layer's parameters are
 * all-gathered while the previous layer computes (forward; again in backward, and for the recomputed
 * forward under full recomputation) and its gradients reduce-scattered while the next one computes
 * backward. Per phase the slower of the two sets the pace; the first gather and the last reduce-scatter
 * are exposed; computation beside a collective runs overlapSlowdown slower. Returns the seconds added
 * to the micro-batch's computation.
 */
export function zero3Exposed(rs: number, ag: number, compute: number, layers: number, fullRecompute: boolean, e: Efficiency): number {
  const passes = 3 + (fullRecompute ? 1 : 0);
  const cFwd = compute / passes / layers; // one forward-equivalent pass of one layer
  const agL = ag / layers, rsL = rs / layers;
  const slow = e.overlapSlowdown;
  const fwd = layers * Math.max(cFwd * slow, agL) + agL;
  const bwdCompute = cFwd * (passes - 1);
  const bwd = layers * Math.max(bwdCompute * slow, agL + rsL) + rsL;
  return Math.max(0, fwd + bwd - compute);
}
