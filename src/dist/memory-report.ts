// The memory line a data-parallel run prints after its first step: the planner's prediction for the
// same layout (src/plan/memory.ts) beside each rank's measured peak and the state it holds.
import { memoryPerChip } from '../plan/memory.js';
import { planModel } from '../plan/model.js';
import { formatBytes } from '../train/format.js';
import type { TrainConfig } from '../train/train-config.js';
import type { DataParallel } from './data-parallel.js';

/** The planner's memory prediction for this layout beside what the ranks measured (peak bytes allocated by the backend). */
export function memoryReport(c: TrainConfig, dp: DataParallel, peakBytes: readonly number[]): string {
  const p = memoryPerChip(planModel({ ...c.model, seqLen: c.seqLen }), {
    tp: 1, pp: 1, dp: c.dp, cp: 1, ep: 1, vpp: 1, sequenceParallel: false, zero: c.zero, microBatch: c.microBatch, globalBatch: c.globalBatch, recompute: c.recompute, attention: 'flash',
  });
  const st = dp.stateBytes();
  return (
    `train: memory per rank (dp${c.dp} ZeRO-${c.zero}): planner ${formatBytes(p.weights + p.grads + p.optimizer + p.activations)} ` +
    `(weights ${formatBytes(p.weights)}, grads ${formatBytes(p.grads)}, optimizer ${formatBytes(p.optimizer)}, activations ${formatBytes(p.activations)}; ` +
    `+${formatBytes(p.other)} runtime reserve); measured peak ${peakBytes.map((b) => formatBytes(b)).join(' / ')} by rank ` +
    `(held between steps: weights ${formatBytes(st.weights)}, optimizer ${formatBytes(st.optimizer)})`
  );
}
