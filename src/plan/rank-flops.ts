// FLOPs one chip of a layout runs per optimizer step, in the planner's convention (src/plan/flops.ts:
// matmuls only, the attention core over the full s x s square, backward = 2 x forward): the layers of
// its pipeline stage on its share of the tokens — s / cp of each sequence, the tensor-parallel share of
// every matmul, the router whole, under expert parallelism as many routed rows as its own tokens chose
// (balanced routing) — the output layer on the last stage, and the forward again under full
// recompute. What a dry run's kernel FLOPs (GEMM + attention) are set beside.
import { layerFlopsPerToken, logitFlopsPerToken } from './flops.js';
import { type Layout, microBatches } from './layout.js';
import { stageLayers } from './memory.js';
import type { PlanModel } from './model.js';

/** Forward + backward (+ recomputed forward) FLOPs per step of one chip of pipeline stage `stage`. */
export function rankFlopsPerStep(m: PlanModel, l: Layout, stage: number): number {
  const c = m.config;
  const tokens = microBatches(l) * l.microBatch * (c.seqLen / l.cp);
  const perToken = (moe: boolean) => {
    const f = layerFlopsPerToken(c, moe);
    return (f.attnLinear + f.attnCore + f.ffn) / l.tp + f.router;
  };
  const sl = stageLayers(c, l.pp, l.vpp, stage);
  const layers = sl.dense * perToken(false) + (sl.moe ? sl.moe * perToken(true) : 0);
  const logits = stage === l.pp - 1 ? logitFlopsPerToken(c) / l.tp : 0;
  const recomputed = l.recompute === 'full' ? layers : 0;
  return tokens * (3 * (layers + logits) + recomputed);
}
