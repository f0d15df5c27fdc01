// The planner's prediction for a run (`zili dashboard --chip ID|FILE`), to show beside what the run
// measured: the run's model and batch geometry on `chips` chips of a kind, data parallel as zili
// trains, through the planner's public estimate().
import * as fs from 'node:fs';
import type { ModelConfig } from '../nn/config.js';
import { estimate, toPlannerIo } from '../plan/estimate.js';
import { catalogChip, chipFromJson, resolveChip, type ResolvedChip } from '../plan/hardware.js';
import { planModel } from '../plan/model.js';

/** A catalog id, or a JSON chip file (as `zili plan --chip`). */
export function chipFromSpec(spec: string): ResolvedChip {
  const chip = spec.endsWith('.json') ? chipFromJson(JSON.parse(fs.readFileSync(spec, 'utf8')) as unknown, spec) : catalogChip(spec);
  return resolveChip(chip);
}

/** The planner-io figures (stepTimeS, tokensPerS, mfu, memoryGiB, ...) for a run, or the planner's reason it cannot say. */
export function plannerEstimate(model: ModelConfig, train: Record<string, unknown>, chip: ResolvedChip, chips: number): Record<string, unknown> {
  const num = (k: string, d: number) => (typeof train[k] === 'number' ? (train[k] as number) : d);
  const seqLen = num('seqLen', model.seqLen);
  const config = seqLen === model.seqLen ? model : { ...model, seqLen };
  try {
    const e = estimate({
      model: planModel(config),
      chip,
      chips,
      layout: {
        tp: 1, pp: 1, dp: chips, cp: 1, ep: 1, vpp: 1, sequenceParallel: false, zero: 0,
        microBatch: num('microBatch', 1),
        globalBatch: num('globalBatch', chips),
        recompute: train['recompute'] === 'full' ? 'full' : 'none',
        attention: 'standard',
      },
    });
    return { chip: chip.id, chips, ...toPlannerIo(e) };
  } catch (err) {
    return { chip: chip.id, chips, error: (err as Error).message };
  }
}
