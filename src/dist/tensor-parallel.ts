// Tensor parallelism (Megatron-LM's TP, with optional sequence parallelism) applied to the unchanged
// Transformer: its parameters are created whole from the run's seed (so every layout starts from the
// same weights as one process), then each is cut to this rank's shard by the name-keyed plan
// (tensor-parallel-plan.ts). The model's own blocks (attentionBlock, mlp, rmsnorm, linear) then run on
// the shards: a column-parallel Q/K/V holds whole heads, so the attention block sees a model of
// heads/tp heads and kvHeads/tp KV heads of the same head size. Around each block sit Megatron's
// conjugate collectives (differentiable.ts):
//   without --sp: copyToGroup before (backward all-reduce), reduceFromGroup after (all-reduce)
//   with --sp:    gatherFromGroup before (all-gather of the token blocks; backward reduce-scatter),
//                 scatterToGroup after (reduce-scatter); norms and residuals run on N/tp tokens.
// Embedding and loss are vocabulary-parallel (vocab-parallel.ts). Gradients: sharded weights get
// exactly their shard's gradient; replicated norms are whole on every rank without --sp, and summed
// over the tp ranks with --sp (each saw its own tokens). The global gradient norm adds the shards'
// squares over the tp ranks and the replicated ones once.
import type { ModelConfig } from '../nn/config.js';
import type { Transformer } from '../nn/transformer.js';
import { attentionBlock } from '../nn/attention.js';
import { mlp } from '../nn/mlp.js';
import { linear } from '../nn/linear.js';
import { AdamW, type AdamWConfig } from '../optim/adamw.js';
import { backwardAsync, noGrad, noGradAsync } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import { keep, tidyAsync } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TokenLoader } from '../data/loader.js';
import type { NamedTensor, NamedTensors } from '../train/safetensors.js';
import type { OptimizerState } from '../train/checkpoint.js';
import { boxPiece, rankFileName, type ShardedTensor } from '../train/checkpoint-shards.js';
import type { ShardSource } from './dist-checkpoint.js';
import type { Communicator } from './communicator.js';
import { copyToGroup, gatherFromGroup, gatherRegathered, reduceFromGroup, scatterToGroup } from './differentiable.js';
import { type ShardKind, shardDimOf, shardKindOf, type TensorParallelConfig, validateTensorParallel } from './tensor-parallel-plan.js';
import { ProcessMesh } from './mesh.js';
import { reduceGradsOverReplicas } from './replica-grads.js';
import { vocabParallelCrossEntropy, vocabParallelEmbedding } from './vocab-parallel.js';

/** Rank `rank`'s block of `t` along `dim` (a new contiguous tensor, no gradient). */
function shardOf(t: Tensor, dim: 0 | 1, tp: number, rank: number): Tensor {
  const n = t.shape[dim]! / tp;
  return noGrad(() => T.slice(t, dim, rank * n, (rank + 1) * n));
}

/** Rank `rank`'s block along `dim` of a whole host tensor (2-D or 1-D). */
function cutHost(t: NamedTensor, dim: 0 | 1, tp: number, rank: number): NamedTensor {
  const src = t.data as Float32Array;
  const rows = t.shape[0]!, cols = t.shape.length > 1 ? t.shape[1]! : 1;
  if (dim === 0) {
    const n = (rows / tp) * cols;
    return { dtype: t.dtype, shape: [rows / tp, ...t.shape.slice(1)], data: src.slice(rank * n, (rank + 1) * n) };
  }
  const w = cols / tp, data = new Float32Array(rows * w);
  for (let i = 0; i < rows; i++) data.set(src.subarray(i * cols + rank * w, i * cols + (rank + 1) * w), i * w);
  return { dtype: t.dtype, shape: [rows, w], data };
}

/** Replaces, in place, each tensor of `map` by this rank's shard under the plan (names keep their order). */
function shardMap(map: Map<string, Tensor>, tp: number, rank: number, named: boolean): void {
  for (const [name, t] of map) {
    const d = shardDimOf(shardKindOf(name));
    if (d === null) continue;
    const s = keep(shardOf(t, d, tp, rank));
    if (named) {
      s.requiresGrad = true;
      s.name = name;
    }
    map.set(name, s);
    t.dispose();
  }
}

