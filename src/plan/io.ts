// Reads the `zili plan estimate` input (reference/planner-io.md) into an EstimateInput, with errors
// that name the field and what is expected.
import { clusterParams } from './cluster.js';
import type { EstimateInput } from './estimate.js';
import { chipFromJson, PlanError, resolveChip } from './hardware.js';
import type { AttentionKernel, Layout, Recompute } from './layout.js';
import { modelFromJson } from './model.js';

const TOP_KEYS = ['model', 'hardware', 'chips', 'layout', 'precision', 'tokens', 'cluster'];
const LAYOUT_KEYS = ['tp', 'pp', 'dp', 'cp', 'ep', 'vpp', 'sequenceParallel', 'zero', 'microBatch', 'globalBatch', 'recompute', 'attention'];

export function estimateInputFromJson(obj: unknown, origin = 'input'): EstimateInput {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new PlanError(`${origin}: expected a JSON object with model, hardware, chips and layout`);
  const o = obj as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!TOP_KEYS.includes(k)) throw new PlanError(`${origin}: unknown field '${k}'. Fields: ${TOP_KEYS.join(', ')}`);
  for (const k of ['model', 'hardware', 'chips', 'layout']) if (o[k] === undefined) throw new PlanError(`${origin}: field '${k}' is required`);
  const precision = String(o['precision'] ?? 'bf16');
  if (precision !== 'bf16' && precision !== 'fp16') throw new PlanError(`${origin}: precision '${precision}' is not modelled; use bf16 or fp16 (mixed precision with fp32 master weights)`);
  const model = modelFromJson(o['model'], `${origin}: model`);
  const chip = resolveChip(chipFromJson(o['hardware'], `${origin}: hardware`));
  const chips = Number(o['chips']);
  if (!Number.isInteger(chips) || chips <= 0) throw new PlanError(`${origin}: chips must be a positive integer`);
  const lo = o['layout'] as Record<string, unknown>;
  if (!lo || typeof lo !== 'object') throw new PlanError(`${origin}: layout must be an object`);
  for (const k of Object.keys(lo)) if (!LAYOUT_KEYS.includes(k)) throw new PlanError(`${origin}: unknown layout field '${k}'. Fields: ${LAYOUT_KEYS.join(', ')}`);
  const n = (k: string, def: number) => (lo[k] === undefined ? def : Number(lo[k]));
  const tp = n('tp', 1), pp = n('pp', 1), cp = n('cp', 1), ep = n('ep', 1);
  const dp = lo['dp'] === undefined ? chips / (tp * pp * cp) : Number(lo['dp']); // Megatron-Core: ep folded inside dp * cp
  const layout: Layout = {
    tp, pp, dp, cp, ep, vpp: n('vpp', 1),
    sequenceParallel: Boolean(lo['sequenceParallel'] ?? false),
    zero: n('zero', 0) as Layout['zero'],
    microBatch: n('microBatch', 1),
    globalBatch: n('globalBatch', dp),
    recompute: String(lo['recompute'] ?? 'none') as Recompute,
    attention: String(lo['attention'] ?? 'standard') as AttentionKernel,
  };
  const cl = (o['cluster'] ?? {}) as Record<string, unknown>;
  return {
    model, chip, chips, layout, cluster: clusterParams(cl, `${origin}: cluster`),
    tokens: o['tokens'] === undefined ? undefined : Number(o['tokens']),
  };
}
