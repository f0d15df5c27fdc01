// Context parallelism inside the pipeline executor (pipeline-parallel.ts): what a pipeline chunk
// computes when each rank of the cp group holds only its two load-balanced chunks of every row
// (context-parallel-layout.ts), on the stage's whole layers or on its tensor-parallel shards. The
// model's own pieces run on the rank's tokens — embedding, norms, projections, FFN, MoE, head are
// all per token — and only the attention core changes: Q/K/V (the rank's tp-local heads) are rotated
// at their global positions and attend over the whole sequence by ring attention over the cp group
// (ring-attention.ts). With --tp the block's model-parallel regions are entered and left through the
// tp ranks' collectives (tensor-parallel.ts; with --sp the rows between blocks are tokens/cp/tp).
//
// Loss: each rank's cross-entropy is the mean over its tokens weighted by its share of the rows'
// counted tokens (× cp), so the sum over the cp ranks is cp × the rows' mean. The executor treats the
// dp·cp group as its replicas (gradients summed, ZeRO-1 sharded, loss divided by dp·cp), which gives
// exactly the global-batch mean. MoE balancing loss (Switch: E·coef·Σ_e f_e·P_e) is linear in the
// mean probabilities P, so with the routed fractions f summed over cp (host numbers, no gradient) each
// rank's term E·coef·Σ_e f_e·P_e(its tokens) sums over the cp ranks to cp × one process's loss — the
// same scaling as the cross-entropy, no differentiable collective needed.
import { headDim, isMoeLayer, type ModelConfig } from '../nn/config.js';
import { attentionOutput } from '../nn/attention.js';
import { mlp } from '../nn/mlp.js';
import { runExperts } from '../nn/moe.js';
import type { Transformer } from '../nn/transformer.js';
import { backwardAsync } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Communicator } from './communicator.js';
import { loadBalancedChunks, rankTokens } from './context-parallel-layout.js';
import type { ChunkCompute } from './pipeline-compute.js';
import { ringAttention } from './ring-attention.js';
import type { ExpertRunner } from './expert-dispatch.js';
import { routedMoe } from './expert-parallel.js';
import { gatherSplitBack, splitToGroup } from './token-split.js';
import type { TensorParallel } from './tensor-parallel.js';

/** RoPE of rank `rank`'s two chunks x [B, 2c, h, D] (of a cp group of `cp`) at their global positions. */
export function rotateChunks(x: Tensor, cp: number, rank: number, theta: number): Tensor {
  const [a, b] = loadBalancedChunks(cp, rank);
  const chunk = x.shape[1]! / 2;
  const parts = [T.slice(x, 1, 0, chunk), T.slice(x, 1, chunk, 2 * chunk)];
  const rotated = [T.rope(parts[0]!, theta, a * chunk), T.rope(parts[1]!, theta, b * chunk)];
  const out = T.concat(rotated, 1);
  for (const t of [...parts, ...rotated]) t.dispose();
  return out;
}

/**
 * One rank's cross-entropy weight: its share of the counted targets (≥ 0) of the rows (every cp rank
 * holds all of them), times cp — 1 when every target counts — so that the sum over the cp ranks of
 * weight × its mean is cp × the rows' mean.
 */
export function contextLossWeight(rows: Int32Array, mine: Int32Array, cp: number): number {
  const counted = (ts: Int32Array) => ts.reduce((n, t) => n + (t >= 0 ? 1 : 0), 0);
  const all = counted(rows);
  return all > 0 ? (counted(mine) * cp) / all : 0;
}

/** Every expert on this rank: the routed rows are their input as they are. */
export function localExperts(model: Transformer): ExpertRunner {
  const all = Array.from({ length: model.config.moe?.experts ?? 0 }, (_, e) => e);
  return async (prefix, rows, loads) => runExperts(model.params, model.config, prefix, rows, all, loads, model.dtype);
}

/** How a block's model-parallel regions are entered and left: the tp ranks' collectives, or nothing. */
interface Regions {
  /** the model config as this rank's shards see it (tp-local heads) */
  local: ModelConfig;
  entered(x: Tensor, consume: (y: Tensor) => Tensor): Promise<Tensor>;
  exit(x: Tensor): Promise<Tensor>;
}

function regionsOf(model: Transformer, tp: TensorParallel | null): Regions {
  if (tp) return { local: tp.local, entered: (x, consume) => tp.entered(x, consume), exit: (x) => tp.exit(x) };
  return { local: model.config, entered: async (x, consume) => consume(x), exit: async (x) => x };
}