/** AdamW whose global gradient norm spans the tp ranks' shards (replicated parameters counted once). */
class TensorParallelAdamW extends AdamW {
  constructor(
    private readonly tpModel: TensorParallel,
    config: AdamWConfig,
  ) {
    super(tpModel.model.params, config);
  }

  override async gradNorm(): Promise<number> {
    const replicated = (name: string) => shardKindOf(name) === 'replicate';
    const sharded = Float32Array.of((await super.gradNorm(replicated)) ** 2);
    const whole = await super.gradNorm((name) => !replicated(name));
    await this.tpModel.comm.allReduce(sharded, 'sum');
    return Math.sqrt(sharded[0]! + whole ** 2);
  }
}

export interface TensorParallelStepResult {
  loss: number;
  aux: number;
  gradNorm: number;
  /** never set: skipping a non-finite update is not wired under tensor parallelism yet (the run stops instead) */
  skipped?: boolean;
}

export class TensorParallel {
  /** the model's config as one rank's shards see it: heads/tp heads (of the same head size), kvHeads/tp KV heads */
  readonly local: ModelConfig;

  /**
   * Validates the layout against the model and cuts the model's parameters (created whole, or
   * restored whole from a checkpoint) to this rank's shards; `opt`'s moments are cut alike.
   */
  /**
   * Tensor parallel over `world` laid out as tp × dp (Megatron rank order, tp fastest): splits the
   * mesh's tp and dp groups (collective over the world) and cuts the model to this rank's shards.
   */
  static async open(model: Transformer, world: Communicator, t: TensorParallelConfig, dp: number, microBatchTokens: number): Promise<TensorParallel> {
    const mesh = await ProcessMesh.create(world, { tp: t.tp, cp: 1, dp, pp: 1, ep: 1 });
    return new TensorParallel(model, mesh.tp, t.sp, microBatchTokens, mesh.dp.size > 1 ? mesh.dp : null, world.size);
  }

  /**
   * comm: the tp group; dpComm: the data-parallel replicas of this rank's shards (null: none);
   * worldSize: ranks writing checkpoint files (tp ranks of data-parallel replica 0 write the pieces).
   */
  constructor(
    readonly model: Transformer,
    readonly comm: Communicator,
    readonly sequenceParallel: boolean,
    microBatchTokens: number,
    readonly dpComm: Communicator | null = null,
    private readonly worldSize = comm.size,
  ) {
    const c = model.config, tp = comm.size;
    validateTensorParallel(c, tp, sequenceParallel, microBatchTokens);
    if (model.recomputeMode !== 'none') throw new Error(`--tp ${tp}: activation recomputation under tensor parallelism is not implemented yet; use --recompute none`);
    this.local = { ...c, heads: c.heads / tp, kvHeads: c.kvHeads / tp, dModel: c.dModel / tp };
    shardMap(model.params.tensors, tp, comm.rank, true);
  }

  /** AdamW over this rank's shards (its gradient norm spans the tp ranks). */
  optimizer(config: AdamWConfig): AdamW {
    return new TensorParallelAdamW(this, config);
  }

  /** This rank's shards of whole host tensors (a checkpoint of any layout): weights, or `<name>.m`/`.v` moments. */
  cutTensors(whole: NamedTensors): NamedTensors {
    const out: NamedTensors = {};
    for (const [key, t] of Object.entries(whole)) {
      const name = key.replace(/\.(m|v)$/, '');
      if (!this.model.params.tensors.has(name) && !this.model.params.tensors.has(key)) {
        out[key] = t; // not a parameter (routing biases): as is
        continue;
      }
      const d = shardDimOf(shardKindOf(this.model.params.tensors.has(key) ? key : name));
      out[key] = d === null ? t : cutHost(t, d, this.comm.size, this.comm.rank);
    }
    return out;
  }

  /** The optimizer state of a checkpoint (whole tensors), cut to this rank's shards. */
  cutOptimizerState(s: OptimizerState | null): OptimizerState | null {
    return s && { ...s, m: this.cutTensors(s.m), v: this.cutTensors(s.v) };
  }

