// What a run's metrics.jsonl holds, as the observers (TensorBoard sink, dashboard) read it: step
// lines (src/train/metrics.ts: step, loss, lr, tokensPerSec, and optional gradNorm, mfu, valLoss,
// rssBytes, aux, elapsedS, tokens, rankStepS: per-rank step seconds indexed by rank, rankWaitS: per-rank
// seconds waited in the step, rankPeakBytes: per-rank peak bytes allocated) and event
// lines `{"event": "restart" | "skip" | ..., "step": N, ...}` that mark what happened at a step.
import type { StepMetrics } from '../train/metrics.js';

export interface RunEvent {
  /** what happened: 'restart' (resumed from a checkpoint at `step`), 'skip' (steps skipped), 'checkpoint', ... */
  event: string;
  step: number;
  /** how many (e.g. skipped steps); 1 when absent */
  count?: number;
  [field: string]: unknown;
}

/** Receives a run's records as they are produced. */
export interface MetricsSink {
  step(record: StepMetrics): void;
  event(e: RunEvent): void;
  close(): void;
}

/** Plot names of the known step fields: [TensorBoard tag, scale to the plotted unit]. */
export const KNOWN_FIELDS: Record<string, readonly [string, number]> = {
  loss: ['loss/train', 1],
  valLoss: ['loss/val', 1],
  lr: ['optim/lr', 1],
  gradNorm: ['optim/grad_norm', 1],
  tokensPerSec: ['throughput/tokens_per_s', 1],
  mfu: ['throughput/mfu', 1],
  rssBytes: ['memory/rss_gib', 1 / 2 ** 30],
  aux: ['moe/aux_loss', 1],
  elapsedS: ['progress/elapsed_s', 1],
  tokens: ['progress/tokens', 1],
};

/** Per-rank arrays in step lines: field -> TensorBoard tag prefix. */
export const RANK_FIELDS: Record<string, string> = { rankStepS: 'time/rank_step_s', rankWaitS: 'time/rank_wait_s', rankPeakBytes: 'memory/rank_peak_bytes' };

export function isRunEvent(r: unknown): r is RunEvent {
  return typeof r === 'object' && r !== null && typeof (r as RunEvent).event === 'string' && typeof (r as RunEvent).step === 'number';
}

/** The median of numbers (NaN for none). */
export function median(xs: readonly number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * The scalars of one step line, as (tag, value): the known fields under their tags, per-rank
 * arrays as one tag per rank plus the slowest rank's time over the median (stragglers show as
 * values well above 1), any other finite number under `metrics/<field>`.
 */
export function stepScalars(r: StepMetrics): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (const [k, v] of Object.entries(r)) {
    if (k === 'step') continue;
    const known = KNOWN_FIELDS[k];
    if (known && typeof v === 'number' && Number.isFinite(v)) out.push([known[0], v * known[1]]);
    else if (RANK_FIELDS[k] && Array.isArray(v)) {
      const xs = v.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
      if (xs.length !== v.length || !xs.length) continue;
      const width = Math.max(2, String(xs.length - 1).length);
      xs.forEach((x, rank) => out.push([`${RANK_FIELDS[k]}/rank${String(rank).padStart(width, '0')}`, x]));
      out.push([`${RANK_FIELDS[k]}_slowest_over_median`, Math.max(...xs) / median(xs)]);
    } else if (!known && typeof v === 'number' && Number.isFinite(v)) out.push([`metrics/${k}`, v]);
  }
  return out;
}
