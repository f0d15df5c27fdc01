// What the planner predicts for the rank a dry run measures: its memory (src/plan/memory.ts) for the
// rank's pipeline stage — the plain sum of state and activations (Megatron's program) and zili's own
// program phase by phase (src/plan/program-memory.ts, via src/dist/memory-report.ts) — its FLOPs per
// step (src/plan/rank-flops.ts) and its bytes sent per step per dimension (src/plan/comm-volume.ts),
// for the same layout and batch, at zili's training precision (f32 weights that are their own master
// copy, f32 gradients and AdamW moments, f32 activations — under --dtype f32 and bf16 alike).
import { plannedProgramMemory, runLayout } from '../dist/memory-report.js';
import { type CommVolume, commBytesPerStep } from '../plan/comm-volume.js';
import type { Layout } from '../plan/layout.js';
import { F32_TRAINING_BYTES, type MemoryBreakdown, stageMemory } from '../plan/memory.js';
import { planModel } from '../plan/model.js';
import type { ProgramMemory } from '../plan/program-memory.js';
import { rankFlopsPerStep } from '../plan/rank-flops.js';
import { DRY_RUN_DIMENSIONS, type DryRunLayout } from './dry-run.js';
import type { TrainConfig } from './train-config.js';

export interface RankPlan {
  layout: Layout;
  memory: MemoryBreakdown;
  /** weights + gradients + optimizer + activations: what the meta backend counts (no runtime reserve, no fragmentation) */
  stateAndActivations: number;
  /** zili's program on this stage: what lives at the same time, phase by phase (its peak: what the dry run is compared with) */
  program: ProgramMemory;
  /** matmul + attention-core FLOPs per step of this rank */
  flops: number;
  volume: CommVolume;
}

/** The planner's numbers for pipeline stage `stage` of the layout (the config's: src/dist/memory-report.ts runLayout; `l` its degrees, as the dry run ran them). */
export function planForRank(c: TrainConfig, l: DryRunLayout, stage: number): RankPlan {
  const layout = runLayout(c);
  const differ = DRY_RUN_DIMENSIONS.filter((d) => layout[d] !== l[d]);
  if (differ.length) throw new RangeError(`planForRank: the dry run's ${differ.map((d) => `${d} ${l[d]}`).join(', ')} differ from the config's ${differ.map((d) => `${d} ${layout[d]}`).join(', ')}`);
  const m = planModel({ ...c.model, seqLen: c.seqLen }, false, 4);
  const memory = stageMemory(m, layout, stage, F32_TRAINING_BYTES);
  return {
    layout, memory, stateAndActivations: memory.weights + memory.grads + memory.optimizer + memory.activations,
    program: plannedProgramMemory(c, true)[stage]!, flops: rankFlopsPerStep(m, layout, stage), volume: commBytesPerStep(m, layout, stage),
  };
}
