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

/** The range of each cluster figure: one rule for `--cluster` JSON files, `plan estimate` inputs and flags. */
const RULES: Record<keyof ClusterParams, { min: number; strict: boolean; why: string }> = {
  failuresPerChipYear: { min: 0, strict: false, why: 'interruptions per chip per year (0 for none; Llama 3 saw 0.17)' },
  storageWriteGBs: { min: 0, strict: true, why: 'the checkpoint storage write bandwidth in GB/s (e.g. 100)' },
  restartMinutes: { min: 0, strict: false, why: 'minutes to restart after an interruption (e.g. 15)' },
  powerOverhead: { min: 1, strict: false, why: 'facility power over chip power (1 = chips only, a PUE of 1.2 = 1.2)' },
};

/**
 * Reads the cluster-level fields of an object, defaulting the rest. Each value must be a JSON number (or,
 * from a flag, an already parsed number) in its range; `names` maps a field to the name the user typed
 * (a flag) for the message.
 */
export function clusterParams(o: Record<string, unknown> = {}, origin = 'cluster', names: Partial<Record<keyof ClusterParams, string>> = {}): ClusterParams {
  const out: ClusterParams = { ...DEFAULT_CLUSTER };
  for (const k of PARAM_KEYS) {
    const v = o[k];
    if (v === undefined) continue;
    const r = RULES[k];
    const ok = typeof v === 'number' && Number.isFinite(v) && (r.strict ? v > r.min : v >= r.min);
    if (!ok) {
      throw new PlanError(`${origin}: ${names[k] ?? k} must be a number ${r.strict ? '>' : '>='} ${r.min} (${r.why}), got ${JSON.stringify(v)}`);
    }
    out[k] = v as number;
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
  const chips = o['chips'];
  if (typeof chips !== 'number' || !Number.isInteger(chips) || chips <= 0) throw new PlanError(`${origin}: 'chips' must be a positive integer, got ${JSON.stringify(chips)}`);
  return { chip, chips, ...clusterParams(o, origin) };
}
