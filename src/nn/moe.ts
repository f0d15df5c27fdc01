// Mixture-of-Experts feed-forward: a softmax router picks the top-k experts per token (dropless:
// every routed token is computed, no capacity limit), gates are the renormalised router
// probabilities, shared experts see every token. Load balancing by the Switch/GShard auxiliary
// loss, or by DeepSeek-V3's bias method (a per-expert bias that steers selection only, nudged after
// each step toward equal loads). Routing reads the router probabilities on the host.
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

/** x [N, d] → [N, d] */
export function moe(ps: ParameterStore, c: ModelConfig, prefix: string, x: Tensor, dtype: ComputeDtype, bias: Float64Array | null): MoeOutput {
  const m = c.moe!;
  const N = x.shape[0]!, E = m.experts, k = m.topK;
  const backend = x.backend;
  const logits = linear(x, ps.get(`${prefix}.router.weight`), 'f32');
  const probs = T.softmax(logits, -1);
  logits.dispose();
  // temporaries are disposed once consumed (the tape keeps what backward needs)
  const tmp: Tensor[] = [];
  const t = <X extends Tensor>(x: X) => (tmp.push(x), x);
  const host = backend.name === 'meta' ? null : (probs.dataSync() as Float32Array);
  const r = route(host, N, m, m.balance === 'bias' ? bias : null);

  // gates: the chosen probabilities, renormalised over the k choices when k > 1
  const flatIds = new Int32Array(N * k);
  for (let n = 0; n < N; n++) for (let j = 0; j < k; j++) flatIds[n * k + j] = n * E + r.experts[n * k + j]!;
  const picked = t(T.reshape(t(T.embedding(t(T.reshape(probs, [N * E, 1])), t(T.tensor(backend, flatIds)))), [N, k]));
  const gates = k > 1 ? t(T.div(picked, t(T.sum(picked, -1, true)))) : picked;
  const gatesFlat = t(T.reshape(gates, [N * k, 1]));

  // dispatch: each expert computes its tokens; results are weighted and scattered back
  const parts: Tensor[] = [];
  const rows: number[] = [];
  for (let e = 0; e < E; e++) {
    if (r.loads[e] === 0) continue;
    const tok = new Int32Array(r.loads[e]!), slot = new Int32Array(r.loads[e]!);
    let i = 0;
    for (let s = 0; s < N * k; s++)
      if (r.experts[s] === e) {
        tok[i] = Math.floor(s / k);
        slot[i++] = s;
      }
    const xe = t(T.embedding(x, t(T.tensor(backend, tok))));
    const ye = t(mlp(ps, c, `${prefix}.experts.${e}`, xe, dtype));
    const ge = t(T.embedding(gatesFlat, t(T.tensor(backend, slot))));
    parts.push(t(T.mul(ye, ge)));
    for (const t of tok) rows.push(t);
  }
  const routed = parts.length === 1 ? parts[0]! : t(T.concat(parts, 0));
  let y = T.scatterAddRows(routed, t(T.tensor(backend, Int32Array.from(rows))), N);
  for (let s = 0; s < m.sharedExperts; s++) {
    const prev = y;
    y = T.add(prev, t(mlp(ps, c, `${prefix}.shared.${s}`, x, dtype)));
    prev.dispose();
  }

  let aux: Tensor | null = null;
  if (m.balance === 'aux-loss' && m.auxLossCoef > 0) {
    // Switch Transformer: E · Σ_e f_e · P_e, f = fraction of routed slots, P = mean probability
    const f = Float32Array.from(r.loads, (l) => l / (N * k));
    const P = t(T.mean(probs, 0));
    aux = T.mulScalar(t(T.sum(t(T.mul(P, t(T.tensor(backend, f)))))), E * m.auxLossCoef);
  }
  probs.dispose();
  for (const x of tmp) x.dispose();
  return { y, aux, loads: r.loads };
}

/** DeepSeek-V3 bias update: raise the bias of under-loaded experts, lower over-loaded ones. */
export function updateBias(bias: Float64Array, loads: readonly number[], rate: number): void {
  const mean = loads.reduce((a, b) => a + b, 0) / loads.length;
  for (let e = 0; e < bias.length; e++) bias[e] = bias[e]! + rate * Math.sign(mean - loads[e]!);
}
