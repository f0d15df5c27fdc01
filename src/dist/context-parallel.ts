// Context parallelism (Megatron-Core's CP, torchtitan's context_parallel) applied to the unchanged
// Transformer: the cp ranks of a data-parallel replica read the same rows and each keeps its two
// load-balanced chunks of every row (context-parallel-layout.ts). The model's own blocks run on those
// tokens (embedding, norms, Q/K/V and output projections, FFN, head are all per token); only the
// attention core is replaced, by ring attention over the cp group (ring-attention.ts), and RoPE
// rotates each chunk at its global positions.
//
// Loss: each rank takes the mean cross-entropy of its tokens, weighted by its share of the replica's
// tokens (1 when every target counts), so the mean over the cp ranks is the mean over all tokens of
// the rows. Gradients: the cp ranks hold the same weights and are just more gradient-reduction peers:
// the trainer hands DataParallel the dp·cp communicator and this class's micro-batch routine, and the
// usual bucketed all-reduce / ZeRO over dp·cp divides by dp·cp — exactly the global-batch mean.
// Weights are replicated over cp, so checkpoints are DataParallel's (any layout resumes them).
import type { TokenLoader } from '../data/loader.js';
import { attentionInputs, attentionOutput } from '../nn/attention.js';
import { ConfigError, type ModelConfig } from '../nn/config.js';
import { mlp } from '../nn/mlp.js';
import type { Transformer } from '../nn/transformer.js';
import { backwardAsync, type BackwardOptions } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import { tidyAsync } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Communicator } from './communicator.js';
import { chunkLength, loadBalancedChunks, rankTokens } from './context-parallel-layout.js';
import { assertRanksFit } from './layout-ranks.js';
import { ProcessMesh } from './mesh.js';
import { ringAttention } from './ring-attention.js';

/** --cp of a training run (TrainConfig.contextParallel). */
export interface ContextParallelConfig {
  cp: number;
}

/** Refuses, before anything is allocated, a context-parallel run that does not fit the job, the sequence or what is implemented. */
export function assertContextParallelFits(
  c: { model: ModelConfig; dp: number; seqLen: number; recompute: string; tensorParallel?: { tp: number } | null; pipeline?: { pp: number } | null },
  t: ContextParallelConfig,
  worldSize: number,
): void {
  const cp = t.cp;
  chunkLength(c.seqLen, cp);
  if (c.model.moe) throw new ConfigError(`--cp ${cp}: context parallelism of MoE models is not implemented yet; train '${c.model.name}' with --cp 1`);
  if (c.recompute !== 'none') throw new ConfigError(`--cp ${cp}: activation recomputation under context parallelism is not implemented yet; use --recompute none`);
  if ((c.tensorParallel?.tp ?? 1) > 1 || (c.pipeline?.pp ?? 1) > 1)
    throw new ConfigError(`--cp ${cp} with --tp/--pp: context parallelism composes with data parallelism only so far; use --cp with --dp`);
  assertRanksFit({ cp }, c.dp, worldSize);
}

export class ContextParallel {
  /**
   * Splits the mesh's cp and dp·cp groups of `world` laid out as cp × dp (Megatron order, cp faster
   * than dp; collective over the world).
   */
  static async open(model: Transformer, world: Communicator, t: ContextParallelConfig, dp: number): Promise<ContextParallel> {
    const mesh = await ProcessMesh.create(world, { tp: 1, cp: t.cp, dp, pp: 1, ep: 1 });
    return new ContextParallel(model, mesh.cp, mesh.dpCp);
  }

  /**
   * comm: the cp group (the ring); gradComm: every rank holding the same weights (dp·cp), where
   * DataParallel reduces gradients.
   */
  constructor(
    readonly model: Transformer,
    readonly comm: Communicator,
    readonly gradComm: Communicator,
  ) {
    if (model.config.moe) throw new ConfigError(`--cp ${comm.size}: context parallelism of MoE models is not implemented yet`);
  }

  /** RoPE of this rank's two chunks x [B, 2c, h, D] at their global positions. */
  private rotate(x: Tensor, chunk: number): Tensor {
    const [a, b] = loadBalancedChunks(this.comm.size, this.comm.rank);
    const theta = this.model.config.ropeTheta;
    const parts = [T.slice(x, 1, 0, chunk), T.slice(x, 1, chunk, 2 * chunk)];
    const rotated = [T.rope(parts[0]!, theta, a * chunk), T.rope(parts[1]!, theta, b * chunk)];
    const out = T.concat(rotated, 1);
    for (const t of [...parts, ...rotated]) t.dispose();
    return out;
  }

  /**
   * This rank's share of the mean next-token cross-entropy of rows ids/targets (host, [batch·seq],
   * the same on every cp rank): the mean over the rank's tokens, weighted so that the mean over the
   * cp ranks is the mean over every token of the rows.
   */
  async loss(ids: Int32Array, targets: Int32Array, batch: number, seq: number): Promise<Tensor> {
    const m = this.model, c = m.config, ps = m.params, dtype = m.dtype, be = m.backend;
    const cp = this.comm.size, rank = this.comm.rank;
    const chunk = chunkLength(seq, cp), S = 2 * chunk;
    const norm = (h: Tensor, w: string) => T.rmsnorm(h, ps.get(w), c.normEps);
    const myTargets = rankTokens(targets, batch, seq, cp, rank);
    // targets < 0 do not count: each rank's mean is weighted by its share of the counted tokens
    const counted = Float32Array.of(myTargets.reduce((n, t) => n + (t >= 0 ? 1 : 0), 0));
    const all = Float32Array.from(counted);
    if (cp > 1) await this.comm.allReduce(all, 'sum');
    let x = m.embed(T.tensor(be, rankTokens(ids, batch, seq, cp, rank), [batch, S], 'i32'));
    for (let i = 0; i < c.layers; i++) {
      const p = `layers.${i}`;
      const n = norm(x, `${p}.attention_norm.weight`);
      const { q, k, v } = attentionInputs(ps, c, `${p}.attention`, n, batch, S, dtype, (t) => this.rotate(t, chunk));
      const o = await ringAttention(q, k, v, this.comm);
      const a = attentionOutput(ps, c, `${p}.attention`, o, batch, S, dtype);
      const h = T.add(x, a);
      const n2 = norm(h, `${p}.ffn_norm.weight`);
      const f = mlp(ps, c, `${p}.feed_forward`, n2, dtype);
      // temporaries freed once consumed (what backward needs, the tape keeps)
      for (const t of [x, n, q, k, v, a, n2]) t.dispose();
      x = T.add(h, f);
      h.dispose();
      f.dispose();
    }
    const ce = T.crossEntropy(m.head(x), T.tensor(be, myTargets, [myTargets.length], 'i32'));
    const share = all[0]! > 0 ? (counted[0]! * cp) / all[0]! : 0;
    return share === 1 ? ce : T.mulScalar(ce, share);
  }

  /**
   * DataParallel's micro-batch routine under context parallelism: forward and backward of this rank's
   * chunks of the loader's next rows (the loader reads the replica's rows; every cp rank the same).
   */
  readonly microBatch = async (_model: Transformer, loader: TokenLoader, _loads: Map<number, number[]>, backwardOpts: BackwardOptions = {}, around?: () => void): Promise<{ ce: number; aux: number }> => {
    const b = loader.next();
    const loss = await tidyAsync(async () => {
      const l = await this.loss(b.input, b.target, loader.batch, loader.seqLen);
      await backwardAsync(l, undefined, backwardOpts);
      around?.();
      return l;
    });
    const ce = await loss.item();
    loss.dispose();
    return { ce, aux: 0 };
  };
}
