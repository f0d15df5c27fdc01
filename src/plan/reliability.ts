// Reliability of a long run: interruptions per week from a per-chip failure rate, checkpoint write
// time, the optimal checkpoint interval (Young 1974 / Daly 2006) and the resulting goodput.
import type { ClusterParams } from './cluster.js';

const HOURS_PER_YEAR = 8766;

/** Bytes of a full training checkpoint: fp32 master weights + Adam moments (12) + bf16 weights (2) per parameter. */
export function checkpointBytes(totalParams: number): number {
  return 14 * totalParams;
}

export interface Reliability {
  interruptionsPerWeek: number;
  /** mean time between interruptions of the whole job, hours */
  mtbfHours: number;
  checkpointGB: number;
  checkpointWriteS: number;
  /** optimal compute time between checkpoints, seconds (Daly's higher-order form of Young's sqrt(2 delta M)) */
  checkpointIntervalS: number;
  /** Young's first-order interval, seconds */
  youngIntervalS: number;
  /** fraction of wall time that advances training (checkpoint writes, lost work and restarts removed) */
  goodput: number;
}

export function daly(delta: number, M: number): number {
  if (delta >= 2 * M) return M;
  const r = delta / (2 * M);
  return Math.sqrt(2 * delta * M) * (1 + Math.sqrt(r) / 3 + r / 9) - delta;
}

export function reliability(chips: number, totalParams: number, c: ClusterParams): Reliability {
  const ratePerHour = (chips * c.failuresPerChipYear) / HOURS_PER_YEAR;
  const mtbfHours = ratePerHour > 0 ? 1 / ratePerHour : Infinity;
  const M = mtbfHours * 3600;
  const bytes = checkpointBytes(totalParams);
  const delta = bytes / (c.storageWriteGBs * 1e9);
  const young = Number.isFinite(M) ? Math.sqrt(2 * delta * M) : Infinity;
  const tau = Number.isFinite(M) ? daly(delta, M) : Infinity;
  const R = c.restartMinutes * 60;
  let goodput = 1;
  if (Number.isFinite(M)) {
    const writeShare = tau / (tau + delta);
    const lostShare = (R + (tau + delta) / 2) / M;
    goodput = Math.max(0, writeShare * (1 - lostShare));
  }
  return {
    interruptionsPerWeek: ratePerHour * 168,
    mtbfHours,
    checkpointGB: bytes / 1e9,
    checkpointWriteS: delta,
    checkpointIntervalS: tau,
    youngIntervalS: young,
    goodput,
  };
}
