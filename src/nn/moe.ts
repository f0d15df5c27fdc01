// Mixture-of-Experts feed-forward: a softmax router picks the top-k experts per token (dropless:
// every routed token is computed, no capacity limit), gates are the renormalised router
// probabilities, shared experts see every token. Load balancing by the Switch/GShard auxiliary
// loss, or by DeepSeek-V3's bias method (a per-expert bias that steers selection only, nudged after
// each step toward equal loads).
//
// The layer runs in three phases so that one implementation serves every layout: `routeMoe` (router,
// top-k on the host copy of the probabilities, the routed rows gathered in expert order),
// `runExperts` (each expert's FFN on its contiguous rows) and `combineMoe` (gate weighting, scatter
// back to the tokens, shared experts, balancing loss). Between them sits the dispatch strategy: on
// one process the expert-ordered rows are the experts' input as they are (`moe` below, synchronous,
// reading the probabilities with dataSync); under expert parallelism they travel to the ranks holding
// their experts and back by two all-to-alls (src/dist/expert-parallel.ts, which reads the
// probabilities with an asynchronous read and so also runs on asynchronous backends).
import type { ModelConfig, MoEConfig } from './config.js';
import { type ComputeDtype, linear } from './linear.js';
import { createMlpParams, mlp } from './mlp.js';
import type { ParameterStore } from './parameters.js';
import * as T from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';

export function createMoeParams(ps: ParameterStore, c: ModelConfig, prefix: string): void {
  const m = c.moe!;
  ps.create(`${prefix}.router.weight`, [m.experts, c.dModel], { kind: 'normal', std: 0.02 });
  for (let e = 0; e < m.experts; e++) createMlpParams(ps, c, `${prefix}.experts.${e}`, m.expertFfnHidden);
  for (let s = 0; s < m.sharedExperts; s++) createMlpParams(ps, c, `${prefix}.shared.${s}`, m.expertFfnHidden);
}

/** The routed expert of a parameter name (`...feed_forward.experts.<e>....`), or null for any other parameter. */
export function expertOf(name: string): number | null {
  const m = /\.feed_forward\.experts\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}

export interface Routing {
  /** expert of choice j of token n at [n * topK + j] */
  experts: Int32Array;
  /** tokens sent to each expert */
  loads: number[];
}

/** Top-k selection on host scores (probabilities plus the balancing bias); ties go to the lower index. */
export function route(probs: Float32Array | null, tokens: number, m: MoEConfig, bias: Float64Array | null): Routing {
  const { experts: E, topK: k } = m;
  const out = new Int32Array(tokens * k);
  const loads = new Array<number>(E).fill(0);
  const score = new Float64Array(E);
  for (let n = 0; n < tokens; n++) {
    if (!probs) {
      // no data (meta backend): a perfectly balanced assignment, as the planner assumes
      for (let j = 0; j < k; j++) out[n * k + j] = (n * k + j) % E;
    } else {
      for (let e = 0; e < E; e++) score[e] = probs[n * E + e]! + (bias ? bias[e]! : 0);
      for (let j = 0; j < k; j++) {
        let best = -1;
        for (let e = 0; e < E; e++) if (score[e]! > -Infinity && (best < 0 || score[e]! > score[best]!)) best = e;
        out[n * k + j] = best;
        score[best] = -Infinity;
      }
    }
    for (let j = 0; j < k; j++) loads[out[n * k + j]!]!++;
  }
  return { experts: out, loads };
}

export interface MoeOutput {
  y: Tensor;
  /** auxiliary balancing loss (aux-loss mode), already scaled by auxLossCoef */
  aux: Tensor | null;
  loads: number[];
}

/** A routed MoE layer between its phases: the routed rows in expert order, and what combining needs. */
export interface RoutedMoe {
  /** [N·k, d]: the input row of every (token, choice), ordered by expert, then by token */
  rows: Tensor;
  /** rows per expert (all E experts), in expert order */
  loads: number[];
  /** the token of each row of `rows` */
  tokens: Int32Array;
  /** [N·k, 1]: the gate of each row of `rows` */
  gates: Tensor;
  /** router probabilities [N, E] (the balancing loss reads them) */
  probs: Tensor;
  /** intermediates, disposed by combineMoe */
  temps: Tensor[];
}

/** The router's probabilities [N, E] (f32) of x [N, d]. */
export function routerProbs(ps: ParameterStore, prefix: string, x: Tensor): Tensor {
  const logits = linear(x, ps.get(`${prefix}.router.weight`), 'f32');
  const probs = T.softmax(logits, -1);
  logits.dispose();
  return probs;
}

/**
 * Routing from the host copy of the probabilities (null on the meta backend): each token's top-k
 * experts, their renormalised gates, and the routed rows of x gathered in expert order.
 */