  /**
   * What this rank saves: its shard of every split weight and moment (replicated ones from tp rank 0
   * only), indexed by global shape and each piece's box (offset and shape) in it.
   */
  shards(opt: AdamW): ShardSource {
    const tp = this.comm.size, rank = this.comm.rank;
    const params = this.model.params.tensors;
    return {
      pieces: async () => {
        const out: NamedTensors = {};
        if (this.dpComm && this.dpComm.rank !== 0) return out; // replica 0's tp ranks hold every piece
        for (const [name, p] of params) {
          if (shardKindOf(name) === 'replicate' && rank !== 0) continue;
          for (const [key, t] of [[name, p], [`${name}.m`, opt.m.get(name)!], [`${name}.v`, opt.v.get(name)!]] as const)
            out[key] = { dtype: 'f32', shape: [...t.shape], data: Float32Array.from((await t.data()) as Float32Array) };
        }
        return out;
      },
      index: () => {
        const tensors: Record<string, ShardedTensor> = {};
        for (const [name, p] of params) {
          const d = shardDimOf(shardKindOf(name));
          const shape = p.shape.map((n, i) => (i === d ? n * tp : n));
          const owners = d === null ? [0] : Array.from({ length: tp }, (_, r) => r);
          for (const key of [name, `${name}.m`, `${name}.v`])
            tensors[key] = { shape, dtype: 'f32', pieces: owners.map((r) => boxPiece(rankFileName(r), key, shape, p.shape, d === null ? p.shape.map(() => 0) : p.shape.map((n, i) => (i === d ? r * n : 0)))) };
        }
        return { world: this.worldSize, zero: 0, tensors };
      },
      params: [...params.keys()].sort(),
      extra: [],
      state: { step: opt.step, config: opt.config },
    };
  }

  /** Mean validation cross-entropy over `batches` batches (every tp rank reads the same ones). */
  async validationLoss(openVal: () => TokenLoader, batches: number): Promise<number> {
    const loader = openVal();
    try {
      let sum = 0;
      for (let i = 0; i < batches; i++) {
        const b = loader.next();
        const ce = await noGradAsync(() => tidyAsync(() => this.loss(b.input, b.target, loader.batch, loader.seqLen)));
        sum += await ce.item();
        ce.dispose();
      }
      return sum / batches;
    } finally {
      loader.close();
    }
  }

  private enter(x: Tensor): Promise<Tensor> {
    return this.sequenceParallel ? gatherFromGroup(x, this.comm) : copyToGroup(x, this.comm);
  }

  /** consume(enter(x)); with --sp the gathered input is all-gathered again in backward, not kept (differentiable.ts) */
  async entered(x: Tensor, consume: (y: Tensor) => Tensor): Promise<Tensor> {
    return this.sequenceParallel ? gatherRegathered(x, this.comm, consume) : consume(await copyToGroup(x, this.comm));
  }

  /** leaves a row-parallel region: all-reduce over the tp ranks (with --sp reduce-scatter to this rank's token block) */
  exit(x: Tensor): Promise<Tensor> {
    return this.sequenceParallel ? scatterToGroup(x, this.comm) : reduceFromGroup(x, this.comm);
  }

  /** Mean next-token cross-entropy of ids/targets (host, [batch·seq]), the same scalar on every tp rank. */
  async loss(ids: Int32Array, targets: Int32Array, batch: number, seq: number): Promise<Tensor> {
    return this.headLoss(await this.layers(await this.embed(ids), 0, this.model.config.layers, batch, seq), targets);
  }

  /** Rows of the hidden states one rank holds between blocks (a pipeline's activation): its N/tp tokens with --sp, all N without. */
  hiddenRows(tokens: number): number {
    return this.sequenceParallel ? tokens / this.comm.size : tokens;
  }

  /** Vocabulary-parallel token embedding of ids (host, [batch·seq]) → hidden [hiddenRows, dModel]. */
  embed(ids: Int32Array): Promise<Tensor> {
    return vocabParallelEmbedding(this.model.params.get('tok_embeddings.weight'), ids, this.comm, this.sequenceParallel);
  }

  /** Decoder layers [lo, hi) on this rank's shards (a pipeline chunk's layers, or all of them). */
  async layers(x: Tensor, lo: number, hi: number, batch: number, seq: number): Promise<Tensor> {
    for (let i = lo; i < hi; i++) x = await this.ffnResidual(await this.attentionResidual(x, i, batch, seq), i);
    return x;
  }

