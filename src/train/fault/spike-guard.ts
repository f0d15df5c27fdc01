// Loss-spike detection (PaLM-style recovery): a step's loss is a spike when it exceeds the median of
// the last `window` good losses by more than `z` robust standard deviations (1.4826 x the median
// absolute deviation, floored at 1% of the median so a flat curve is not hair-trigger). Inactive until
// the window holds `window / 2` losses. Its window is saved in every checkpoint (and restored on
// resume), so a resumed run decides exactly as the uninterrupted one would.
import { median } from '../../observe/run-record.js';

export interface SpikeGuardConfig {
  /** robust z-score above which a loss is a spike (0: spike detection off) */
  z: number;
  /** losses kept in the running window */
  window: number;
  /** steps skipped ending at the spike (the batches that caused it) */
  skip: number;
}

export const DEFAULT_SPIKE_GUARD: SpikeGuardConfig = { z: 8, window: 32, skip: 1 };

export class SpikeGuard {
  private losses: number[];

  constructor(
    readonly config: SpikeGuardConfig,
    state: unknown = null,
  ) {
    if (!(config.z >= 0) || !(config.window >= 4) || !(config.skip >= 1))
      throw new RangeError(`spike guard: z ${config.z} must be >= 0, window ${config.window} >= 4, skip ${config.skip} >= 1`);
    this.losses = Array.isArray(state) ? state.filter((x): x is number => typeof x === 'number').slice(-config.window) : [];
  }

  /** The threshold a loss must exceed to be a spike now (Infinity while warming up or when off). */
  threshold(): number {
    if (this.config.z === 0 || this.losses.length < this.config.window / 2) return Infinity;
    const med = median(this.losses);
    const mad = median(this.losses.map((x) => Math.abs(x - med)));
    return med + this.config.z * Math.max(1.4826 * mad, 0.01 * Math.abs(med));
  }

  /** Whether `loss` is a spike; a finite loss that is not is added to the window. */
  check(loss: number): boolean {
    if (!Number.isFinite(loss)) return false;
    if (loss > this.threshold()) return true;
    this.losses.push(loss);
    if (this.losses.length > this.config.window) this.losses.shift();
    return false;
  }

  /** The window (JSON), saved with each checkpoint. */
  state(): number[] {
    return [...this.losses];
  }
}