export function routeMoe(c: ModelConfig, x: Tensor, probs: Tensor, host: Float32Array | null, bias: Float64Array | null): RoutedMoe {
  const m = c.moe!;
  const N = x.shape[0]!, E = m.experts, k = m.topK;
  const backend = x.backend;
  const temps: Tensor[] = [];
  const t = <X extends Tensor>(x: X) => (temps.push(x), x);
  const r = route(host, N, m, m.balance === 'bias' ? bias : null);
  // gates: the chosen probabilities, renormalised over the k choices when k > 1
  const flatIds = new Int32Array(N * k);
  for (let n = 0; n < N; n++) for (let j = 0; j < k; j++) flatIds[n * k + j] = n * E + r.experts[n * k + j]!;
  const picked = t(T.reshape(t(T.embedding(t(T.reshape(probs, [N * E, 1])), t(T.tensor(backend, flatIds)))), [N, k]));
  const gates = k > 1 ? t(T.div(picked, t(T.sum(picked, -1, true)))) : picked;
  const gatesFlat = t(T.reshape(gates, [N * k, 1]));
  // (token, choice) slots in expert order (a counting sort: tokens ascending within an expert)
  const start = new Int32Array(E + 1);
  for (let e = 0; e < E; e++) start[e + 1] = start[e]! + r.loads[e]!;
  const fill = start.slice(0, E);
  const slots = new Int32Array(N * k), tokens = new Int32Array(N * k);
  for (let s = 0; s < N * k; s++) {
    const at = fill[r.experts[s]!]!++;
    slots[at] = s;
    tokens[at] = Math.floor(s / k);
  }
  const rows = t(T.embedding(x, t(T.tensor(backend, tokens))));
  const sortedGates = t(T.embedding(gatesFlat, t(T.tensor(backend, slots))));
  return { rows, loads: r.loads, tokens, gates: sortedGates, probs, temps };
}

/**
 * The FFNs of experts `experts` (global ids) on `rows`: counts[i] consecutive rows for experts[i].
 * Returns [Σ counts, d] in the same order; experts with no rows are not run (their weights get no gradient).
 */
export function runExperts(ps: ParameterStore, c: ModelConfig, prefix: string, rows: Tensor, experts: readonly number[], counts: readonly number[], dtype: ComputeDtype): Tensor {
  const parts: Tensor[] = [];
  let at = 0;
  experts.forEach((e, i) => {
    const n = counts[i]!;
    if (n === 0) return;
    const xe = rows.shape[0] === n ? rows : T.slice(rows, 0, at, at + n);
    parts.push(mlp(ps, c, `${prefix}.experts.${e}`, xe, dtype));
    if (xe !== rows) xe.dispose();
    at += n;
  });
  // no rows at all: an empty result that still depends on the input (so its backward runs on every rank)
  if (parts.length === 0) return T.mulScalar(rows, 0);
  if (parts.length === 1) return parts[0]!;
  const y = T.concat(parts, 0);
  for (const p of parts) p.dispose();
  return y;
}

/**
 * Weights each routed output row (in `routed`'s expert order) by its gate, sums into the tokens, adds
 * shared experts and the balancing loss. `fraction`: the routed fraction of each expert the balancing
 * loss uses (default: this call's loads / slots; context parallelism passes the whole rows').
 */
export function combineMoe(ps: ParameterStore, c: ModelConfig, prefix: string, x: Tensor, r: RoutedMoe, routed: Tensor, dtype: ComputeDtype, fraction?: Float32Array): MoeOutput {
  const m = c.moe!;
  const N = x.shape[0]!, E = m.experts, k = m.topK;
  const backend = x.backend;
  const t = <X extends Tensor>(x: X) => (r.temps.push(x), x);
  let y = T.scatterAddRows(t(T.mul(routed, r.gates)), t(T.tensor(backend, r.tokens)), N);
  for (let s = 0; s < m.sharedExperts; s++) {
    const prev = y;
    y = T.add(prev, t(mlp(ps, c, `${prefix}.shared.${s}`, x, dtype)));
    prev.dispose();
  }
  let aux: Tensor | null = null;
  if (m.balance === 'aux-loss' && m.auxLossCoef > 0) {
    // Switch Transformer: E · Σ_e f_e · P_e, f = fraction of routed slots, P = mean probability
    const f = fraction ?? Float32Array.from(r.loads, (l) => l / (N * k));
    const P = t(T.mean(r.probs, 0));
    aux = T.mulScalar(t(T.sum(t(T.mul(P, t(T.tensor(backend, f)))))), E * m.auxLossCoef);
  }
  // temporaries are disposed once consumed (the tape keeps what backward needs)
  r.probs.dispose();
  for (const x of r.temps) x.dispose();
  return { y, aux, loads: r.loads };
}

/** x [N, d] → [N, d], on one process: every expert is local, the routed rows are its input as they are. */
export function moe(ps: ParameterStore, c: ModelConfig, prefix: string, x: Tensor, dtype: ComputeDtype, bias: Float64Array | null): MoeOutput {
  const probs = routerProbs(ps, prefix, x);
  const host = x.backend.name === 'meta' ? null : (probs.dataSync() as Float32Array);
  const r = routeMoe(c, x, probs, host, bias);
  const all = Array.from({ length: c.moe!.experts }, (_, e) => e);
  const y = runExperts(ps, c, prefix, r.rows, all, r.loads, dtype);
  const out = combineMoe(ps, c, prefix, x, r, y, dtype);
  y.dispose();
  return out;
}

/** Adds each MoE layer's expert loads of `from` (a forward's) into `into` (a step's running sums). */
export function addLoads(into: Map<number, number[]>, from: ReadonlyMap<number, readonly number[]>): void {
  for (const [layer, l] of from) {
    const acc = into.get(layer);
    if (acc) for (let e = 0; e < l.length; e++) acc[e]! += l[e]!;
    else into.set(layer, [...l]);
  }
}

/** DeepSeek-V3 bias update: raise the bias of under-loaded experts, lower over-loaded ones. */
export function updateBias(bias: Float64Array, loads: readonly number[], rate: number): void {
  const mean = loads.reduce((a, b) => a + b, 0) / loads.length;
  for (let e = 0; e < bias.length; e++) bias[e] = bias[e]! + rate * Math.sign(mean - loads[e]!);
}
