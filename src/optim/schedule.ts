// Learning-rate schedules: linear warmup then cosine decay to minLr over the run's total steps, or constant (with optional warmup).
import { ConfigError } from '../nn/config.js';

export interface CosineSchedule {
  kind?: 'cosine';
  maxLr: number;
  minLr: number;
  /** steps of linear warmup from maxLr/warmupSteps (step 1) to maxLr (step warmupSteps) */
  warmupSteps: number;
  /** the run's total optimizer steps: the cosine reaches minLr at this step */
  totalSteps: number;
}

export interface ConstantSchedule {
  kind: 'constant';
  lr: number;
  warmupSteps?: number;
}

export type LrSchedule = CosineSchedule | ConstantSchedule;

/** Throws ConfigError naming the bad field; returns the schedule unchanged. */
export function validateSchedule(s: LrSchedule): LrSchedule {
  const nonNeg = (name: string, v: number) => {
    if (!Number.isFinite(v) || v < 0) throw new ConfigError(`learning-rate schedule: ${name} must be a finite number >= 0, got ${v}`);
  };
  const steps = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 0) throw new ConfigError(`learning-rate schedule: ${name} must be an integer >= 0, got ${v}`);
  };
  if (s.kind === 'constant') {
    nonNeg('lr', s.lr);
    steps('warmupSteps', s.warmupSteps ?? 0);
    return s;
  }
  if (s.kind !== undefined && s.kind !== 'cosine') throw new ConfigError(`learning-rate schedule: unknown kind '${(s as { kind: string }).kind}' (use 'cosine' or 'constant')`);
  nonNeg('maxLr', s.maxLr);
  nonNeg('minLr', s.minLr);
  if (s.minLr > s.maxLr) throw new ConfigError(`learning-rate schedule: minLr ${s.minLr} is above maxLr ${s.maxLr}`);
  steps('warmupSteps', s.warmupSteps);
  steps('totalSteps', s.totalSteps);
  if (s.totalSteps < 1) throw new ConfigError(`learning-rate schedule: totalSteps must be >= 1, got ${s.totalSteps}`);
  if (s.warmupSteps > s.totalSteps)
    throw new ConfigError(`learning-rate schedule: warmupSteps ${s.warmupSteps} exceeds totalSteps ${s.totalSteps}; lower the warmup or raise --steps`);
  return s;
}

/**
 * The learning rate of optimizer step `step` (1-based). Warmup: maxLr * step / warmupSteps for
 * step <= warmupSteps. Then minLr + (maxLr - minLr) * (1 + cos(pi * t)) / 2 with
 * t = (step - warmupSteps) / (totalSteps - warmupSteps), so step totalSteps gets exactly minLr;
 * steps past totalSteps stay at minLr.
 */
export function lrAt(step: number, s: LrSchedule): number {
  if (!Number.isInteger(step) || step < 1) throw new RangeError(`lrAt: step must be an integer >= 1 (steps are 1-based), got ${step}`);
  if (s.kind === 'constant') {
    const w = s.warmupSteps ?? 0;
    return step <= w ? (s.lr * step) / w : s.lr;
  }
  const { maxLr, minLr, warmupSteps, totalSteps } = s;
  if (step <= warmupSteps) return (maxLr * step) / warmupSteps;
  if (step >= totalSteps) return minLr;
  const t = (step - warmupSteps) / (totalSteps - warmupSteps);
  return minLr + 0.5 * (maxLr - minLr) * (1 + Math.cos(Math.PI * t));
}
