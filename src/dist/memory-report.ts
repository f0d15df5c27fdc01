// The memory line a distributed run prints after its first step: the planner's prediction for the
// same layout and program (src/plan/program-memory.ts: what zili allocates at the same time, phase by
// phase) beside each rank's measured peak and the state it holds.
import { F32_TRAINING_BYTES, type MemoryBreakdown, memoryPerChip } from '../plan/memory.js';
import type { Layout } from '../plan/layout.js';
import { planModel } from '../plan/model.js';
import { type ProgramMemory, programMemoryPerChip, programMemoryPerStage, ziliProgram } from '../plan/program-memory.js';
import { formatBytes } from '../train/format.js';
import type { TrainConfig } from '../train/train-config.js';
import { zero3GatherMode } from './data-parallel.js';

type LayoutFields = Pick<TrainConfig, 'model' | 'seqLen' | 'dp' | 'zero' | 'microBatch' | 'globalBatch' | 'recompute'> & Partial<Pick<TrainConfig, 'pipeline' | 'tensorParallel' | 'contextParallel' | 'expertParallel' | 'bucketMb'>>;

/** The planner's layout of this run (Megatron order: tp, cp, dp, pp, ep inside dp·cp; flash-style attention: zili keeps no s x s scores). */
export function runLayout(c: LayoutFields): Layout {
  const tp = c.tensorParallel?.tp ?? 1;
  return {
    tp, pp: c.pipeline?.pp ?? 1, dp: c.dp, cp: c.contextParallel?.cp ?? 1, ep: c.expertParallel?.ep ?? 1, vpp: c.pipeline?.vpp ?? 1, sequenceParallel: tp > 1 && (c.tensorParallel?.sp ?? false),
    zero: c.zero, microBatch: c.microBatch, globalBatch: c.globalBatch, recompute: c.recompute, attention: 'flash',
  };
}

/**
 * The planner's memory per rank for this run's layout, with the training state zili keeps: f32
 * weights (their own master copy), f32 gradients and AdamW moments, under --dtype f32 and bf16 alike.
 */
export function plannedMemory(c: LayoutFields): MemoryBreakdown {
  return memoryPerChip(planModel({ ...c.model, seqLen: c.seqLen }, false, 4), runLayout(c), F32_TRAINING_BYTES);
}

/** The planner's peak per rank for zili's own program on this layout (f32 state and activations); `perStage`: every pipeline stage. */
export function plannedProgramMemory(c: LayoutFields): ProgramMemory;
export function plannedProgramMemory(c: LayoutFields, perStage: true): ProgramMemory[];
export function plannedProgramMemory(c: LayoutFields, perStage = false): ProgramMemory | ProgramMemory[] {
  const l = runLayout(c);
  const m = planModel({ ...c.model, seqLen: c.seqLen }, false, 4);
  const p = ziliProgram(l, { bucketBytes: (c.bucketMb ?? 25) * 2 ** 20, zero3Gather: zero3GatherMode(c.recompute), ...(c.pipeline ? { schedule: c.pipeline.schedule } : {}) });
  return perStage ? programMemoryPerStage(m, l, p, F32_TRAINING_BYTES) : programMemoryPerChip(m, l, p, F32_TRAINING_BYTES);
}

/** A run's layout in words: dp2 ZeRO-1, tp2+sp, pp2x2 interleaved, tp2 x dp2, tp2 x pp2 1f1b x cp2, dp2 ZeRO-0 x ep2. */
export function describeRun(c: LayoutFields): string {
  const parts: string[] = [];
  const tp = c.tensorParallel?.tp ?? 1, pp = c.pipeline?.pp ?? 1;
  if (tp > 1) parts.push(`tp${tp}${c.tensorParallel?.sp ? '+sp' : ''}`);
  const cp = c.contextParallel?.cp ?? 1, ep = c.expertParallel?.ep ?? 1;
  if (pp > 1) parts.push(`pp${pp}${c.pipeline!.vpp > 1 ? `x${c.pipeline!.vpp}` : ''} ${c.pipeline!.schedule}`);
  if (cp > 1) parts.push(`cp${cp}`);
  if (c.dp > 1 || parts.length === 0) parts.push(`dp${c.dp}${c.zero > 0 || (tp === 1 && pp === 1 && cp === 1) ? ` ZeRO-${c.zero}` : ''}`);
  if (ep > 1) parts.push(`ep${ep}`);
  return parts.join(' x ');
}

/** The planner's memory prediction for this layout beside what the ranks measured (peak bytes allocated by the backend since start). */
export function memoryReport(c: TrainConfig, peakBytes: readonly number[], held?: { weights: number; optimizer: number }): string {
  const stages = plannedProgramMemory(c, true);
  const p = stages.reduce((a, b) => (b.peak > a.peak ? b : a));
  const pp = c.pipeline?.pp ?? 1;
  const predicted = pp > 1 ? ` (stages ${stages.map((s) => formatBytes(s.peak)).join(' / ')})` : '';
  return (
    `train: memory per rank (${describeRun(c)}): planner peak ${formatBytes(p.peak)} at ${p.peakPhase}${predicted} ` +
    `(weights ${formatBytes(p.weights)}, optimizer ${formatBytes(p.optimizer)}, grads ${formatBytes(p.grads)}, activations + logits ${formatBytes(p.activations)}` +
    `${p.gathered ? `, gathered weights ${formatBytes(p.gathered)}` : ''}; + runtime reserve); measured peak ${peakBytes.map((b) => formatBytes(b)).join(' / ')} by rank` +
    (held ? ` (held between steps: weights ${formatBytes(held.weights)}, optimizer ${formatBytes(held.optimizer)})` : '')
  );
}
