// Reads the `zili plan estimate` input (docs/planner-io.md) into an EstimateInput, with errors that
// name the field and what is expected. Numbers must be JSON numbers and flags JSON booleans.
import { clusterParams } from './cluster.js';
import { DEFAULT_EFFICIENCY, type Efficiency } from './efficiency.js';
import type { EstimateInput } from './estimate.js';
import { chipFromJson, PlanError, type ResolvedChip, resolveChip } from './hardware.js';
import { measureRanksCommand } from './local-ranks.js';
import { jsonBoolean, jsonChoice, jsonNumber } from './json-fields.js';
import type { Layout } from './layout.js';
import { modelFromJson, planModel } from './model.js';
import { type Stack, STACKS } from './stack.js';

const TOP_KEYS = ['model', 'hardware', 'chips', 'layout', 'precision', 'tokens', 'cluster', 'stack'];
const LAYOUT_KEYS = ['tp', 'pp', 'dp', 'cp', 'ep', 'vpp', 'sequenceParallel', 'zero', 'microBatch', 'globalBatch', 'recompute', 'attention'];
export const PRECISIONS = ['bf16', 'fp16', 'f32'] as const;
export type Precision = (typeof PRECISIONS)[number];

/**
 * How `hardware: "local"` is resolved: the caller measures this machine (src/plan/local-chip.ts); for
 * `ranks` > 1 it adds the stored measurement of that many ranks (src/plan/local-ranks.ts) or throws.
 */
export type LocalChipProvider = (precision: Precision, ranks: number) => ResolvedChip;

export interface EstimateInputOptions {
  local?: LocalChipProvider;
}

export function estimateInputFromJson(obj: unknown, origin = 'input', opts: EstimateInputOptions = {}): EstimateInput & { precision: Precision } {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new PlanError(`${origin}: expected a JSON object with model, hardware, chips and layout`);
  const o = obj as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!TOP_KEYS.includes(k)) throw new PlanError(`${origin}: unknown field '${k}'. Fields: ${TOP_KEYS.join(', ')}`);
  for (const k of ['model', 'hardware', 'chips', 'layout']) if (o[k] === undefined) throw new PlanError(`${origin}: field '${k}' is required`);
  const precision = o['precision'] === undefined ? 'bf16' : jsonChoice(o['precision'], 'precision', origin, PRECISIONS);
  const stack: Stack = o['stack'] === undefined ? 'megatron' : jsonChoice(o['stack'], 'stack', origin, STACKS);
  let model = modelFromJson(o['model'], `${origin}: model`);
  if (precision === 'f32') model = planModel(model.config, model.dropout, 4);
  const chips = jsonNumber(o['chips'], 'chips', origin, { integer: true, min: 1 });
  const hw = o['hardware'];
  let chip: ResolvedChip;
  let efficiency: Efficiency | undefined;
  if (hw === 'local' || (hw && typeof hw === 'object' && (hw as Record<string, unknown>)['base'] === 'local')) {
    if (!opts.local) throw new PlanError(`${origin}: hardware "local" needs this machine's measurements, which this caller cannot take`);
    const explicit = localLinks(hw, origin);
    chip = opts.local(precision, chips);
    const measured = chip.linkLatencyUs === undefined ? null : { GBs: chip.intraNodeGBs, latencyUs: chip.linkLatencyUs };
    const links = explicit ?? measured;
    if (chips > 1 && !links) {
      throw new PlanError(`${origin}: hardware "local" on ${chips} ranks needs the communicator's measured bandwidth and latency between ranks: ` +
        `run \`${measureRanksCommand(chips)}\`, or give "hardware": {"base": "local", "linkGBs": <GB/s one direction>, "linkLatencyUs": <microseconds>}`);
    }
    if (links && chips > 1) {
      // ranks on this machine talk through the communicator: its measured figures are the links
      chip = { ...chip, chipsPerNode: chips, intraNodeGBs: links.GBs, interNodeGBs: links.GBs };
      efficiency = { ...DEFAULT_EFFICIENCY, netEff: 1, latencyUs: links.latencyUs };
    }
  } else {
    chip = resolveChip(chipFromJson(o['hardware'], `${origin}: hardware`));
    if (precision === 'f32' && typeof o['hardware'] === 'string') {
      throw new PlanError(`${origin}: precision "f32" on catalog chip '${chip.id}': the catalog holds 16-bit peaks; use hardware "local" (measured) or a hardware object whose peakTflops is the chip's f32 rate`);
    }
  }
  const lo = o['layout'];
  if (!lo || typeof lo !== 'object' || Array.isArray(lo)) throw new PlanError(`${origin}: layout must be an object`);
  const L = lo as Record<string, unknown>;
  for (const k of Object.keys(L)) if (!LAYOUT_KEYS.includes(k)) throw new PlanError(`${origin}: unknown layout field '${k}'. Fields: ${LAYOUT_KEYS.join(', ')}`);
  const int = (k: string, def: number, min = 1) => (L[k] === undefined ? def : jsonNumber(L[k], `layout.${k}`, origin, { integer: true, min }));
  const tp = int('tp', 1), pp = int('pp', 1), cp = int('cp', 1), ep = int('ep', 1);
  // Megatron-Core convention: chips = tp * pp * cp * dp, ep folded inside dp * cp
  const dp = L['dp'] === undefined ? chips / (tp * pp * cp) : int('dp', 1);
  const layout: Layout = {
    tp, pp, dp, cp, ep, vpp: int('vpp', 1),
    sequenceParallel: L['sequenceParallel'] === undefined ? false : jsonBoolean(L['sequenceParallel'], 'layout.sequenceParallel', origin),
    zero: int('zero', 0, 0) as Layout['zero'],
    microBatch: int('microBatch', 1),
    globalBatch: L['globalBatch'] === undefined ? dp : int('globalBatch', 1),
    recompute: L['recompute'] === undefined ? 'none' : jsonChoice(L['recompute'], 'layout.recompute', origin, ['none', 'selective', 'full'] as const),
    attention: L['attention'] === undefined ? 'flash' : jsonChoice(L['attention'], 'layout.attention', origin, ['flash', 'standard'] as const),
  };
  const cl = o['cluster'] ?? {};
  if (typeof cl !== 'object' || Array.isArray(cl)) throw new PlanError(`${origin}: cluster must be an object`);
  return {
    model, chip, chips, layout, stack, precision, efficiency, cluster: clusterParams(cl as Record<string, unknown>, `${origin}: cluster`),
    tokens: o['tokens'] === undefined ? undefined : jsonNumber(o['tokens'], 'tokens', origin, { min: 0, above: true, hint: 'tokens to train, e.g. 1e13' }),
  };
}

/**
 * Links between ranks given by hand, overriding the measured ones: `{"base": "local", "linkGBs": ...,
 * "linkLatencyUs": ...}` (GB/s one direction, microseconds). Null when not given.
 */
function localLinks(hw: unknown, origin: string): { GBs: number; latencyUs: number } | null {
  const h = hw && typeof hw === 'object' ? (hw as Record<string, unknown>) : {};
  for (const k of Object.keys(h)) if (!['base', 'linkGBs', 'linkLatencyUs'].includes(k)) throw new PlanError(`${origin}: unknown field '${k}' for hardware "local". Fields: base, linkGBs, linkLatencyUs`);
  if (h['linkGBs'] === undefined) return null;
  return {
    GBs: jsonNumber(h['linkGBs'], 'hardware.linkGBs', origin, { min: 0, above: true }),
    latencyUs: jsonNumber(h['linkLatencyUs'] ?? 0, 'hardware.linkLatencyUs', origin, { min: 0 }),
  };
}
