// MoE token dispatch and combine under expert parallelism (GShard / Megatron-Core's all-to-all token
// dispatcher): the ep ranks of a group each hold experts/ep consecutive experts of every MoE layer.
// A rank's routed rows, already in expert order (moe.ts routeMoe), go to the ranks holding their
// experts with one all-to-all; there they are regrouped by local expert, run through the experts'
// FFNs, put back in arrival order and returned with a second all-to-all, in the order they left.
// Dropless: every row travels (the all-to-all sizes come from the actual loads, exchanged first as
// counts). Both all-to-alls are differentiable: the backward of each is the reverse all-to-all.
import { gradEnabled, record } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Communicator } from './communicator.js';
import type { ModelConfig } from '../nn/config.js';
import type { ComputeDtype } from '../nn/linear.js';
import type { ParameterStore } from '../nn/parameters.js';
import { expertOf, runExperts } from '../nn/moe.js';

/** Rows [n, d] of x sent in blocks of sendRows[q] rows to rank q; returns the rows received, blocks of recvRows[q] from rank q. Backward: the reverse exchange. */
export async function allToAllRows(x: Tensor, sendRows: readonly number[], recvRows: readonly number[], comm: Communicator): Promise<Tensor> {
  const d = x.shape[1]!;
  const rows = (r: readonly number[]) => r.reduce((a, b) => a + b, 0);
  if (x.rank !== 2 || x.shape[0] !== rows(sendRows))
    throw new RangeError(`allToAllRows on '${comm.name}': input [${x.shape.join(', ')}] must be [${rows(sendRows)}, dim] (the rows sent)`);
  const out = T.empty(x.backend, [rows(recvRows), d], x.dtype);
  await comm.allToAllV(x, sendRows.map((r) => r * d), out, recvRows.map((r) => r * d));
  if (gradEnabled() && x.requiresGrad)
    record(out, `allToAll(${comm.name})`, [x], [], async (g) => {
      const gx = T.empty(x.backend, x.shape, x.dtype);
      await comm.allToAllV(g, recvRows.map((r) => r * d), gx, sendRows.map((r) => r * d));
      return [gx];
    });
  return out;
}

/** One layer's exchange, as the dispatch sized it: rows per peer and where each arrived row goes. */
export interface DispatchPlan {
  sendRows: number[];
  recvRows: number[];
  /** rows per local expert, in local expert order */
  counts: number[];
  /** i32 [received]: row i of the expert-ordered input is arrived row order[i] */
  order: Tensor;
}

/** Experts [first, first + count) of every MoE layer live on this rank of the ep group. */
export class ExpertDispatcher {
  readonly first: number;
  readonly count: number;

  constructor(
    readonly comm: Communicator,
    readonly experts: number,
  ) {
    if (experts % comm.size !== 0) throw new RangeError(`--ep ${comm.size} must divide the ${experts} experts of each MoE layer`);
    this.count = experts / comm.size;
    this.first = comm.rank * this.count;
  }

  /** Global ids of this rank's experts. */
  get local(): number[] {
    return Array.from({ length: this.count }, (_, i) => this.first + i);
  }

  /**
   * rows [Σ loads, d] in expert order with loads[e] rows for expert e (all experts) → this rank's
   * experts' input, grouped by local expert (plan.counts rows each).
   */
  async dispatch(rows: Tensor, loads: readonly number[]): Promise<{ x: Tensor; plan: DispatchPlan }> {
    const P = this.comm.size, El = this.count;
    if (loads.length !== this.experts) throw new RangeError(`dispatch: ${loads.length} expert loads, the layer has ${this.experts} experts`);
    // the count exchange: rank q learns how many rows each of its experts gets from every rank
    const mine = Int32Array.from(loads);
    const theirs = new Int32Array(P * El);
    const per = new Array<number>(P).fill(El);
    await this.comm.allToAllV(mine, per, theirs, per);
    // (a dry run's shape-only communicator answers as symmetric peers: shape-communicator.ts)
    const sendRows = Array.from({ length: P }, (_, q) => loads.slice(q * El, (q + 1) * El).reduce((a, b) => a + b, 0));
    const recvRows = Array.from({ length: P }, (_, q) => theirs.subarray(q * El, (q + 1) * El).reduce((a, b) => a + b, 0));
    const arrived = await allToAllRows(rows, sendRows, recvRows, this.comm);
    // arrived rows come by sender, each sender's in expert order: regroup them by local expert
    const counts = new Array<number>(El).fill(0);
    const order = new Int32Array(arrived.shape[0]!);
    const senderStart: number[] = [];
    for (let q = 0, at = 0; q < P; at += recvRows[q]!, q++) senderStart.push(at);
    let i = 0;
    for (let e = 0; e < El; e++)
      for (let q = 0; q < P; q++) {
        const before = theirs.subarray(q * El, q * El + e).reduce((a, b) => a + b, 0);
        const n = theirs[q * El + e]!;
        for (let j = 0; j < n; j++) order[i++] = senderStart[q]! + before + j;
        counts[e]! += n;
      }
    const orderT = T.tensor(rows.backend, order);
    const x = T.embedding(arrived, orderT);
    arrived.dispose();
    return { x, plan: { sendRows, recvRows, counts, order: orderT } };
  }

  /** The experts' output (grouped as dispatch gave it) back to the ranks the rows came from, in the order they were sent. */
  async combine(y: Tensor, plan: DispatchPlan): Promise<Tensor> {
    const back = T.scatterAddRows(y, plan.order, plan.order.shape[0]!);
    plan.order.dispose();
    const out = await allToAllRows(back, plan.recvRows, plan.sendRows, this.comm);
    back.dispose();
    return out;
  }
}

/** Frees, from a model's parameters, the routed experts of every MoE layer that `d`'s rank does not hold. */
export function dropOtherExperts(params: ParameterStore, d: ExpertDispatcher): void {
  for (const [name, t] of [...params.tensors]) {
    const e = expertOf(name);
    if (e === null || (e >= d.first && e < d.first + d.count)) continue;
    t.dispose();
    params.tensors.delete(name);
  }
}

/**
 * Runs the routed experts of an MoE layer on its expert-ordered rows (`loads` rows per expert, every
 * expert) and returns their outputs in the same order: all experts local, or dispatched to the ranks
 * holding them and combined back (`dispatchedExperts`).
 */
export type ExpertRunner = (prefix: string, rows: Tensor, loads: readonly number[]) => Promise<Tensor>;

/** The routed experts over `d`'s ep group: rows sent to the ranks holding their experts, run there, combined back in the same order. */
export function dispatchedExperts(ps: ParameterStore, c: ModelConfig, dtype: ComputeDtype, d: ExpertDispatcher): ExpertRunner {
  return async (prefix, rows, loads) => {
    const { x: xe, plan } = await d.dispatch(rows, loads);
    const ye = runExperts(ps, c, prefix, xe, d.local, plan.counts, dtype);
    xe.dispose();
    const routed = await d.combine(ye, plan);
    ye.dispose();
    return routed;
  };
}
