// The memory line a data-parallel run prints after its first step: the planner's prediction for the
// same layout (src/plan/memory.ts) beside each rank's measured peak and the state it holds.
import { F32_TRAINING_BYTES, type MemoryBreakdown, memoryPerChip } from '../plan/memory.js';
import { planModel } from '../plan/model.js';
import { formatBytes } from '../train/format.js';
import type { TrainConfig } from '../train/train-config.js';
import type { DataParallel } from './data-parallel.js';

/**
 * The planner's memory per rank for this run's layout, with the training state zili keeps: f32
 * weights (their own master copy), f32 gradients and AdamW moments, under --dtype f32 and bf16 alike.
 */
export function plannedMemory(c: Pick<TrainConfig, 'model' | 'seqLen' | 'dp' | 'zero' | 'microBatch' | 'globalBatch' | 'recompute'>): MemoryBreakdown {
  const layout = {
    tp: 1, pp: 1, dp: c.dp, cp: 1, ep: 1, vpp: 1, sequenceParallel: false, zero: c.zero, microBatch: c.microBatch, globalBatch: c.globalBatch, recompute: c.recompute, attention: 'flash',
  } as const;
  return memoryPerChip(planModel({ ...c.model, seqLen: c.seqLen }), layout, F32_TRAINING_BYTES);
}

/** The planner's memory prediction for this layout beside what the ranks measured (peak bytes allocated by the backend). */
export function memoryReport(c: TrainConfig, dp: DataParallel, peakBytes: readonly number[]): string {
  const p = plannedMemory(c);
  const st = dp.stateBytes();
  return (
    `train: memory per rank (dp${c.dp} ZeRO-${c.zero}): planner ${formatBytes(p.weights + p.grads + p.optimizer + p.activations)} ` +
    `(weights ${formatBytes(p.weights)}, grads ${formatBytes(p.grads)}, optimizer ${formatBytes(p.optimizer)}, activations ${formatBytes(p.activations)}; ` +
    `+${formatBytes(p.other)} runtime reserve); measured peak ${peakBytes.map((b) => formatBytes(b)).join(' / ')} by rank ` +
    `(held between steps: weights ${formatBytes(st.weights)}, optimizer ${formatBytes(st.optimizer)})`
  );
}
