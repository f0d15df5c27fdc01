// A cluster for the planner: N chips of one kind plus the figures that are properties of the
// installation rather than the chip (failure rate, checkpoint storage, restart time, facility power).
import { type Chip, PlanError, chipFromJson, overrideChip } from './hardware.js';

export interface ClusterParams {
  /**
   * Job interruptions per chip per year, all causes (chip, host, network, software). Default 0.17 from
   * Llama 3 405B: 419 unexpected interruptions in 54 days on 16,384 GPUs.
   */
  failuresPerChipYear: number;
  /** aggregate write bandwidth of checkpoint storage, GB/s */
  storageWriteGBs: number;
  /** time to detect a failure, reschedule and reload the last checkpoint, minutes */
  restartMinutes: number;
  /** facility power over chip power (PUE times host/network overhead); 1 = chips only */
  powerOverhead: number;
}

export const DEFAULT_CLUSTER: ClusterParams = {
  failuresPerChipYear: 0.17,
  storageWriteGBs: 100,
  restartMinutes: 15,
  powerOverhead: 1,
};

export interface Cluster extends ClusterParams {
  chip: Chip;
  chips: number;
}

const PARAM_KEYS = Object.keys(DEFAULT_CLUSTER) as (keyof ClusterParams)[];

/** Reads the cluster-level fields of an object, defaulting the rest. */
export function clusterParams(o: Record<string, unknown> = {}, origin = 'cluster'): ClusterParams {
  const out: ClusterParams = { ...DEFAULT_CLUSTER };
  for (const k of PARAM_KEYS) {
    if (o[k] === undefined) continue;
    const n = Number(o[k]);
    if (!Number.isFinite(n) || n < 0) throw new PlanError(`${origin}: ${k} must be a non-negative number, got ${JSON.stringify(o[k])}`);
    out[k] = n;
  }
  return out;
}

/**
 * A cluster from JSON: `{"chip": "<id>" | {...chip}, "chips": N, "chipOverrides": {...}, "failuresPerChipYear": ...,
 * "storageWriteGBs": ..., "restartMinutes": ..., "powerOverhead": ...}`.
 */
export function clusterFromJson(obj: unknown, origin = 'cluster JSON'): Cluster {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new PlanError(`${origin}: expected an object`);
  const o = obj as Record<string, unknown>;
  const allowed = new Set(['chip', 'chips', 'chipOverrides', 'name', ...PARAM_KEYS]);
  for (const k of Object.keys(o)) if (!allowed.has(k)) throw new PlanError(`${origin}: unknown field '${k}'. Fields: ${[...allowed].join(', ')}`);
  if (o['chip'] === undefined) throw new PlanError(`${origin}: 'chip' is required (a catalog id or a chip object)`);
  let chip = chipFromJson(o['chip'], origin);
  if (o['chipOverrides']) chip = overrideChip(chip, o['chipOverrides'] as Record<string, unknown>, origin);
  const chips = Number(o['chips'] ?? 0);
  if (!Number.isInteger(chips) || chips <= 0) throw new PlanError(`${origin}: 'chips' must be a positive integer`);
  return { chip, chips, ...clusterParams(o, origin) };
}