  /** Layer i's attention sub-block with its residual on this rank's shards: x + attention(norm(x)). */
  async attentionResidual(x: Tensor, i: number, batch: number, seq: number): Promise<Tensor> {
    const ps = this.model.params, p = `layers.${i}`;
    const n = T.rmsnorm(x, ps.get(`${p}.attention_norm.weight`), this.model.config.normEps);
    const a = await this.entered(n, (y) => attentionBlock(ps, this.local, `${p}.attention`, y, batch, seq, this.model.dtype));
    return T.add(x, await this.exit(a));
  }

  /** Layer i's dense feed-forward sub-block with its residual on this rank's shards: h + mlp(norm(h)). */
  async ffnResidual(h: Tensor, i: number): Promise<Tensor> {
    const ps = this.model.params, p = `layers.${i}`;
    const n = T.rmsnorm(h, ps.get(`${p}.ffn_norm.weight`), this.model.config.normEps);
    const f = await this.entered(n, (y) => mlp(ps, this.local, `${p}.feed_forward`, y, this.model.dtype));
    return T.add(h, await this.exit(f));
  }

  /** Final norm, vocabulary-parallel output layer and cross-entropy against targets (host, [batch·seq]). */
  async headLoss(x: Tensor, targets: Int32Array): Promise<Tensor> {
    const c = this.model.config, ps = this.model.params;
    const out = ps.get(c.tiedEmbeddings ? 'tok_embeddings.weight' : 'output.weight');
    const logits = linear(await this.enter(T.rmsnorm(x, ps.get('norm.weight'), c.normEps)), out, this.model.dtype);
    return vocabParallelCrossEntropy(logits, targets, this.comm);
  }

  /**
   * One optimizer step over `accum` micro-batches (every tp rank reads the same ones, each data-parallel
   * replica its own); gradients are summed over the replicas, the loss is their mean.
   */
  async runStep(opt: AdamW, loader: TokenLoader, accum: number, lr: number): Promise<TensorParallelStepResult> {
    let sum = 0;
    for (let micro = 0; micro < accum; micro++) {
      const b = loader.next();
      const loss = await tidyAsync(async () => {
        const l = await this.loss(b.input, b.target, loader.batch, loader.seqLen);
        await backwardAsync(l);
        return l;
      });
      sum += await loss.item();
      loss.dispose();
    }
    if (this.sequenceParallel) await this.reduceReplicatedGrads();
    const replicas = this.dpComm?.size ?? 1;
    const mean = Float32Array.of(sum / accum);
    if (this.dpComm) {
      await reduceGradsOverReplicas(this.model.params.tensors, this.dpComm);
      await this.dpComm.allReduce(mean, 'sum');
    }
    const gradNorm = await opt.update(lr, 1 / (accum * replicas));
    this.model.params.zeroGrad();
    return { loss: mean[0]! / replicas, aux: 0, gradNorm };
  }

  /** With --sp each rank's norms saw only its tokens: their gradients are summed over the tp ranks. */
  async reduceReplicatedGrads(): Promise<void> {
    for (const [name, p] of this.model.params.tensors)
      if (p.grad && shardKindOf(name) === 'replicate') await this.comm.allReduce(p.grad, 'sum');
  }

  /** Whole tensors (host, f32) from the ranks' shards of `map` (collective over the tp ranks). */
  async gatherWhole(map: Map<string, Tensor>): Promise<NamedTensors> {
    const tp = this.comm.size, out: NamedTensors = {};
    for (const [name, t] of map) {
      const kind: ShardKind = shardKindOf(name);
      const d = shardDimOf(kind);
      const local = (await t.data()) as Float32Array;
      if (d === null) {
        out[name] = { dtype: 'f32', shape: [...t.shape], data: local };
        continue;
      }
      const all = new Float32Array(local.length * tp);
      await this.comm.allGather(local, all);
      const shape = t.shape.map((n, i) => (i === d ? n * tp : n));
      let data = all;
      if (d === 1) {
        // rank blocks of [rows, cols/tp] → [rows, cols]
        const [rows, cols] = t.shape as [number, number];
        data = new Float32Array(all.length);
        for (let r = 0; r < tp; r++) for (let i = 0; i < rows; i++) data.set(all.subarray(r * rows * cols + i * cols, r * rows * cols + (i + 1) * cols), i * cols * tp + r * cols);
      }
      out[name] = { dtype: 'f32', shape, data };
    }
    return out;
  }
}
