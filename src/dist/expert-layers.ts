// The expert side of the pipeline executor (pipeline-parallel.ts): MoE layers with their routed
// experts spread over the ep group of the expert grid (mesh-layout.ts, etp-ep-edp-pp with etp 1:
// expert parallelism folds inside tp·cp·dp), composed with tensor, pipeline and data parallelism.
//   Parameters: the stage keeps experts/ep consecutive experts of each of its MoE layers (ep rank q:
//     [q·E/ep, (q+1)·E/ep)), whole (expert tensor parallel 1); router and shared experts are whole on
//     every tp rank (tensor-parallel-plan.ts kinds 'expert' and 'moe-replicate').
//   Forward (Megatron-style MoE under tp): each tp rank runs the MoE layer on its N/tp tokens of the
//     micro-batch — with --sp those it already holds; without, the replicated input split forward
//     (all-gathered in backward) and the output all-gathered forward (split in backward), token-split.ts
//     — dispatched to the experts' ranks by the all-to-all dispatcher (expert-dispatch.ts). The
//     balancing loss is the micro-batch's: loads and probability sums added over tp (expert-parallel.ts).
//   Gradients: router and shared experts summed over tp (each rank saw its own tokens); dense
//     parameters over the dense replicas (dp·cp), experts over edp (the replicas of the same experts);
//     ZeRO-1 reduce-scatters each over its own group (zero-one.ts, `replicaGroupOf`).
//   Norm: experts' squares are summed over ep (and edp under ZeRO-1: its chunks), then over pp — each
//     expert once; the caller leaves them and the tp-replicated router/shared weights of tp ranks > 0
//     out of the dense squares.
//   Checkpoint: each expert (and its moments) is written whole by the rank holding it in the first
//     expert-data-parallel replica of its stage.
import { isMoeLayer } from '../nn/config.js';
import { expertOf } from '../nn/moe.js';
import type { Transformer } from '../nn/transformer.js';
import type { AdamW } from '../optim/adamw.js';
import { backwardAsync } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import { recompute } from '../tensor/recompute.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Communicator } from './communicator.js';
import { dispatchedExperts, dropOtherExperts, ExpertDispatcher, type ExpertRunner } from './expert-dispatch.js';
import { moeExpertParallel } from './expert-parallel.js';
import type { ChunkCompute } from './pipeline-compute.js';
import { reduceGradsOverReplicas } from './replica-grads.js';
import type { TensorParallel } from './tensor-parallel.js';
import { shardKindOf } from './tensor-parallel-plan.js';
import { gatherSplitBack, splitToGroup } from './token-split.js';

export interface ExpertGroups {
  /** the expert grid's ep group: the ranks the dispatcher exchanges tokens with */
  ep: Communicator;
  /** the replicas of this rank's experts: where their gradients are summed */
  edp: Communicator;
  /** ranks of one pipeline stage (tp·cp·dp): world rank of (ep q, edp 0, stage s) is q + stageRanks·s */
  stageRanks: number;
}

/** Whether a parameter is a routed expert's (held by one ep rank, reduced over edp). */
export const isExpertParam = (name: string): boolean => expertOf(name) !== null;

/** The group a parameter's gradient is summed over: edp for experts, the dense replicas otherwise. */
export function replicaGroupOf(dense: Communicator, edp: Communicator): (name: string) => Communicator {
  return (name) => (isExpertParam(name) ? edp : dense);
}

export class ExpertLayers {
  readonly dispatcher: ExpertDispatcher;

  /** Drops the routed experts this rank does not hold (of the layers the stage kept). */
  constructor(
    readonly model: Transformer,
    readonly groups: ExpertGroups,
  ) {
    this.dispatcher = new ExpertDispatcher(groups.ep, model.config.moe!.experts);
    dropOtherExperts(model.params, this.dispatcher);
  }

