// Context parallelism (Megatron-Core's CP, torchtitan's context_parallel) applied to the unchanged
// Transformer: the cp ranks of a data-parallel replica read the same rows and each keeps its two
// load-balanced chunks of every row (context-parallel-layout.ts). The model's own blocks run on those
// tokens (embedding, norms, Q/K/V and output projections, FFN, head are all per token); only the
// attention core is replaced, by ring attention over the cp group (ring-attention.ts), and RoPE
// rotates each chunk at its global positions — the chunk compute of context-parallel-compute.ts,
// which the pipeline executor also runs for cp under --tp, --pp or an MoE model. This class is the
// data-parallel path of a dense model's cp × dp (ZeRO 0, 2, 3); the layout checks of both paths are here.
//
// Loss: each rank takes the mean cross-entropy of its tokens, weighted by its share of the replica's
// tokens (1 when every target counts), so the mean over the cp ranks is the mean over all tokens of
// the rows. Gradients: the cp ranks hold the same weights and are just more gradient-reduction peers:
// the trainer hands DataParallel the dp·cp communicator and this class's micro-batch routine, and the
// usual bucketed all-reduce / ZeRO over dp·cp divides by dp·cp — exactly the global-batch mean.
// Weights are replicated over cp, so checkpoints are DataParallel's (any layout resumes them).
import type { TokenLoader } from '../data/loader.js';
import { ConfigError, type ModelConfig } from '../nn/config.js';
import type { Transformer } from '../nn/transformer.js';
import { backwardAsync, type BackwardOptions } from '../tensor/autograd.js';
import { tidyAsync } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Communicator } from './communicator.js';
import { chunkLength } from './context-parallel-layout.js';
import { assertRanksFit } from './layout-ranks.js';
import { ProcessMesh } from './mesh.js';
import { contextParallelLayers } from './context-parallel-compute.js';
import type { ChunkCompute } from './pipeline-compute.js';

/** --cp of a training run (TrainConfig.contextParallel). */
export interface ContextParallelConfig {
  cp: number;
}

/** What of a run decides where context parallelism runs. */
type ContextLayout = { model: ModelConfig; zero: number; tensorParallel?: { tp: number } | null; pipeline?: { pp: number } | null; contextParallel?: ContextParallelConfig | null };

/**
 * Whether a run's context parallelism runs inside the pipeline executor (with --tp, --pp, an MoE
 * model or ZeRO-1, whose moments the executor shards with a reduce-scatter of the gradients:
 * context-parallel-compute.ts) rather than on this class's data-parallel path (cp × dp, ZeRO 0, 2, 3).
 */
export function contextParallelInPipeline(c: ContextLayout): boolean {
  return (c.contextParallel?.cp ?? 1) > 1 && ((c.tensorParallel?.tp ?? 1) > 1 || (c.pipeline?.pp ?? 1) > 1 || !!c.model.moe || c.zero === 1);
}

/**
 * Refuses, before anything is allocated, a context-parallel run that does not fit the sequence or
 * what is implemented; the ranks of the data-parallel path too (the pipeline executor's layouts are
 * checked by assertPipelineFits, which counts cp).
 */
export function assertContextParallelFits(
  c: ContextLayout & { dp: number; seqLen: number; recompute: string },
  t: ContextParallelConfig,
  worldSize: number,
): void {
  const cp = t.cp;
  chunkLength(c.seqLen, cp);
  if (c.recompute !== 'none') throw new ConfigError(`--cp ${cp}: activation recomputation under context parallelism is not implemented yet; use --recompute none`);
  if (!contextParallelInPipeline(c)) return assertRanksFit({ cp }, c.dp, worldSize);
  if (c.zero > 1) throw new ConfigError(`--cp ${cp} with --zero ${c.zero}: under --tp, --pp or an MoE model context parallelism runs in the pipeline executor, which has ZeRO-1 only; use --zero 1 or 0`);
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
    if (model.config.moe) throw new ConfigError(`--cp ${comm.size}: MoE models run context parallel through the pipeline executor (PipelineParallel), not this data-parallel path`);
    this.compute = contextParallelLayers(model, comm, null);
  }

  /** this rank's chunks through the model's layers, attention by ring (context-parallel-compute.ts) */
  private readonly compute: ChunkCompute;

  /**
   * This rank's share of the mean next-token cross-entropy of rows ids/targets (host, [batch·seq],
   * the same on every cp rank): the mean over the rank's tokens, weighted so that the mean over the
   * cp ranks is the mean over every token of the rows.
   */
  async loss(ids: Int32Array, targets: Int32Array, batch: number, seq: number): Promise<Tensor> {
    const cc = this.compute;
    const { x } = await cc.layers(await cc.embed(ids, batch, seq), 0, this.model.config.layers, batch, seq);
    return cc.headLoss(x, targets, batch, seq);
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
