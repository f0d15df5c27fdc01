// `zili train` flags for fault tolerance: checkpoint mode and `--save-every auto`, non-finite loss
// handling and the loss-spike guard. Resolved into a FaultToleranceConfig plus the first interval.
import type { FlagSpecs } from './args.js';
import { UsageError } from './args.js';
import { DEFAULT_FAULT_TOLERANCE, type FaultToleranceConfig } from '../train/fault/config.js';
import { defaultMtbfHours } from '../train/fault/runtime.js';

export const FAULT_FLAGS = {
  'save-mode': { kind: 'string', help: 'checkpoint writes: async (a background thread; training stalls only for the host copy) or sync', default: 'async' },
  'mtbf-hours': { kind: 'number', help: "--save-every auto: the job's mean time between failures (default: the planner's 0.17 failures per chip-year over the job's ranks)" },
  'on-nan': { kind: 'string', help: 'a non-finite loss or gradient: skip (the update, counted and logged) or stop', default: 'skip' },
  'max-skips': { kind: 'int', help: 'non-finite steps in a row skipped; one more stops the run', default: DEFAULT_FAULT_TOLERANCE.maxConsecutiveSkips, min: 0 },
  'spike-z': { kind: 'number', help: 'loss-spike rollback: robust z-score over the running window (0: off)', default: DEFAULT_FAULT_TOLERANCE.spike.z, min: 0 },
  'spike-window': { kind: 'int', help: 'loss-spike rollback: losses in the running window', default: DEFAULT_FAULT_TOLERANCE.spike.window, min: 4 },
  'spike-skip': { kind: 'int', help: 'loss-spike rollback: steps skipped, ending at the spike', default: DEFAULT_FAULT_TOLERANCE.spike.skip, min: 1 },
} satisfies FlagSpecs;

/** The first interval of `--save-every auto`: a checkpoint to measure the write time on, then Young/Daly. */
export const AUTO_FIRST_SAVE = 10;

/** `--save-every K|auto` → the interval to start with and whether it is automatic. */
export function parseSaveEvery(v: string): { every: number; auto: boolean } {
  if (v === 'auto') return { every: AUTO_FIRST_SAVE, auto: true };
  if (!/^\d+$/.test(v)) throw new UsageError(`--save-every must be a number of steps (0: only at the end) or auto, got '${v}'`);
  return { every: Number(v), auto: false };
}

export function faultConfig(a: Record<string, unknown>, auto: boolean, ranks: number): FaultToleranceConfig {
  const mode = a['save-mode'];
  if (mode !== 'async' && mode !== 'sync') throw new UsageError(`--save-mode must be async or sync, got '${String(mode)}'`);
  const onNan = a['on-nan'];
  if (onNan !== 'skip' && onNan !== 'stop') throw new UsageError(`--on-nan must be skip or stop, got '${String(onNan)}'`);
  const mtbf = a['mtbf-hours'] as number | undefined;
  if (mtbf !== undefined && !(mtbf > 0)) throw new UsageError(`--mtbf-hours must be a positive number of hours, got ${mtbf}`);
  if (mtbf !== undefined && !auto) throw new UsageError('--mtbf-hours only sets the interval of --save-every auto; add --save-every auto or drop it');
  return {
    saveMode: mode,
    autoSaveMtbfHours: auto ? (mtbf ?? defaultMtbfHours(ranks)) : null,
    skipNonFinite: onNan === 'skip',
    maxConsecutiveSkips: a['max-skips'] as number,
    spike: { z: a['spike-z'] as number, window: a['spike-window'] as number, skip: a['spike-skip'] as number },
    maxRollbacks: DEFAULT_FAULT_TOLERANCE.maxRollbacks,
  };
}