  /**
   * `base` (a stage's whole layers or tp shards) with its MoE layers run over the ep group; dense
   * layers as base runs them. Asynchronous (the dispatch awaits its all-to-alls).
   */
  compute(base: ChunkCompute, tp: TensorParallel | null): ChunkCompute {
    const model = this.model, c = model.config, ps = model.params;
    const split = tp && tp.comm.size > 1 ? tp.comm : null;
    const spread = split && !tp!.sequenceParallel ? split : null;
    const moeLayer = async (x: Tensor, i: number, B: number, S: number): Promise<{ x: Tensor; aux: Tensor | null }> => {
      const attn = (h0: Tensor) => model.attentionResidual(h0, i, B, S);
      const h = tp ? await tp.attentionResidual(x, i, B, S) : model.recomputeMode === 'full' ? recompute(attn, x) : attn(x);
      const n = T.rmsnorm(h, ps.get(`layers.${i}.ffn_norm.weight`), c.normEps);
      const mine = spread ? splitToGroup(n, spread) : n;
      const r = await moeExpertParallel(ps, c, `layers.${i}.feed_forward`, mine, model.dtype, model.routerBias.get(i) ?? null, this.dispatcher, split);
      model.lastLoads.set(i, r.loads);
      const y = spread ? await gatherSplitBack(r.y, spread) : r.y;
      const next = T.add(h, y);
      for (const t of new Set([x, h, n, mine, r.y, y])) t.dispose();
      return { x: next, aux: r.aux };
    };
    return {
      ...base,
      sync: false,
      layers: async (x, lo, hi, B, S) => {
        let aux: Tensor | null = null;
        for (let i = lo; i < hi; i++) {
          if (isMoeLayer(c, i)) {
            const r = await moeLayer(x, i, B, S);
            x = r.x;
            if (r.aux) aux = aux ? T.add(aux, r.aux) : r.aux;
          } else x = tp ? await tp.layers(x, i, i + 1, B, S) : model.forwardLayers(x, i, i + 1, B, S).x;
        }
        return { x, aux };
      },
      backward: (root, grad) => backwardAsync(root, grad),
    };
  }

  /** The routed experts of an MoE layer over the ep group, for context parallelism's MoE layers (context-parallel-compute.ts). */
  runner(): ExpertRunner {
    return dispatchedExperts(this.model.params, this.model.config, this.model.dtype, this.dispatcher);
  }

  /** Router and shared experts: each tp rank's gradient came from its own tokens; summed over tp (collective over `tp`). */
  async reduceSplitTokenGrads(tp: Communicator): Promise<void> {
    const shared = new Map([...this.model.params.tensors].filter(([name]) => shardKindOf(name) === 'moe-replicate'));
    await reduceGradsOverReplicas(shared, tp);
  }

  /** Without ZeRO: dense gradients summed over the dense replicas (null: none), experts' over edp. */
  async reduceOverReplicas(dense: Communicator | null): Promise<void> {
    const all = [...this.model.params.tensors];
    await Promise.all([
      dense ? reduceGradsOverReplicas(new Map(all.filter(([n]) => !isExpertParam(n))), dense) : null,
      reduceGradsOverReplicas(new Map(all.filter(([n]) => isExpertParam(n))), this.groups.edp),
    ]);
  }

  /** Parameters the dense squares of the norm leave out on this tp rank: experts (counted by expertSquares), and tp-replicated MoE weights on tp ranks > 0. */
  outOfDenseNorm(name: string, tpRank: number): boolean {
    return isExpertParam(name) || (tpRank !== 0 && shardKindOf(name) === 'moe-replicate');
  }

  /** Σ of the squares of every expert gradient of the whole model (each once): over ep, edp under ZeRO-1 (its chunks), then the pipeline `pp`. */
  async expertSquares(opt: AdamW, zeroOne: boolean, pp: Communicator): Promise<number> {
    const sq = Float32Array.of((await opt.gradNorm((n) => !isExpertParam(n))) ** 2);
    await this.groups.ep.allReduce(sq, 'sum');
    if (zeroOne) await this.groups.edp.allReduce(sq, 'sum');
    await pp.allReduce(sq, 'sum');
    return sq[0]!;
  }

  /** Whether this rank writes expert parameter `name` to a checkpoint: it holds it, in the first expert-data-parallel replica. */
  writes(name: string): boolean {
    return this.model.params.tensors.has(name) && this.groups.edp.rank === 0;
  }

  /** The world rank that writes expert parameter `name` of pipeline stage `stage`. */
  ownerRank(name: string, stage: number): number {
    return Math.floor(expertOf(name)! / this.dispatcher.count) + this.groups.stageRanks * stage;
  }
}
