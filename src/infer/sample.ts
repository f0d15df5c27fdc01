// Choosing the next token from logits: greedy (temperature 0: the arg max, ties to the lowest id),
// or sampling at a temperature from the top-k most likely tokens and/or the smallest set whose
// probability reaches top-p (nucleus), drawn with a seeded Philox stream so output is reproducible.
import { Rng } from '../train/rng-state.js';

export interface SamplingOptions {
  /** 0: greedy; otherwise logits are divided by it before the softmax */
  temperature: number;
  /** keep the k most likely tokens (0: all) */
  topK?: number;
  /** keep the most likely tokens until their probability reaches p (1: all) */
  topP?: number;
}

export function validateSampling(o: SamplingOptions): void {
  if (!Number.isFinite(o.temperature) || o.temperature < 0) throw new RangeError(`temperature must be a number >= 0, got ${o.temperature}`);
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 0)) throw new RangeError(`top-k must be a whole number >= 0, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new RangeError(`top-p must be in (0, 1], got ${o.topP}`);
}

/** Index of the largest value (the first one on ties). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/**
 * The candidate tokens and their probabilities after temperature, top-k and top-p, most likely
 * first (ties to the lower id), renormalised to sum to 1. Computed in float64.
 */
export function candidates(logits: ArrayLike<number>, o: SamplingOptions): { ids: number[]; probs: number[] } {
  const n = logits.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const k = o.topK && o.topK > 0 ? Math.min(o.topK, n) : n;
  const ids = order.slice(0, k);
  const max = logits[ids[0]!]!;
  let probs = ids.map((i) => Math.exp((logits[i]! - max) / o.temperature));
  let z = probs.reduce((s, p) => s + p, 0);
  probs = probs.map((p) => p / z);
  const p = o.topP ?? 1;
  if (p < 1) {
    let cum = 0, keep = 0;
    while (keep < probs.length && cum < p) cum += probs[keep++]!;
    ids.length = keep;
    probs = probs.slice(0, keep);
    z = probs.reduce((s, q) => s + q, 0);
    probs = probs.map((q) => q / z);
  }
  return { ids, probs };
}

/** The next token id: greedy when temperature is 0, else a draw from the candidates. */
export function sampleToken(logits: ArrayLike<number>, o: SamplingOptions, rng: Rng): number {
  if (o.temperature === 0) return argmax(logits);
  const { ids, probs } = candidates(logits, o);
  const u = rng.uniform(1)[0]!;
  let cum = 0;
  for (let i = 0; i < ids.length; i++) {
    cum += probs[i]!;
    if (u < cum) return ids[i]!;
  }
  return ids[ids.length - 1]!;
}
