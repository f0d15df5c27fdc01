// Bytes one chip sends per optimizer step over each parallel dimension, as the planner's step-time
// model (step-time.ts) lays out its messages — the volumes a dry run (`zili train --dry-run-rank`)
// is set beside. Each collective is counted the way the shape communicator counts it (ring
// algorithms): all-reduce of B bytes 2·(n−1)/n·B, reduce-scatter/all-gather (n−1)/n·B, all-to-all
// (n−1)/n of what the chip holds, a point-to-point send B.
//   tp  two all-reduces of the [tokens, d_model] activation per layer and pass (or, under SP, two
//       all-gathers + two reduce-scatters: the same bytes, and in backward two more all-gathers of the
//       column-parallel inputs, kept as shards in forward); passes: forward, backward, + recompute
//   pp  per micro-batch, each of the stage's vpp chunk positions sends its activation forward (all but
//       the last chunk of the pipeline) and its input's gradient backward (all but the first), [tokens,
//       d_model] / tp (scatter-gather); a position with no layers (the output layer alone) still relays
//   dp  the stage's gradients over cp·dp (and the experts' over their replicas): one all-reduce per
//       step (ZeRO 0-1), a reduce-scatter per micro-batch + an all-gather (ZeRO 2), two all-gathers
//       and a reduce-scatter per micro-batch (ZeRO 3)
//   ep  a dispatch and a combine all-to-all of the routed tokens per MoE layer and pass
//   cp  per layer: the K and V blocks passed around the ring, cp−1 hops forward (again under full
//       recompute) and cp−1 backward, and their gradients dK, dV cp−1 hops backward (Megatron-Core's CP:
//       each rank's own part stays home; the `cp` branch's ring-attention.ts, whose dK/dV made cp hops before)
//       (tied embeddings: + the all-reduce of the embedding's gradient between the first and last stage)
// Layers' embedding and loss collectives (vocabulary-parallel all-reduces) are not in the model.
import { headDim } from '../nn/config.js';
import { expertDp, type Layout, microBatches } from './layout.js';
import { stageLayers, stageParams } from './memory.js';
import type { PlanModel } from './model.js';

export interface CommVolume {
  tp: number;
  dp: number;
  pp: number;
  ep: number;
  cp: number;
}

const ring = (n: number) => (n > 1 ? (n - 1) / n : 0);

/** Bytes a chip of pipeline stage `stage` sends per optimizer step, per dimension. */
export function commBytesPerStep(m: PlanModel, l: Layout, stage: number): CommVolume {
  const c = m.config;
  const w = m.wordBytes;
  const M = microBatches(l);
  const T = l.microBatch * (c.seqLen / l.cp);
  const h = c.dModel;
  const t = l.tp;
  const sp = l.sequenceParallel && t > 1;
  const passes = 2 + (l.recompute === 'full' ? 1 : 0);
  const sl = stageLayers(c, l.pp, l.vpp, stage);
  const layers = sl.dense + sl.moe;

  // under SP the backward all-gathers each column-parallel input again (two per layer: Megatron keeps only the shard)
  const tp = M * layers * (passes * 2 * 2 + (sp ? 2 : 0)) * ring(t) * T * h * w;
  const chunks = l.pp * l.vpp;
  let hops = 0;
  for (let j = stage; j < chunks; j += l.pp) hops += (j < chunks - 1 ? 1 : 0) + (j > 0 ? 1 : 0);
  // tied embeddings: the first and last stage's copies sum their gradients once per step (an all-reduce of two)
  const tied = l.pp > 1 && c.tiedEmbeddings && (stage === 0 || stage === l.pp - 1) ? 2 * ring(2) * ((c.vocab * h * w) / t) : 0;
  const pp = l.pp > 1 ? M * hops * ((T * h * w) / t) + tied : 0;

  const p = stageParams(m, l, stage);
  const perPass = (bytes: number, n: number) => {
    if (l.zero <= 1) return 2 * ring(n) * bytes;
    if (l.zero === 2) return (M + 1) * ring(n) * bytes;
    return M * 3 * ring(n) * bytes;
  };
  const dp = perPass(p.dense * w, l.cp * l.dp) + perPass(p.expert * w, expertDp(l));

  const ep = c.moe && l.ep > 1 ? M * sl.moe * passes * 2 * ring(l.ep) * ((T * c.moe.topK * h * w) / (sp ? t : 1)) : 0;
  const kvChip = c.kvHeads % t === 0 ? c.kvHeads / t : 1;
  const kvBytes = 2 * T * kvChip * headDim(c) * w;
  const cp = l.cp > 1 ? M * layers * (passes + 1) * (l.cp - 1) * kvBytes : 0;
  return { tp, dp, pp, ep, cp };
}
