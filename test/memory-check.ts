// Test helper: each rank's measured peak (the first step line's rankPeakBytes in metrics.jsonl) within
// `tolerance` of the planner's peak for the run's layout and zili's program (src/dist/memory-report.ts);
// under pipeline parallelism rank r is compared with its stage's prediction (Megatron order tp-dp-pp).
import assert from 'node:assert/strict';
import { plannedProgramMemory } from '../src/dist/memory-report.js';
import { preset } from '../src/nn/presets.js';
import { readMetrics } from '../src/train/metrics.js';
import { type TrainConfig, makeTrainConfig } from '../src/train/train-config.js';

export function assertPeakWithinPlanner(metricsPath: string, over: Partial<TrainConfig>, what: string, tolerance = 0.1): void {
  const c = makeTrainConfig(preset('tiny'), '/nonexistent', over);
  const stages = plannedProgramMemory(c, true);
  const peaks = readMetrics(metricsPath)[0]!['rankPeakBytes'] as number[] | undefined;
  assert.ok(Array.isArray(peaks), `${what}: no rankPeakBytes in the first step line`);
  const perStage = peaks.length / stages.length;
  peaks.forEach((b, r) => {
    const p = stages[Math.floor(r / perStage)]!.peak;
    assert.ok(Math.abs(b / p - 1) <= tolerance, `${what}, rank ${r}: measured peak ${b} B vs planner ${Math.round(p)} B (${(b / p).toFixed(3)}x)`);
  });
}