/**
 * A pipeline chunk's compute under context parallelism over `cp` (the ring), on the stage's whole
 * layers (tp null) or its tensor-parallel shards; MoE layers run their routed experts with `experts`.
 * Ids and targets the executor passes are the whole rows [B, S] (every cp rank reads the same); this
 * rank embeds and scores its 2 chunks of each.
 */
export function contextParallelLayers(model: Transformer, cp: Communicator, tp: TensorParallel | null, experts: ExpertRunner = localExperts(model)): ChunkCompute {
  const c = model.config, ps = model.params, dtype = model.dtype, be = model.backend;
  // MoE under tp: each tp rank routes its share of the tokens (with --sp the rows it holds; without,
  // its block of the replicated rows, split forward and all-gathered back, token-split.ts)
  const split = c.moe && tp && tp.comm.size > 1 ? tp.comm : null;
  const spread = split && !tp!.sequenceParallel ? split : null;
  const N = cp.size, rank = cp.rank;
  const g = regionsOf(model, tp);
  const hd = headDim(c), H = g.local.heads, Hkv = g.local.kvHeads;
  const norm = (h: Tensor, w: string) => T.rmsnorm(h, ps.get(w), c.normEps);
  const rotate = (t: Tensor) => rotateChunks(t, N, rank, c.ropeTheta);

  /** the attention sub-block of layer i with its residual: x + attention(norm(x)) over the whole rows */
  const attention = async (x: Tensor, i: number, B: number, S: number): Promise<Tensor> => {
    const p = `layers.${i}.attention`;
    const n = norm(x, `layers.${i}.attention_norm.weight`);
    const w = [ps.get(`${p}.wq.weight`), ps.get(`${p}.wk.weight`), ps.get(`${p}.wv.weight`)];
    // Q/K/V in one GEMM inside the region (with --sp its all-gathered input is not kept for backward)
    const qkv = await g.entered(n, (y) => T.linearPacked(y, w, dtype));
    const [q0, k0, v0] = T.splitColumns(qkv, [H * hd, Hkv * hd, Hkv * hd]) as [Tensor, Tensor, Tensor];
    const q1 = T.reshape(q0, [B, S, H, hd]), k1 = T.reshape(k0, [B, S, Hkv, hd]);
    const q = rotate(q1), k = rotate(k1), v = T.reshape(v0, [B, S, Hkv, hd]);
    const o = await ringAttention(q, k, v, cp);
    const a = await g.exit(attentionOutput(ps, g.local, p, o, B, S, dtype));
    const h = T.add(x, a);
    for (const t of [n, qkv, q0, k0, v0, q1, k1, q, k, v, a]) t.dispose();
    return h;
  };

  return {
    sync: false,
    hiddenRows: (tokens) => (tp ? tp.hiddenRows(tokens / N) : tokens / N),
    embed: (ids, B, S) => {
      const mine = rankTokens(ids, B, S, N, rank);
      return tp ? tp.embed(mine) : model.embed(T.tensor(be, mine, [B, S / N], 'i32'));
    },
    layers: async (x, lo, hi, B, S) => {
      const Sl = S / N;
      let aux: Tensor | null = null;
      for (let i = lo; i < hi; i++) {
        const h = await attention(x, i, B, Sl);
        if (i > lo) x.dispose();
        const p = `layers.${i}`;
        const n2 = norm(h, `${p}.ffn_norm.weight`);
        let f: Tensor;
        if (isMoeLayer(c, i)) {
          const mine = spread ? splitToGroup(n2, spread) : n2;
          const r = await routedMoe(ps, c, `${p}.feed_forward`, mine, dtype, model.routerBias.get(i) ?? null, experts, { split, cp });
          model.lastLoads.set(i, r.loads);
          if (r.aux) aux = aux ? T.add(aux, r.aux) : r.aux;
          f = spread ? await gatherSplitBack(r.y, spread) : r.y;
          if (mine !== n2) mine.dispose();
          if (f !== r.y) r.y.dispose();
        } else f = await g.exit(await g.entered(n2, (y) => mlp(ps, g.local, `${p}.feed_forward`, y, dtype)));
        x = T.add(h, f);
        for (const t of [h, n2, f]) t.dispose();
      }
      return { x, aux };
    },
    headLoss: async (x, targets, B, S) => {
      const mine = rankTokens(targets, B, S, N, rank);
      const ce = await (tp ? tp.headLoss(x, mine) : T.crossEntropy(model.head(x), T.tensor(be, mine, [mine.length], 'i32')));
      const weight = contextLossWeight(targets, mine, N);
      if (weight === 1) return ce;
      const out = T.mulScalar(ce, weight);
      ce.dispose();
      return out;
    },
    backward: (root, grad) => backwardAsync(root, grad),
  };
}
