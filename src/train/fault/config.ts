// How a run reacts to faults (`zili train` flags): checkpoint write mode and automatic interval,
// non-finite loss/gradient handling and the loss-spike guard.
import type { SaveMode } from '../async-checkpoint.js';
import { DEFAULT_SPIKE_GUARD, type SpikeGuardConfig } from './spike-guard.js';

export interface FaultToleranceConfig {
  /** checkpoints written in a background thread (async) or while training waits (sync) */
  saveMode: SaveMode;
  /** `--save-every auto`: the interval from Young/Daly with the measured write time and this MTBF (hours) */
  autoSaveMtbfHours: number | null;
  /** a non-finite loss or gradient skips the update instead of stopping the run */
  skipNonFinite: boolean;
  /** skipped updates in a row allowed; one more stops the run (the weights, unchanged, then fail on different batches) */
  maxConsecutiveSkips: number;
  spike: SpikeGuardConfig;
  /** loss-spike rollbacks in one run after which it stops (spikes that keep coming are not bad batches) */
  maxRollbacks: number;
}

export const DEFAULT_FAULT_TOLERANCE: FaultToleranceConfig = {
  saveMode: 'async',
  autoSaveMtbfHours: null,
  skipNonFinite: true,
  maxConsecutiveSkips: 1,
  spike: DEFAULT_SPIKE_GUARD,
  maxRollbacks: 10,
};
