// The published training runs the cost model is calibrated and checked on (reference/published-runs.md):
// Narayanan et al. 2021 Table 1 (10 runs) and Korthikanti et al. 2022 (4 runs), all on A100-80GB.
import type { ResolvedChip } from './hardware.js';
import { catalogChip, resolveChip } from './hardware.js';
import type { Layout } from './layout.js';
import { modelFromJson, type PlanModel } from './model.js';

export interface PublishedRun {
  id: string;
  paper: 'narayanan2021' | 'korthikanti2022';
  params: string;
  layers: number;
  hidden: number;
  heads: number;
  gpus: number;
  tp: number;
  pp: number;
  dp: number;
  globalBatch: number;
  microBatch: number;
  recompute: 'full' | 'selective';
  sequenceParallel: boolean;
  /** published (or derived from the published) seconds per iteration */
  stepTimeS: number;
  /** published model-FLOPs utilisation (derived for Narayanan) */
  mfu: number;
}

const nar = (params: string, layers: number, hidden: number, heads: number, gpus: number, tp: number, pp: number, dp: number, globalBatch: number, stepTimeS: number, mfu: number): PublishedRun => ({
  id: `narayanan-${params}`, paper: 'narayanan2021', params, layers, hidden, heads, gpus, tp, pp, dp, globalBatch,
  microBatch: 1, recompute: 'full', sequenceParallel: false, stepTimeS, mfu,
});

const kor = (params: string, layers: number, hidden: number, heads: number, gpus: number, tp: number, pp: number, globalBatch: number, microBatch: number, stepTimeS: number, mfu: number): PublishedRun => ({
  id: `korthikanti-${params}`, paper: 'korthikanti2022', params, layers, hidden, heads, gpus, tp, pp, dp: 1, globalBatch,
  microBatch, recompute: 'selective', sequenceParallel: true, stepTimeS, mfu,
});

/**
 * Narayanan's table gives no micro-batch size; we use 1 for every run (as Korthikanti did), a single rule,
 * not a per-run choice.
 */
export const PUBLISHED_RUNS: readonly PublishedRun[] = [
  nar('1.7B', 24, 2304, 24, 32, 1, 1, 32, 512, 3.53, 0.335),
  nar('3.6B', 30, 3072, 32, 64, 2, 1, 32, 512, 3.70, 0.335),
  nar('7.5B', 36, 4096, 32, 128, 4, 1, 32, 512, 3.70, 0.344),
  nar('18.4B', 40, 6144, 48, 256, 8, 1, 32, 1024, 9.40, 0.326),
  nar('39.1B', 48, 8192, 64, 512, 8, 2, 32, 1536, 14.45, 0.333),
  nar('76.1B', 60, 10240, 80, 1024, 8, 4, 32, 1792, 16.06, 0.337),
  nar('145.6B', 80, 12288, 96, 1536, 8, 8, 24, 2304, 24.82, 0.356),
  nar('310.1B', 96, 16384, 128, 1920, 8, 16, 15, 2160, 37.61, 0.373),
  nar('529.6B', 105, 20480, 128, 2520, 8, 35, 9, 2520, 54.08, 0.392),
  nar('1008B', 128, 25600, 160, 3072, 8, 64, 6, 3072, 102.6, 0.392),
  kor('22B', 48, 6144, 64, 8, 8, 1, 4, 4, 1.10, 0.415),
  kor('175B', 96, 12288, 96, 64, 8, 8, 64, 1, 13.75, 0.514),
  kor('530B', 105, 20480, 128, 280, 8, 35, 280, 1, 37.83, 0.560),
  kor('1T', 128, 25600, 160, 512, 8, 64, 512, 1, 71.49, 0.563),
];

/** The GPT model of a run: FFN 4h GELU, vocab 51,200, seq 2048, tied embeddings, dropout. */
export function runModel(r: PublishedRun): PlanModel {
  return modelFromJson({
    name: `gpt-${r.params}`, layers: r.layers, hidden: r.hidden, heads: r.heads, ffnHidden: 4 * r.hidden, ffnKind: 'gelu',
    vocab: 51200, seqLen: 2048, tiedEmbeddings: true, dropout: true,
  });
}

export function runLayout(r: PublishedRun): Layout {
  return {
    tp: r.tp, pp: r.pp, dp: r.dp, cp: 1, ep: 1, vpp: 1, sequenceParallel: r.sequenceParallel, zero: 0,
    microBatch: r.microBatch, globalBatch: r.globalBatch, recompute: r.recompute, attention: 'standard',
  };
}

export function runChip(): ResolvedChip {
  return resolveChip(catalogChip('a100-sxm-80gb'));
}
