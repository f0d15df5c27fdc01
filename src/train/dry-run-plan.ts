// What the planner predicts for the rank a dry run measures: its memory (src/plan/memory.ts) for the
// rank's pipeline stage and its bytes sent per step per dimension (src/plan/comm-volume.ts), for the
// same layout and batch, at zili's training precision (f32 weights that are their own master copy, f32
// gradients and AdamW moments, f32 activations — under --dtype f32 and bf16 alike).
import { type CommVolume, commBytesPerStep } from '../plan/comm-volume.js';
import type { Layout } from '../plan/layout.js';
import { F32_TRAINING_BYTES, type MemoryBreakdown, stageMemory } from '../plan/memory.js';
import { planModel } from '../plan/model.js';
import type { DryRunLayout } from './dry-run.js';
import type { TrainConfig } from './train-config.js';

export interface RankPlan {
  layout: Layout;
  memory: MemoryBreakdown;
  /** weights + gradients + optimizer + activations: what the meta backend counts (no runtime reserve, no fragmentation) */
  stateAndActivations: number;
  volume: CommVolume;
}

/** The planner's layout for a training config and the dry run's degrees. */
export function plannerLayout(c: TrainConfig, l: DryRunLayout): Layout {
  return {
    tp: l.tp, pp: l.pp, dp: l.dp, cp: l.cp, ep: l.ep, vpp: c.pipeline?.vpp ?? 1, sequenceParallel: c.tensorParallel?.sp ?? false, zero: c.zero,
    microBatch: c.microBatch, globalBatch: c.globalBatch, recompute: c.recompute, attention: 'flash',
  };
}

/** The planner's numbers for pipeline stage `stage` of the layout. */
export function planForRank(c: TrainConfig, l: DryRunLayout, stage: number): RankPlan {
  const layout = plannerLayout(c, l);
  const m = planModel({ ...c.model, seqLen: c.seqLen }, false, 4);
  const memory = stageMemory(m, layout, stage, F32_TRAINING_BYTES);
  return { layout, memory, stateAndActivations: memory.weights + memory.grads + memory.optimizer + memory.activations, volume: commBytesPerStep(m, layout, stage) };
}
